import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkPgDumpVersion } from "../pipeline/backup/postgres.js";
import { parseDuration, formatDuration } from "../pipeline/duration.js";
import { hashFile, parseSha256sums, sha256Hex, sha256sumLine } from "../pipeline/hash.js";
import { pathSegment, planMinio, planPostgres, planRedis } from "../pipeline/plan.js";
import { secretBagFromConfig } from "../pipeline/runners/host.js";
import { Secret } from "../pipeline/secret.js";
import { setIdFor, timeOfSetId } from "../pipeline/store/ids.js";
import { insideDir, keyPathProblem, mapKeysToPaths } from "../probes/minio.js";
import { normalizeConfigXml, versioningOf, hasDefaultRetention } from "../probes/minio.js";
import { parseKeyspace, parseInfo, sampleShares } from "../probes/redis.js";
import { keyspaceDrift } from "../pipeline/backup/redis.js";
import { configsToRestore } from "../pipeline/restore/minio.js";
import { rowCountCheck } from "../pipeline/restore/postgres.js";
import { useTempDir } from "./services/index.js";

describe("plan", () => {
  const pg = { host: "db", port: 5433, user: "backup", password: new Secret("pw-123456", "env:X"), jobs: 3, compression: "gzip:1", globals: true, sanityQueries: [] };

  it("builds pg_dump argv with connection flags, exported snapshot and a quoted dbname — and no secret", () => {
    const steps = planPostgres(pg, { serverMajor: 15, pgDump: { version: "15.14", major: 15 }, databases: ["app", "we'ird db"], snapshots: { app: "00000003-1" } }, { host: "db", port: 5433 });
    expect(steps.map((s) => s.id)).toEqual(["postgres/globals", "postgres/dump/app", "postgres/schema/app", "postgres/dump/we'ird db", "postgres/schema/we'ird db"]);
    expect(steps[1]!.argv).toEqual([
      "pg_dump", "--format=directory", "--jobs=3", "--compress=1", "--snapshot=00000003-1",
      "--host", "db", "--port", "5433", "--username", "backup", "--no-password",
      "--file", "postgres/app", "--dbname", "dbname='app'",
    ]);
    // The schema the drill compares with: pg_dump --schema-only in the same snapshot, as the drill dumps the restored side.
    expect(steps[2]!.argv).toEqual([
      "pg_dump", "--schema-only", "--snapshot=00000003-1",
      "--host", "db", "--port", "5433", "--username", "backup", "--no-password",
      "--file", "postgres/app.schema.sql", "--dbname", "dbname='app'",
    ]);
    expect(steps[3]!.argv.at(-1)).toBe("dbname='we\\'ird db'");
    expect(steps[3]!.outputs).toEqual(["postgres/we%27ird%20db"]);
    expect(steps[1]!.secretEnv).toEqual({ PGPASSWORD: "postgres.password" });
    // Every step talks to the server: a stall message names it, whichever step stalls first.
    for (const s of steps) expect(s.waitsFor, s.id).toBe("postgres at db:5433");
    expect(JSON.stringify(steps)).not.toContain("pw-123456");
  });

  it("pulls the RDB with redis-cli and checks it; the password travels as REDISCLI_AUTH", () => {
    const steps = planRedis(
      { host: "r", port: 6380, username: "backup", password: new Secret("rpw", "env:R"), bgsaveTimeoutMs: 1, sampleSize: 1, samplePatterns: [] },
      { version: "7.0.15" },
      { host: "r", port: 6380 },
    );
    expect(steps[0]!.argv).toEqual(["redis-cli", "-h", "r", "-p", "6380", "--user", "backup", "--no-auth-warning", "--rdb", "redis/dump.rdb"]);
    expect(steps[0]!.secretEnv).toEqual({ REDISCLI_AUTH: "redis.password" });
    expect(steps[1]!.argv).toEqual(["redis-check-rdb", "redis/dump.rdb"]);
  });

  it("mirrors each bucket with mc, credentials only in MC_HOST_src", () => {
    const src = { endpoint: "http://m:9000", accessKey: new Secret("ak", "literal"), secretKey: new Secret("sk/+=", "env:S"), region: "us-east-1", canary: true };
    const [step] = planMinio(src, { buckets: ["assets"] });
    expect(step!.argv).toEqual(["mc", "mirror", "--quiet", "--no-color", "src/assets", "minio/assets"]);
    expect(step!.secretEnv).toEqual({ MC_HOST_src: "minio.mcHost" });
    const bag = secretBagFromConfig({ source: "t", output: "/o", tools: {}, minio: src });
    // mc reads the keys raw (no URL decoding): they go in as they are.
    expect(bag["minio.mcHost"]!.reveal()).toBe("http://ak:sk/+=@m:9000");
    const bad = secretBagFromConfig({ source: "t", output: "/o", tools: {}, minio: { ...src, secretKey: new Secret("a@b", "env:S") } });
    expect(() => bad["minio.mcHost"]!.reveal()).toThrow(/minio\.secretKey contains '@'/);
  });

  it("encodes names as single safe path segments", () => {
    expect(pathSegment("app")).toBe("app");
    expect(pathSegment("a/b")).toBe("a%2Fb");
    expect(pathSegment("..")).toBe("%2E%2E");
    expect(pathSegment("ключ")).toBe("%D0%BA%D0%BB%D1%8E%D1%87");
  });

  it("refuses a pg_dump older than the server, naming both versions", () => {
    expect(() => checkPgDumpVersion("14.11", "15.18")).toThrow(/pg_dump 14\.11 is older than the server \(PostgreSQL 15\.18\)/);
    expect(() => checkPgDumpVersion("16.1", "15.18")).not.toThrow();
    expect(() => checkPgDumpVersion("15.2", "15.18")).not.toThrow();
  });
});

