/**
 * A source with none of the features beyond tables, keys and objects (no
 * materialized view, large object, function library, consumer group,
 * versioning or bucket configuration): backup and drill say nothing new.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { connectPostgres } from "../probes/postgres.js";
import { connectRedis } from "../probes/redis.js";
import { minioClient } from "../probes/minio.js";
import { DrillSummarySchema } from "../pipeline/drill-summary.js";
import { startSandboxServers, stopSandboxServers, type SandboxServers } from "../pipeline/sandbox.js";
import { runCli } from "./cli.js";
import { requireTools, secretEnv, useTempDir, writeCliConfig } from "./services/index.js";

const tmp = useTempDir("plain-source");

describe("a plain source", () => {
  let servers: SandboxServers;

  beforeAll(async () => {
    requireTools();
    servers = await startSandboxServers({});
    const pg = await connectPostgres(servers.postgres, "postgres");
    await pg.query("CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 50) g");
    await pg.end();
    const redis = await connectRedis(servers.redis);
    await redis.mset("a", "1", "b", "2");
    await redis.xadd("log", "*", "event", "boot"); // a stream, but no consumer group
    redis.disconnect();
    const s3 = minioClient({ ...servers.minio, region: "us-east-1" });
    await s3.makeBucket("files");
    await s3.putObject("files", "hello.txt", Buffer.from("hello"), 5);
  });
  afterAll(async () => {
    if (servers) await stopSandboxServers(servers);
  });

  it("gets no warning and no new check from backup or restore-drill", async () => {
    const output = join(tmp(), "out");
    const config = writeCliConfig(tmp(), servers, output, {
      postgres: { host: servers.postgres.host, port: servers.postgres.port, user: "postgres", password: "env:TEST_PG_PASSWORD", databases: ["postgres"] },
    });
    const env = secretEnv(servers);
    const backup = await runCli(["backup", "--config", config], { env });
    expect(backup.code, backup.stderr).toBe(0);
    const drill = await runCli(["restore-drill", "--config", config, "--json"], { env });
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    for (const out of [backup.stdout, backup.stderr, drill.stderr]) expect(out).not.toMatch(/WARN/);
    const summary = DrillSummarySchema.parse(JSON.parse(drill.stdout));
    const kinds = (["postgres", "redis", "minio"] as const).flatMap((s) => summary.services[s]!.checks.map((c) => `${s} ${c.check}`));
    expect([...new Set(kinds)].sort()).toEqual([
      "minio canary",
      "minio object-attributes",
      "minio object-content",
      "minio object-count",
      "minio object-keys",
      "postgres row-count",
      "postgres schema-roundtrip",
      "redis key-values",
      "redis keyspace",
    ]);
    expect(summary.services.minio!.checks.filter((c) => c.warning)).toEqual([]);
    const human = await runCli(["restore-drill", "--config", config, "--quiet"], { env });
    expect(human.stdout).not.toMatch(/WARN/);
  });
});
