import { minioClient } from "../probes/minio.js";
import { DEFAULT_COMPRESSION } from "./backup/compression.js";
import { defaultJobs } from "./cores.js";
import { backupSet, type BackupResult } from "./backup.js";
import type { Config, SanityQuery, ToolPaths } from "./config.js";
import type { Progress } from "./progress.js";
import { seedMinio, seedPostgres, seedRedis } from "./seed.js";
import { startMinio, startPostgres, startRedis, type MinioServer, type PostgresServer, type RedisServer } from "./throwaway/servers.js";
import { drillSet } from "./drill.js";
import type { DrillSummary } from "./drill-summary.js";
import { verifySet, type VerifyReport } from "./verify.js";

export type SandboxServers = { postgres: PostgresServer; redis: RedisServer; minio: MinioServer };

export type SandboxResult = { backup: BackupResult; verify: VerifyReport; drill?: DrillSummary };

/** Start throwaway PostgreSQL, Redis and MinIO side by side (each on a free loopback port). */
export async function startSandboxServers(tools: ToolPaths): Promise<SandboxServers> {
  const started = await Promise.allSettled([startPostgres({ tools, fast: true }), startRedis({ tools }), startMinio({ tools })]);
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw (failed as PromiseRejectedResult).reason;
  }
  const [postgres, redis, minio] = started.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [PostgresServer, RedisServer, MinioServer];
  return { postgres, redis, minio };
}

export async function stopSandboxServers(s: SandboxServers): Promise<void> {
  await Promise.all([s.postgres.stop(), s.redis.stop(), s.minio.stop()]);
}

/** The sandbox dataset in every server. */
export async function seedSandbox(s: SandboxServers): Promise<void> {
  await Promise.all([
    seedPostgres(s.postgres),
    seedRedis(s.redis),
    seedMinio(minioClient({ ...s.minio, region: "us-east-1" }, { partSize: 5 * 1024 * 1024 })),
  ]);
}

/** What the drill asks of the sandbox dataset. */
export const SANDBOX_SANITY_QUERIES: SanityQuery[] = [
  { name: "customers exist", database: "app", sql: "SELECT count(*) FROM customers", expect: { min: 1 } },
  { name: "every order has a customer", database: "app", sql: "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL", expect: { equals: 0 } },
  { name: "order statuses", database: "app", sql: "SELECT status, count(*)::int FROM orders GROUP BY status ORDER BY status", expect: { rows: [["new", 500], ["paid", 500], ["returned", 500], ["shipped", 500]] } },
];

/** Redis keys the sandbox always samples. */
export const SANDBOX_SAMPLE_PATTERNS = ["leaderboard", "user:1*"];

/** A config pointing at the sandbox servers; the secrets are the servers' own, held in memory only. */
export function sandboxConfig(s: SandboxServers, output: string, tools: ToolPaths): Config {
  return {
    source: "sandbox",
    output,
    tools,
    postgres: {
      host: s.postgres.host,
      port: s.postgres.port,
      user: s.postgres.user,
      password: s.postgres.password,
      jobs: defaultJobs(),
      compression: DEFAULT_COMPRESSION,
      globals: true,
      sanityQueries: SANDBOX_SANITY_QUERIES,
    },
    redis: {
      host: s.redis.host,
      port: s.redis.port,
      password: s.redis.password,
      bgsaveTimeoutMs: 60_000,
      sampleSize: 1000,
      samplePatterns: SANDBOX_SAMPLE_PATTERNS,
    },
    minio: {
      endpoint: s.minio.endpoint,
      accessKey: s.minio.accessKey,
      secretKey: s.minio.secretKey,
      region: "us-east-1",
      canary: true,
    },
  };
}

/**
 * The main job on an embedded default: throwaway servers, seeded, backed up
 * into `output`, verified, then restore-drilled into a second set of
 * throwaway servers. All servers are stopped whatever happens.
 */
export async function runSandbox(opts: { output: string; tools: ToolPaths; progress: Progress; signal?: AbortSignal; runner?: "host" | "dagger" }): Promise<SandboxResult> {
  opts.progress.info("sandbox: starting throwaway PostgreSQL, Redis and MinIO");
  const servers = await startSandboxServers(opts.tools);
  try {
    opts.progress.info(
      `sandbox: postgres :${servers.postgres.port}, redis :${servers.redis.port}, minio :${servers.minio.port}; seeding`,
    );
    await seedSandbox(servers);
    const cfg = sandboxConfig(servers, opts.output, opts.tools);
    const backup = await backupSet(cfg, { progress: opts.progress, signal: opts.signal, runner: opts.runner });
    const verify = await verifySet(backup.id, backup.dir, { tools: opts.tools, progress: opts.progress });
    if (!verify.ok) return { backup, verify };
    const drill = await drillSet(cfg, backup.id, backup.dir, { progress: opts.progress, signal: opts.signal, runner: opts.runner });
    return { backup, verify, drill };
  } finally {
    await stopSandboxServers(servers);
  }
}