describe("object keys as paths", () => {
  it.each([
    ["plain/key.txt", undefined],
    ["with space+plus%.txt", undefined],
    ["a..b", undefined],
    ["folder/", undefined],
    ["../escape", 'key has a ".." path segment'],
    ["a/../../etc/passwd", 'key has a ".." path segment'],
    ["./x", 'key has a "." path segment'],
    ["/abs", "key starts with /"],
    ["a//b", "key has an empty path segment (//)"],
    ["nul\0byte", "key contains a NUL byte"],
    ["x".repeat(256), "a path segment is longer than 255 bytes"],
  ])("%j -> %s", (key, problem) => {
    expect(keyPathProblem(key, 1 - Number(key.endsWith("/")))).toBe(problem);
  });

  it("gives a key that is also a folder of other keys no path", () => {
    const m = mapKeysToPaths([{ key: "x", size: 1 }, { key: "x/y", size: 1 }, { key: "d/", size: 0 }, { key: "../up", size: 1 }]);
    expect(m.get("x")).toEqual({ problem: "key is also the folder of other keys" });
    expect(m.get("x/y")).toEqual({ path: "x/y" });
    expect(m.get("d/")).toEqual({ path: "d" });
    expect(m.get("../up")).toEqual({ problem: 'key has a ".." path segment' });
  });

  it("never joins a path outside its base", () => {
    expect(insideDir("/set/minio/b", "a/b.txt")).toBe("/set/minio/b/a/b.txt");
    for (const bad of ["../x", "a/../../x", "/etc/passwd", ".", ""]) expect(() => insideDir("/set/minio/b", bad)).toThrow(/outside/);
  });
});

describe("checksums", () => {
  const tmp = useTempDir("sums");

  it("writes lines GNU sha256sum -c accepts, names with backslash and newline included", async () => {
    const dir = tmp();
    const names = ["plain.txt", "with space.txt", "back\\slash.txt", "new\nline.txt", "ünï.txt"];
    let sums = "";
    for (const n of names) {
      writeFileSync(join(dir, n), `content of ${n}`);
      const d = await hashFile(join(dir, n));
      expect(d.sha256).toBe(sha256Hex(`content of ${n}`));
      sums += sha256sumLine(d.sha256, n);
    }
    writeFileSync(join(dir, "SUMS"), sums);
    const out = execFileSync("sha256sum", ["-c", "SUMS"], { cwd: dir }).toString();
    expect(out.match(/: OK/g)).toHaveLength(names.length);
    expect(parseSha256sums(sums).map((l) => l.path)).toEqual(names);
  });
});

describe("small parsers", () => {
  it("durations", () => {
    expect(parseDuration("26h")).toBe(26 * 3_600_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("3d")).toBe(259_200_000);
    expect(parseDuration("3 days")).toBeUndefined();
    expect(formatDuration(93_784_000)).toBe("1d2h");
  });

  it("set ids sort by time and round-trip", () => {
    const id = setIdFor(new Date("2026-11-25T16:39:20.123Z"));
    expect(id).toBe("2026-11-25T16-39-20Z");
    expect(timeOfSetId(`${id}-2`)!.toISOString()).toBe("2026-11-25T16:39:20.000Z");
  });

  it("redis INFO keyspace", () => {
    const info = parseInfo("# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=5\r\ndb12:keys=7,expires=0,avg_ttl=0\r\n");
    expect(parseKeyspace(info)).toEqual([
      { db: 0, keys: 3, expires: 1 },
      { db: 12, keys: 7, expires: 0 },
    ]);
  });
});

