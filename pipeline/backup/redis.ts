import { bgsaveAndWait, connectRedis, probeRedis, redisTarget, sampleKeys } from "../../probes/redis.js";
import type { RedisSource } from "../config.js";
import { hashUnder } from "../hash.js";
import type { RedisFacts } from "../manifest.js";
import type { Progress } from "../progress.js";
import { REDIS_RDB, planRedis } from "../plan.js";
import { phase, type ServiceBackupContext, type ServiceBackupResult } from "./context.js";

/** What is known about a Redis source right before its RDB is pulled. */
export type PreparedRedis = Omit<RedisFacts, "rdb" | "rdbCheck">;

/**
 * Everything before the RDB is pulled: server facts, a BGSAVE waited for
 * until it really completed, then keyspace and sample. The Dagger runner
 * runs this same function as glue before its redis-cli step.
 */
export async function prepareRedis(src: RedisSource, progress: Progress): Promise<PreparedRedis> {
  const target = redisTarget(src);
  const client = await phase("redis", "connect", () => connectRedis(target));
  try {
    const server = await phase("redis", "info", () => probeRedis(client));
    progress.info(`redis: server ${server.version} (${server.role}), ${server.keyspace.reduce((a, k) => a + k.keys, 0)} keys`);
    const bgsave = await phase("redis", "bgsave", () =>
      bgsaveAndWait(client, src.bgsaveTimeoutMs, (ms) => progress.info(`redis: waiting for BGSAVE, ${Math.round(ms / 1000)}s`)),
    );
    // Keyspace and sample are read right before the RDB is pulled, the closest we get to its instant.
    const keyspace = (await phase("redis", "info", () => probeRedis(client))).keyspace;
    const sample = await phase("redis", "sample", () => sampleKeys(target, keyspace, src.sampleSize, src.samplePatterns));
    return { version: server.version, runId: server.runId, role: server.role, keyspace, bgsave, sample };
  } finally {
    client.disconnect();
  }
}

export async function backupRedis(ctx: ServiceBackupContext): Promise<ServiceBackupResult<RedisFacts>> {
  const src = ctx.cfg.redis!;
  const prepared = await prepareRedis(src, ctx.progress);
  const steps = [];
  for (const step of planRedis(src, { version: prepared.version }, { host: src.host, port: src.port })) {
    steps.push(await ctx.runner.run(step, ctx.setDir));
  }
  const files = await hashUnder(ctx.setDir, ["redis"], { durable: true });
  const facts: RedisFacts = { ...prepared, rdb: REDIS_RDB, rdbCheck: "ok" };
  return { facts, steps, files };
}
