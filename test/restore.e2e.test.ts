import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minioClient } from "../probes/minio.js";
import { connectPostgres } from "../probes/postgres.js";
import { backupSet } from "../pipeline/backup.js";
import { silentProgress } from "../pipeline/progress.js";
import { RestoreSummarySchema } from "../pipeline/restore-summary.js";
import { sandboxConfig, startSandboxServers, stopSandboxServers, type SandboxServers } from "../pipeline/sandbox.js";
import { runCli, type CliResult } from "./cli.js";
import {
  minioBucketSettingsFingerprint,
  minioFingerprint,
  minioVersionsFingerprint,
  pgFingerprint,
  pgLargeObjectFingerprint,
  pgMatviewFingerprint,
  redisFingerprint,
  redisFunctionsFingerprint,
  redisStreamGroupsFingerprint,
  sameRedis,
} from "./fingerprint.js";
import { ArgvSampler } from "./procs.js";
import { filesContaining } from "./secrets.js";
import { secretValues, useServers, useTempDir } from "./services/index.js";

const source = useServers();
const tmp = useTempDir("restore");

/** Everything a target holds that a restore could touch, fingerprinted. */
async function snapshot(s: SandboxServers) {
  const admin = await connectPostgres(s.postgres, "postgres");
  const dbs = (await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")).rows.map((r) => r.datname);
  await admin.end();
  const pg: Record<string, unknown> = {};
  for (const db of dbs) pg[db] = await pgFingerprint(s.postgres, db);
  const client = minioClient({ ...s.minio, region: "us-east-1" });
  const buckets: Record<string, unknown> = {};
  for (const b of (await client.listBuckets()).map((x) => x.name).sort()) buckets[b] = await minioFingerprint(client, b);
  return { pg, redis: [await redisFingerprint(s.redis, 0), await redisFingerprint(s.redis, 1)], buckets };
}

/** The snapshots agree: exactly, but Redis expiry moments within sameRedis()'s tolerance. */
async function expectUnchanged(s: SandboxServers, before: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  const after = await snapshot(s);
  expect({ ...after, redis: null }).toEqual({ ...before, redis: null });
  for (const db of [0, 1]) expect(sameRedis(before.redis[db]!, after.redis[db]!).differences).toEqual([]);
}

describe("restore into real servers", () => {
  let output: string;
  let setId: string;
  let target: SandboxServers; // empty at first, then the round trip fills it
  let other: SandboxServers; // empty, for selective restores
  let targetFile: string;
  let otherFile: string;
  let env: Record<string, string>;

  function targetConfig(s: SandboxServers, prefix: string): string {
    const path = join(tmp(), `${prefix}-targets.json`);
    writeFileSync(
      path,
      JSON.stringify({
        postgres: { host: s.postgres.host, port: s.postgres.port, user: "postgres", password: `env:${prefix}_PG` },
        redis: { host: s.redis.host, port: s.redis.port, password: `env:${prefix}_REDIS` },
        minio: { endpoint: s.minio.endpoint, accessKey: `env:${prefix}_MINIO_AK`, secretKey: `env:${prefix}_MINIO_SK` },
      }),
    );
    env[`${prefix}_PG`] = s.postgres.password.reveal();
    env[`${prefix}_REDIS`] = s.redis.password.reveal();
    env[`${prefix}_MINIO_AK`] = s.minio.accessKey.reveal();
    env[`${prefix}_MINIO_SK`] = s.minio.secretKey.reveal();
    return path;
  }

  const restore = (args: string[], onSpawn?: (pid: number) => void) => runCli(["restore", "--output", output, ...args], { env, ...(onSpawn ? { onSpawn } : {}) });

  beforeAll(async () => {
    output = join(tmp(), "out");
    const r = await backupSet(sandboxConfig(source(), output, {}), { progress: silentProgress });
    setId = r.id;
    [target, other] = [await startSandboxServers({}), await startSandboxServers({})];
    env = {};
    targetFile = targetConfig(target, "TGT");
    otherFile = targetConfig(other, "OTH");
  });
  afterAll(async () => {
    await Promise.all([target && stopSandboxServers(target), other && stopSandboxServers(other)]);
  });

  /** The full restore into the empty `target`, run once by whichever test needs a filled target first. */
  let roundTrip: Promise<{ r: CliResult; argvSeen: string[] }> | undefined;
  function filledTarget(): Promise<{ r: CliResult; argvSeen: string[] }> {
    roundTrip ??= (async () => {
      const sampler = new ArgvSampler();
      const r = await restore(["--target-config", targetFile, "--globals", "--json"], (pid) => sampler.start(pid));
      return { r, argvSeen: sampler.stop() };
    })();
    return roundTrip;
  }

  it("round trip: backup -> restore into empty servers -> its checks pass and an independent comparison finds no difference", async () => {
    const { r, argvSeen } = await filledTarget();
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const summary = RestoreSummarySchema.parse((({ summaryPath: _p, ...rest }) => rest)(doc));
    expect(summary.ok).toBe(true);
    expect(summary.totals.failed).toBe(0);
    expect(summary.services.redis!.checks.map((c) => c.check)).toEqual(["keyspace", "keyspace", "key-values", "key-values", "functions", "stream-groups"]);
    expect(readdirSync(join(output, "restores"))).toContain(basename(doc.summaryPath));
    expect(basename(doc.summaryPath)).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
    expect(JSON.parse(readFileSync(doc.summaryPath, "utf8")).setId).toBe(setId);

    for (const db of ["app", "analytics"]) expect(await pgFingerprint(target.postgres, db)).toEqual(await pgFingerprint(source().postgres, db));
    for (const db of [0, 1]) expect(sameRedis(await redisFingerprint(target.redis, db), await redisFingerprint(source().redis, db)).differences).toEqual([]);
    const src = minioClient({ ...source().minio, region: "us-east-1" });
    const dst = minioClient({ ...target.minio, region: "us-east-1" });
    for (const b of ["assets", "logs"]) expect(await minioFingerprint(dst, b)).toEqual(await minioFingerprint(src, b));
    // Beyond rows, keys and current objects, compared without the product's own code:
    // materialized views (populated and not), large objects, function libraries, consumer groups,
    expect(await pgMatviewFingerprint(target.postgres, "app")).toEqual(await pgMatviewFingerprint(source().postgres, "app"));
    expect(Object.keys(await pgMatviewFingerprint(target.postgres, "app"))).toEqual(["public.customer_order_counts", "public.monthly_revenue"]);
    expect(await pgLargeObjectFingerprint(target.postgres, "app")).toEqual(await pgLargeObjectFingerprint(source().postgres, "app"));
    expect(Object.keys(await pgLargeObjectFingerprint(target.postgres, "app"))).toHaveLength(12);
    expect(await redisFunctionsFingerprint(target.redis)).toEqual(await redisFunctionsFingerprint(source().redis));
    expect(await redisFunctionsFingerprint(target.redis)).toHaveLength(1);
    expect(await redisStreamGroupsFingerprint(target.redis, 0)).toEqual(await redisStreamGroupsFingerprint(source().redis, 0));
    // and every version and delete marker of the versioned bucket, in order, with its settings.
    const versions = await minioVersionsFingerprint(target.minio, dst, "archive");
    expect(versions).toEqual(await minioVersionsFingerprint(source().minio, src, "archive"));
    expect(Object.fromEntries(Object.entries(versions).map(([k, vs]) => [k, vs.length]))).toEqual({ "reports/draft.txt": 2, "reports/q1.csv": 3, "tmp/scratch.bin": 4 });
    expect(minioBucketSettingsFingerprint(target.minio, "archive")).toEqual(minioBucketSettingsFingerprint(source().minio, "archive"));
    expect(minioBucketSettingsFingerprint(target.minio, "archive")).toMatchObject({ versioning: "Enabled", lifecycle: [expect.objectContaining({ ID: "expire-old-report-versions" })] });
    // Roles came back with --globals.
    const c = await connectPostgres(target.postgres, "postgres");
    expect((await c.query("SELECT 1 FROM pg_roles WHERE rolname = 'app_reader'")).rowCount).toBe(1);
    await c.end();
    const secrets = [...secretValues(source()), ...secretValues(target)];
    for (const s of secrets) {
      expect(r.stdout).not.toContain(s);
      expect(r.stderr).not.toContain(s);
    }
    expect(filesContaining(output, secrets)).toEqual([]);
    expect(argvSeen.some((c) => /pg_restore .*--exit-on-error/.test(c))).toBe(true); // the sampler saw the restore run
    expect(argvSeen.filter((c) => secrets.some((s) => c.includes(s)))).toEqual([]);
  });

  it.each([
    ["postgres", /refusing to overwrite: postgres database "analytics" on 127\.0\.0\.1:\d+ has 3 user object\(s\) \(events\.page_views, events\.page_views_id_seq, schema events\); postgres database "app" on 127\.0\.0\.1:\d+ has \d+ user object\(s\)/],
    ["redis", /refusing to overwrite: redis db0 on 127\.0\.0\.1:\d+ has 494 key\(s\).*redis db1 on 127\.0\.0\.1:\d+ has 161 key\(s\); redis function library shop exists on 127\.0\.0\.1:\d+/],
    ["minio", /refusing to overwrite: minio bucket archive has 1 object\(s\) at keys the set would write \(reports\/q1\.csv\); minio bucket assets has 46 object\(s\) at keys the set would write \(.*\).*minio bucket logs has 40 object\(s\)/],
  ])("guard: %s refuses a non-empty target (exit 2, one line naming it) and leaves it unchanged; --dry-run too; --force restores", async (service, pattern) => {
    const filled = (await filledTarget()).r;
    expect(filled.code, filled.stderr).toBe(0);
    const before = await snapshot(target);
    const refused = await restore(["--target-config", targetFile, "--services", service]);
    expect(refused.code).toBe(2);
    const line = refused.stderr.split("\n").filter((l) => l.includes("refusing to overwrite"));
    expect(line).toHaveLength(1);
    expect(line[0]).toMatch(pattern);
    await expectUnchanged(target, before);

    const dry = await restore(["--target-config", targetFile, "--services", service, "--dry-run"]);
    expect(dry.code).toBe(2); // what the real run would do
    expect(dry.stdout).toMatch(/restore plan \(dry run, nothing changed\)/);
    expect(dry.stdout).toMatch(/overwrite/);
    const dryForce = await restore(["--target-config", targetFile, "--services", service, "--dry-run", "--force", "--json"]);
    expect(dryForce.code).toBe(0);
    expect(JSON.parse(dryForce.stdout).plan.some((a: { kind: string }) => a.kind === "overwrite")).toBe(true);
    await expectUnchanged(target, before);

    const forced = await restore(["--target-config", targetFile, "--services", service, "--force", "--quiet"]);
    expect(forced.code, forced.stderr + forced.stdout).toBe(0);
    expect(forced.stdout).toMatch(/checks: PASSED/);
  });

  it("a configured backup source as target is refused without --force", async () => {
    const cfg = join(tmp(), "with-source.json");
    writeFileSync(cfg, JSON.stringify({ output, postgres: { host: "localhost", port: source().postgres.port, password: "env:SRC_PG" } }));
    const srcTarget = join(tmp(), "src-target.json");
    writeFileSync(srcTarget, JSON.stringify({ postgres: { host: "127.0.0.1", port: source().postgres.port, password: "env:SRC_PG" } }));
    const r = await runCli(["restore", "--config", cfg, "--target-config", srcTarget, "--dry-run"], { env: { ...env, SRC_PG: source().postgres.password.reveal() } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/target postgres 127\.0\.0\.1:\d+ is a configured backup source/);
  });

  it("--dry-run against empty servers plans creations and changes nothing", async () => {
    const before = await snapshot(other);
    const summaries = () => (existsSync(join(output, "restores")) ? readdirSync(join(output, "restores")) : []);
    const summariesBefore = summaries();
    const r = await restore(["--target-config", otherFile, "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/create\s+postgres\s+create database "app"/);
    expect(r.stdout).toMatch(/create\s+minio\s+create bucket assets/);
    expect(r.stdout).toMatch(/restore\s+redis\s+copy keys into db0/);
    expect(r.stdout).toMatch(/create\s+redis\s+load function library shop \(FUNCTION RESTORE\)/);
    expect(r.stdout).toMatch(/create\s+minio\s+create bucket archive and put its 6 versions and 3 delete markers, oldest first; then its versioning, lifecycle configuration/);
    await expectUnchanged(other, before);
    expect(summaries()).toEqual(summariesBefore); // a dry run writes no restore summary
  });

  it("selective: one database under a new name, one Redis db, one bucket prefix", async () => {
    const r = await restore([
      "--target-config", otherFile,
      "--db", "app", "--rename-db", "app=app_restored",
      "--redis-db", "1",
      "--bucket", "assets", "--prefix", "images/",
      "--json", "--quiet",
    ]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(true);
    expect(await pgFingerprint(other.postgres, "app_restored")).toEqual(await pgFingerprint(source().postgres, "app"));
    const admin = await connectPostgres(other.postgres, "postgres");
    const dbs = (await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")).rows.map((x) => x.datname);
    await admin.end();
    expect(dbs).toEqual(["app_restored", "postgres"]);
    expect(await redisFingerprint(other.redis, 0)).toEqual({});
    expect(await redisFunctionsFingerprint(other.redis)).toEqual([]); // a selective restore leaves them out, and says so:
    expect(JSON.parse(r.stdout).plan).toContainEqual(expect.objectContaining({ service: "redis", kind: "skip", detail: "function libraries not copied: --redis-db restores some dbs only" }));
    expect(sameRedis(await redisFingerprint(other.redis, 1), await redisFingerprint(source().redis, 1)).differences).toEqual([]);
    const src = minioClient({ ...source().minio, region: "us-east-1" });
    const dst = minioClient({ ...other.minio, region: "us-east-1" });
    const restored = await minioFingerprint(dst, "assets");
    expect(Object.keys(restored)).toHaveLength(30);
    expect(restored).toEqual(await minioFingerprint(src, "assets", "images/"));
    expect(await dst.bucketExists("logs")).toBe(false);
  });
});