describe("Redis sample shares", () => {
  it("spreads the configured total in proportion, with a floor of min(keys, 100) per db on top", () => {
    const shares = sampleShares(
      [
        { db: 0, keys: 100_000, expires: 0 },
        { db: 1, keys: 503, expires: 0 },
        { db: 2, keys: 17, expires: 0 },
        { db: 3, keys: 0, expires: 0 },
      ],
      1000,
    );
    expect(Object.fromEntries(shares)).toEqual({ 0: 995, 1: 100, 2: 17 });
    expect(Object.fromEntries(sampleShares([{ db: 0, keys: 5000, expires: 0 }], 0))).toEqual({ 0: 100 });
    expect(Object.fromEntries(sampleShares([{ db: 0, keys: 50, expires: 0 }], 1000))).toEqual({ 0: 50 });
  });

  it("records how the keyspace moved between the request and the snapshot", () => {
    expect(keyspaceDrift([{ db: 0, keys: 120, expires: 3 }], [{ db: 0, keys: 100, expires: 4 }, { db: 2, keys: 5, expires: 0 }])).toEqual([
      { db: 0, keys: 20, expires: -1 },
      { db: 2, keys: -5, expires: 0 },
    ]);
  });
});

describe("materialized view row counts", () => {
  const view = { schema: "public", name: "v", kind: "matview" as const, bytes: 0 };
  it("compares a populated view's rows, names a stale source, and wants an unpopulated one back unpopulated", () => {
    expect(rowCountCheck("db.public.v", { ...view, rows: 40, populated: true, storedRows: 40 }, { ...view, rows: 40, populated: true, storedRows: 40 }, Date.now())).toMatchObject({ ok: true, expected: 40, actual: 40 });
    const stale = rowCountCheck("db.public.v", { ...view, rows: 40, populated: true, storedRows: 0 }, { ...view, rows: 40, populated: true, storedRows: 40 }, Date.now());
    expect(stale).toMatchObject({ ok: true, detail: expect.stringMatching(/held 0 at backup time/) });
    expect(rowCountCheck("db.public.v", { ...view, rows: 0, populated: false }, { ...view, rows: 0, populated: false }, Date.now())).toMatchObject({ ok: true, expected: "not populated", actual: "not populated" });
    expect(rowCountCheck("db.public.v", { ...view, rows: 0, populated: false }, { ...view, rows: 3, populated: true }, Date.now())).toMatchObject({ ok: false, actual: 3 });
    expect(rowCountCheck("db.public.v", { ...view, rows: 0, populated: false }, undefined, Date.now())).toMatchObject({ ok: false, detail: "materialized view missing after restore" });
  });
});

describe("bucket configurations", () => {
  it("reads versioning and default retention from the XML, and compares configurations without namespaces or whitespace", () => {
    expect(versioningOf('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Suspended</Status></VersioningConfiguration>')).toBe("Suspended");
    expect(versioningOf("<VersioningConfiguration/>")).toBeNull();
    expect(hasDefaultRetention("<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>")).toBe(false);
    expect(normalizeConfigXml('<?xml version="1.0"?>\n<A xmlns="x">\n  <B>1</B>\n</A>')).toBe("<A><B>1</B></A>");
  });

  it("puts versioning, the default retention and lifecycle back after the objects, and none on a prefix restore", () => {
    const bucket = {
      name: "b", dir: "minio/b", listing: "minio/b.objects.jsonl", objects: 0, bytes: 0, markers: 0, unmapped: 0,
      configs: { versioning: "<V/>", objectLock: "<O><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></O>", lifecycle: "<L/>" },
    };
    expect(configsToRestore(bucket, {}).map(([w]) => w)).toEqual(["versioning", "objectLock", "lifecycle"]);
    expect(configsToRestore({ ...bucket, configs: { objectLock: "<O><ObjectLockEnabled>Enabled</ObjectLockEnabled></O>" } }, {})).toEqual([]);
    expect(configsToRestore(bucket, { prefix: "a/" })).toEqual([]);
  });
});
