import { bgsaveAndWait, connectRedis, probeRedis, redisTarget, sampleKeys } from "../../probes/redis.js";
import { hashUnder } from "../hash.js";
import type { RedisFacts } from "../manifest.js";
import { REDIS_RDB, planRedis } from "../plan.js";
import { phase, type ServiceBackupContext, type ServiceBackupResult } from "./context.js";

export async function backupRedis(ctx: ServiceBackupContext): Promise<ServiceBackupResult<RedisFacts>> {
  const src = ctx.cfg.redis!;
  const target = redisTarget(src);
  const client = await phase("redis", "connect", () => connectRedis(target));
  try {
    const server = await phase("redis", "info", () => probeRedis(client));
    ctx.progress.info(`redis: server ${server.version} (${server.role}), ${server.keyspace.reduce((a, k) => a + k.keys, 0)} keys`);
    const bgsave = await phase("redis", "bgsave", () =>
      bgsaveAndWait(client, src.bgsaveTimeoutMs, (ms) => ctx.progress.info(`redis: waiting for BGSAVE, ${Math.round(ms / 1000)}s`)),
    );
    // Keyspace and sample are read right before the RDB is pulled, the closest we get to its instant.
    const keyspace = (await phase("redis", "info", () => probeRedis(client))).keyspace;
    const sample = await phase("redis", "sample", () => sampleKeys(target, keyspace, src.sampleSize, src.samplePatterns));
    const steps = [];
    for (const step of planRedis(src, { version: server.version }, { host: src.host, port: src.port })) {
      steps.push(await ctx.runner.run(step, ctx.setDir));
    }
    const files = await hashUnder(ctx.setDir, ["redis"]);
    const facts: RedisFacts = {
      version: server.version,
      runId: server.runId,
      role: server.role,
      keyspace,
      bgsave,
      rdb: REDIS_RDB,
      rdbCheck: "ok",
      sample,
    };
    return { facts, steps, files };
  } finally {
    client.disconnect();
  }
}
