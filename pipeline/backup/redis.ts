import { join } from "node:path";
import {
  connectRedis,
  functionLibraries,
  parseInfo,
  parseKeyspace,
  probeRedis,
  redisTarget,
  sampleKeys,
  streamGroups,
  type KeyspaceEntry,
  type RedisTarget,
} from "../../probes/redis.js";
import type { RedisSource, ToolPaths } from "../config.js";
import { OperationError } from "../errors.js";
import type { FileDigest } from "../hash.js";
import type { RedisFacts } from "../manifest.js";
import { REDIS_RDB, planRedis } from "../plan.js";
import type { Step } from "../step.js";
import type { StepResult } from "../runners/host.js";
import { startRedis } from "../throwaway/servers.js";
import { phase, type ServiceBackupContext, type ServiceBackupResult } from "./context.js";

/** What the drill checks, read from the pulled dump.rdb itself. */
export type SnapshotFacts = Pick<RedisFacts, "keyspace" | "sample" | "functions" | "streamGroups"> & { describedWith: string };

/**
 * Load dump.rdb into a throwaway server and read from it every expectation
 * the drill checks: keyspace, the key sample, FUNCTION libraries and
 * stream consumer groups. They describe exactly the bytes in the set, and
 * sampling pays local round trips instead of the source's.
 */
export async function describeSnapshot(rdb: string, src: Pick<RedisSource, "sampleSize" | "samplePatterns">, tools: ToolPaths): Promise<SnapshotFacts> {
  let server;
  try {
    server = await startRedis({ tools, rdb, linkRdb: true });
  } catch (err) {
    throw new OperationError(
      `the local redis-server cannot load the pulled snapshot (${(err as Error).message}); it must be at least the source's version (set tools.redis_server)`,
      { cause: err },
    );
  }
  try {
    const client = await connectRedis(server);
    let keyspace: KeyspaceEntry[];
    let functions;
    try {
      keyspace = parseKeyspace(parseInfo(await client.info("keyspace")));
      functions = await functionLibraries(client);
    } finally {
      client.disconnect();
    }
    const sample = await sampleKeys(server, keyspace, src.sampleSize, src.samplePatterns);
    const groups = await streamGroups(server, keyspace.map((k) => k.db));
    return { keyspace, sample, functions, streamGroups: groups, describedWith: `redis-server ${server.version}` };
  } finally {
    await server.stop();
  }
}

/** Snapshot minus live keys and expires per db: how the data moved between the request and the snapshot. Pure. */
export function keyspaceDrift(snapshot: KeyspaceEntry[], live: KeyspaceEntry[]): { db: number; keys: number; expires: number }[] {
  const dbs = [...new Set([...snapshot, ...live].map((k) => k.db))].sort((a, b) => a - b);
  return dbs.map((db) => {
    const s = snapshot.find((k) => k.db === db) ?? { keys: 0, expires: 0 };
    const l = live.find((k) => k.db === db) ?? { keys: 0, expires: 0 };
    return { db, keys: s.keys - l.keys, expires: s.expires - l.expires };
  });
}

/**
 * Pull one snapshot (redis-cli --rdb: the server forks once for the
 * replication SYNC), check it, and describe it. No BGSAVE: a second fork
 * would cost the server memory and CPU and describe another moment.
 */
export async function backupRedis(ctx: ServiceBackupContext): Promise<ServiceBackupResult<RedisFacts>> {
  const src = ctx.cfg.redis!;
  const target: RedisTarget = redisTarget(src);
  const client = await phase("redis", "connect", () => connectRedis(target));
  let server;
  let pulledAt: Date;
  let checked: StepResult;
  let digest: FileDigest;
  let snapshot: SnapshotFacts;
  const requestedAt = new Date();
  const steps: StepResult[] = [];
  try {
    // The live keyspace as the snapshot is requested: the server forks for it later (after
    // repl-diskless-sync-delay), so the two differ on a written server; the drift is information.
    server = await phase("redis", "info", () => probeRedis(client));
    ctx.progress.info(`redis: server ${server.version} (${server.role}), ${server.keyspace.reduce((a, k) => a + k.keys, 0)} keys; pulling one snapshot`);
    // The pull has its own deadline (redis.bgsaveTimeout) on top of the backup's cancellation.
    const deadline = AbortSignal.timeout(src.bgsaveTimeoutMs);
    const [pull, check] = planRedis(src, { version: server.version }, { host: src.host, port: src.port }) as [Step, Step];
    const bounded = <T>(p: Promise<T>) =>
      p.catch((err: unknown) => {
        if (deadline.aborted && !ctx.signal.aborted) {
          throw new OperationError(`redis snapshot: not complete within ${Math.round(src.bgsaveTimeoutMs / 1000)}s (redis.bgsaveTimeout)`, { cause: err });
        }
        throw err;
      });
    // The backup's runner (its stall limits and reaping) with the pull's own deadline on top.
    steps.push(await bounded(ctx.runner.run(pull, ctx.setDir, deadline)));
    pulledAt = new Date();
    // The snapshot's check, its digest and its description read the same file side by side.
    const rdb = join(ctx.setDir, REDIS_RDB);
    [checked, digest, snapshot] = await Promise.all([
      bounded(ctx.runner.run(check, ctx.setDir, deadline)),
      ctx.pool.hash(rdb, { durable: true }),
      phase("redis", "describe snapshot", () => describeSnapshot(rdb, src, ctx.cfg.tools)),
    ]);
    steps.push(checked);
  } finally {
    client.disconnect();
  }
  const live = server.keyspace;
  const drift = keyspaceDrift(snapshot.keyspace, live);
  const moved = drift.filter((d) => d.keys !== 0);
  ctx.progress.info(
    `redis: snapshot holds ${snapshot.keyspace.reduce((a, k) => a + k.keys, 0)} keys, ${snapshot.sample.length} sampled` +
      (moved.length ? `; the live keyspace moved while it was taken (${moved.map((d) => `db${d.db} ${d.keys > 0 ? "+" : ""}${d.keys}`).join(", ")}), recorded as information` : ""),
  );
  const files = [{ path: REDIS_RDB, ...digest }];
  const facts: RedisFacts = {
    version: server.version,
    runId: server.runId,
    role: server.role,
    keyspace: snapshot.keyspace,
    snapshot: { pulledAt: pulledAt.toISOString(), describedWith: snapshot.describedWith },
    live: { at: requestedAt.toISOString(), keyspace: live, drift },
    rdb: REDIS_RDB,
    rdbCheck: "ok",
    sample: snapshot.sample,
    functions: snapshot.functions,
    streamGroups: snapshot.streamGroups,
  };
  return { facts, steps, files };
}
