/**
 * Ephemeral real servers for the tests: PostgreSQL 15, Redis 7 and MinIO on
 * free 127.0.0.1 ports, passwords set, stopped by PID in afterAll (and by the
 * process-exit hook in pipeline/throwaway/process.ts if a run dies).
 * A missing tool fails the suite with the install hint; it is never a skip.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { resolveTool, type HostTool } from "../../pipeline/tools.js";
import { seedSandbox, startSandboxServers, stopSandboxServers, type SandboxServers } from "../../pipeline/sandbox.js";

export type { SandboxServers } from "../../pipeline/sandbox.js";

const REQUIRED: HostTool[] = ["initdb", "postgres", "pg_dump", "pg_restore", "redis-server", "redis-cli", "redis-check-rdb", "mc", "minio", "versitygw", "age", "age-keygen"];

/** Throws "X not found: run scripts/ensure-tools.sh ..." for the first missing tool. */
export function requireTools(): void {
  for (const t of REQUIRED) resolveTool(t);
}

/** Start (and seed, unless told not to) one server of each kind for this test file. */
export function useServers(opts: { seed?: boolean } = {}): () => SandboxServers {
  let servers: SandboxServers | undefined;
  beforeAll(async () => {
    requireTools();
    servers = await startSandboxServers({});
    if (opts.seed ?? true) await seedSandbox(servers);
  });
  afterAll(async () => {
    if (servers) await stopSandboxServers(servers);
  });
  return () => {
    if (!servers) throw new Error("servers not started");
    return servers;
  };
}

/** A temp directory removed after the file's tests. */
export function useTempDir(prefix = "test"): () => string {
  let dir: string | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `backup-drill-${prefix}-`));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => dir!;
}

/** Environment variable names the CLI configs below refer to. */
export const SECRET_ENV = {
  pg: "TEST_PG_PASSWORD",
  redis: "TEST_REDIS_PASSWORD",
  minioAccess: "TEST_MINIO_ACCESS_KEY",
  minioSecret: "TEST_MINIO_SECRET_KEY",
} as const;

/** The env the CLI needs to resolve the config's secret references. */
export function secretEnv(s: SandboxServers): Record<string, string> {
  return {
    [SECRET_ENV.pg]: s.postgres.password.reveal(),
    [SECRET_ENV.redis]: s.redis.password.reveal(),
    [SECRET_ENV.minioAccess]: s.minio.accessKey.reveal(),
    [SECRET_ENV.minioSecret]: s.minio.secretKey.reveal(),
  };
}

/** Every secret value of the servers: the strings that must never appear in output, files or argv. */
export function secretValues(s: SandboxServers): string[] {
  return [s.postgres.password, s.redis.password, s.minio.secretKey].map((x) => x.reveal());
}

/** A config file (secrets by env reference) for the CLI, pointing at the servers. */
export function writeCliConfig(dir: string, s: SandboxServers, output: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  const cfg = {
    output,
    postgres: { host: s.postgres.host, port: s.postgres.port, user: "postgres", password: `env:${SECRET_ENV.pg}`, globals: true },
    redis: { host: s.redis.host, port: s.redis.port, password: `env:${SECRET_ENV.redis}`, bgsaveTimeout: "60s" },
    minio: {
      endpoint: s.minio.endpoint,
      accessKey: `env:${SECRET_ENV.minioAccess}`,
      secretKey: `env:${SECRET_ENV.minioSecret}`,
    },
    ...extra,
  };
  writeFileSync(path, JSON.stringify(cfg, null, 2));
  return path;
}
