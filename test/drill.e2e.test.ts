import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { backupSet } from "../pipeline/backup.js";
import { DrillSummarySchema, readDrillSummary } from "../pipeline/drill-summary.js";
import { listFiles, hashFile, sha256Hex } from "../pipeline/hash.js";
import { listingText, readListing } from "../pipeline/listing.js";
import { ManifestSchema, writeManifest, type Manifest } from "../pipeline/manifest.js";
import { silentProgress } from "../pipeline/progress.js";
import { SANDBOX_SANITY_QUERIES, sandboxConfig } from "../pipeline/sandbox.js";
import { SEED_FUNCTION_LIBRARY } from "../pipeline/seed.js";
import { BIN, REPO, runCli } from "./cli.js";
import { backupDrillTempDirs, isDescendant, processesUnder, serversUnder } from "./procs.js";
import { secretEnv, secretValues, useServers, useTempDir, writeCliConfig } from "./services/index.js";

const servers = useServers();
const tmp = useTempDir("drill");

/** backup-drill temp dirs (server data, mc config) in this test's own TMPDIR, where every one the CLI makes goes. */
function tempDirs(): string[] {
  return backupDrillTempDirs(tmpdir());
}

/** Processes still running that this test's CLI started: they inherited its TMPDIR or run in it. */
const leftoverProcesses = () => processesUnder(tmpdir()).map((p) => `${p.pid} ${p.cmd}`);

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

describe("restore-drill", () => {
  let output: string;
  let setId: string;
  let setDir: string;
  let config: string;
  let env: Record<string, string>;

  /** Copy the fresh set to a new output root, let `edit` change its expectations, and seal it again. */
  async function resealedCopy(name: string, edit: (m: Manifest, dir: string) => Promise<void> | void): Promise<string> {
    const root = join(tmp(), name);
    mkdirSync(root, { recursive: true });
    const dir = join(root, setId);
    cpSync(setDir, dir, { recursive: true });
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
    await edit(manifest, dir);
    for (const f of manifest.files) Object.assign(f, await hashFile(join(dir, f.path)));
    await writeManifest(dir, manifest);
    writeFileSync(join(root, "latest.json"), JSON.stringify({ id: setId, path: dir, completedAt: manifest.finishedAt, manifestSha256: "0".repeat(64) }));
    return root;
  }

  beforeAll(async () => {
    output = join(tmp(), "out");
    // The sandbox config carries sanity queries; the CLI gets the same through a config file.
    const cfg = sandboxConfig(servers(), output, {});
    const r = await backupSet(cfg, { progress: silentProgress });
    setId = r.id;
    setDir = r.dir;
    env = secretEnv(servers());
    config = writeCliConfig(tmp(), servers(), output, {
      postgres: {
        host: servers().postgres.host,
        port: servers().postgres.port,
        password: "env:TEST_PG_PASSWORD",
        globals: true,
        sanityQueries: cfg.postgres!.sanityQueries,
      },
    });
  });

  it("passes every check on a fresh backup, writes a valid summary, and leaves nothing running", async () => {
    const t0 = Date.now();
    const r = await runCli(["restore-drill", "--config", config, "--json"], { env });
    const t1 = Date.now();
    expect(r.code, r.stderr).toBe(0);
    const summary = DrillSummarySchema.parse(JSON.parse(r.stdout));
    expect(summary).toMatchObject({ ok: true, setId, runner: "host", manifestSha256: sha256Hex(readFileSync(join(setDir, "manifest.json"))) });
    // Every check with the values it compared: what the seed put in and the backup recorded.
    const schemaLines = (db: string) => {
      const lines = readFileSync(join(setDir, `postgres/${db}.schema.sql`), "utf8").split("\n");
      return `${lines.filter((l) => !/^\\(un)?restrict |^-- Dumped (from database|by pg_dump) version /.test(l)).length} lines`;
    };
    const sanity = Object.fromEntries(SANDBOX_SANITY_QUERIES.map((q) => [q.name, q.expect]));
    const pass = (service: string, check: string, subject: string, expected: unknown, actual: unknown = expected) => ({ service, check, subject, ok: true, expected, actual });
    const expected = {
      postgres: [
        pass("postgres", "row-count", "analytics.events.page_views", 5000),
        pass("postgres", "row-count", "app.public.attachments", 300),
        pass("postgres", "row-count", "app.public.customer_order_counts", 500), // a materialized view: one row per customer
        pass("postgres", "row-count", "app.public.customers", 500),
        pass("postgres", "row-count", "app.public.invoices", 12),
        pass("postgres", "row-count", "app.public.monthly_revenue", "not populated"), // created WITH NO DATA
        // 12 large objects of 640 x n bytes (n = 1..12): 640 x 78 bytes.
        pass("postgres", "large-objects", "app", expect.stringMatching(/^12 objects, 49920 bytes, digest [0-9a-f]{12}$/)),
        pass("postgres", "row-count", "app.public.order_items", 5970),
        pass("postgres", "row-count", "app.public.orders", 2000),
        pass("postgres", "row-count", "app.public.products", 200),
        ...["analytics", "app", "postgres"].map((db) => pass("postgres", "schema-roundtrip", db, schemaLines(db))),
        pass("postgres", "sanity-query", "customers exist", sanity["customers exist"], 500),
        pass("postgres", "sanity-query", "every order has a customer", sanity["every order has a customer"], "0"),
        pass("postgres", "sanity-query", "order statuses", sanity["order statuses"], [["new", 500], ["paid", 500], ["returned", 500], ["shipped", 500]]),
      ],
      redis: [
        pass("redis", "keyspace", "db0", { keys: 494, expires: 51 }),
        pass("redis", "keyspace", "db1", { keys: 161, expires: 1 }),
        pass("redis", "key-values", "db0", 494), // small dbs are sampled whole
        pass("redis", "key-values", "db1", 161),
        // The seeded library: its code's sha256, computed here from the seed, not by the product.
        pass("redis", "functions", "libraries", [`shop (LUA, 2 function(s), code ${createHash("sha256").update(SEED_FUNCTION_LIBRARY).digest("hex").slice(0, 12)})`]),
        pass("redis", "stream-groups", "db0", "1 stream(s), 1 group(s)"), // events, with the group mailer
      ],
      minio: [
        ...[["assets", 46], ["logs", 40]].flatMap(([b, n]) => [
          pass("minio", "object-count", b as string, n),
          pass("minio", "object-keys", b as string, { missing: 0, extra: 0 }),
          pass("minio", "object-content", b as string, n),
          pass("minio", "object-attributes", b as string, n),
          pass("minio", "canary", b as string, "write, read back, delete", "ok"),
        ]),
        // archive (versioned): reports/q1.csv x3, reports/draft.txt + a delete marker, tmp/scratch.bin x2 + 2 delete markers.
        pass("minio", "object-count", "archive", 9), // 6 versions and 3 delete markers
        pass("minio", "object-keys", "archive", { missing: 0, extra: 0 }),
        pass("minio", "object-content", "archive", 6),
        pass("minio", "object-attributes", "archive", 6),
        pass("minio", "canary", "archive", "write, read back, delete", "ok"),
        pass("minio", "versioning", "archive", "Enabled"),
        pass("minio", "object-versions", "archive", "3 keys, 6 versions, 3 delete markers", "3 keys in order"),
        pass("minio", "bucket-config", "archive versioning", "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
        pass(
          "minio",
          "bucket-config",
          "archive lifecycle",
          "<LifecycleConfiguration><Rule><ID>expire-old-report-versions</ID><Status>Enabled</Status><Filter><Prefix>reports/</Prefix></Filter><NoncurrentVersionExpiration><NoncurrentDays>365</NoncurrentDays></NoncurrentVersionExpiration></Rule></LifecycleConfiguration>",
        ),
      ],
    };
    const bySubject = (a: { check: string; subject: string }, b: { check: string; subject: string }) => `${a.check} ${a.subject}`.localeCompare(`${b.check} ${b.subject}`);
    for (const s of ["postgres", "redis", "minio"] as const) {
      const got = summary.services[s]!;
      expect(got.checks.map(({ durationMs: _d, detail: _x, ...c }) => c).sort(bySubject), s).toEqual(expected[s].sort(bySubject));
      // Times: each service restored and then checked within the drill's own wall time, each check within its service's check time.
      expect(got.restoreMs, s).toBeGreaterThan(0);
      expect(got.restoreMs + got.checksMs, s).toBeLessThanOrEqual(Date.parse(summary.finishedAt) - Date.parse(summary.startedAt));
      for (const c of got.checks) expect(c.durationMs, c.subject).toBeLessThanOrEqual(got.checksMs);
      // The per-phase profile: server start, restore, and each kind of check with how many ran and their wall span.
      const p = got.profile!;
      expect(p).toMatchObject({ restoreMs: got.restoreMs, checksMs: got.checksMs });
      expect(p.serverStartMs, s).toBeGreaterThan(0);
      const kinds = [...new Set(got.checks.map((c) => c.check))].sort();
      expect(Object.keys(p.checks).sort(), s).toEqual(kinds);
      for (const k of kinds) {
        expect(p.checks[k]!.count, `${s} ${k}`).toBe(got.checks.filter((c) => c.check === k).length);
        expect(p.checks[k]!.ms, `${s} ${k}`).toBeLessThanOrEqual(got.checksMs);
        expect(p.checks[k]!.ms, `${s} ${k}`).toBeGreaterThanOrEqual(Math.max(...got.checks.filter((c) => c.check === k).map((c) => c.durationMs)));
      }
    }
    // Redis's restore is its server starting on the set's dump.rdb.
    expect(summary.services.redis!.profile!.serverStartMs).toBe(summary.services.redis!.restoreMs);
    // The set is verified (the servers start meanwhile) before anything is restored; the whole drill's wall time.
    expect(summary.profile!.verifyMs).toBeGreaterThan(0);
    expect(summary.profile!.wallMs).toBeGreaterThanOrEqual(Math.max(...(["postgres", "redis", "minio"] as const).map((s) => summary.services[s]!.restoreMs + summary.services[s]!.checksMs)));
    expect(summary.profile!.wallMs).toBeLessThanOrEqual(Date.parse(summary.finishedAt) - Date.parse(summary.startedAt));
    // Materialized views: the populated one by its rows, the WITH NO DATA one back unpopulated.
    expect(summary.services.postgres!.checks.find((c) => c.subject === "app.public.customer_order_counts")).toMatchObject({ expected: 500, actual: 500, ok: true });
    expect(summary.services.postgres!.checks.find((c) => c.subject === "app.public.monthly_revenue")).toMatchObject({ expected: "not populated", actual: "not populated", ok: true });
    expect(summary.services.minio!.checks.filter((c) => c.warning)).toEqual([]); // the sandbox buckets have nothing the tool cannot carry
    // PostgreSQL's restore time is the span its own progress shows: from "restoring" to the last pg_restore done.
    const at = (re: RegExp) => [...r.stderr.matchAll(re)].map((m) => Number(m[1]) * 1000);
    const began = at(/^\[\s*([\d.]+)s\] drill postgres: restoring into /gm);
    const ended = at(/^\[\s*([\d.]+)s\] postgres\/restore\/\S+: done in /gm);
    expect([began.length, ended.length], r.stderr).toEqual([1, 3]);
    const span = Math.max(...ended) - began[0]!;
    expect(summary.services.postgres!.restoreMs).toBeGreaterThanOrEqual(span - 100); // stamps have 0.1 s steps
    expect(summary.services.postgres!.restoreMs).toBeLessThanOrEqual(span + 350);
    expect(Date.parse(summary.startedAt)).toBeGreaterThanOrEqual(t0);
    expect(Date.parse(summary.finishedAt)).toBeLessThanOrEqual(t1);
    const n = expected.postgres.length + expected.redis.length + expected.minio.length;
    // The services restore side by side: the stack's restore time is the slowest one's.
    expect(summary.totals).toEqual({ checks: n, passed: n, failed: 0, restoreMs: Math.max(...(["postgres", "redis", "minio"] as const).map((s) => summary.services[s]!.restoreMs)) });
    // Written into the set, with its own checksum, and verify still passes.
    expect(await readDrillSummary(setDir)).toEqual(summary);
    expect((await runCli(["verify", "--output", output])).code).toBe(0);
    // Human output: a table with the RTO line.
    const human = await runCli(["restore-drill", "--config", config, "--quiet"], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/PASSED — \d+\/\d+ checks passed/);
    expect(human.stdout).toMatch(/restore time \(RTO\): postgres [\d.]+s, redis [\d.]+s, minio [\d.]+s/);
    // Nothing left behind.
    expect(leftoverProcesses()).toEqual([]);
    expect(tempDirs()).toEqual([]);
    const secrets = secretValues(servers());
    for (const out of [r.stdout, r.stderr, human.stdout, human.stderr, readFileSync(join(setDir, "restore-drill-summary.json"), "utf8")]) {
      for (const s of secrets) expect(out).not.toContain(s);
    }
  });

  it.each([
    [
      "a recorded row count",
      (m: Manifest) => {
        m.services.postgres!.databases.find((d) => d.name === "app")!.tables.find((t) => t.name === "customers")!.rows = 499;
      },
      /FAIL postgres row-count app\.public\.customers: expected 499, got 500/,
    ],
    [
      "a recorded keyspace",
      (m: Manifest) => {
        m.services.redis!.keyspace.find((k) => k.db === 1)!.keys += 3;
      },
      /FAIL redis keyspace db1: expected \{"keys":164,"expires":1\}, got \{"keys":161,"expires":1\} — 160 keys without TTL, backup had 163/,
    ],
    [
      "a recorded value digest",
      (m: Manifest) => {
        const s = m.services.redis!.sample.find((x) => x.key === "user:7")!;
        s.digest = "0".repeat(64);
      },
      /FAIL redis key-values db0: .*user:7 \(value differs\)/,
    ],
    [
      "a recorded FUNCTION library",
      (m: Manifest) => {
        m.services.redis!.functions![0]!.codeSha256 = "0".repeat(64);
      },
      /FAIL redis functions libraries: .* — libraries: shop \(code differs\)/,
    ],
    [
      "a recorded consumer group",
      (m: Manifest) => {
        m.services.redis!.streamGroups![0]!.groups[0]!.pending = 2;
      },
      /FAIL redis stream-groups db0: .* — streams: events \(group mailer 1 pending, backup has 2\)/,
    ],
    [
      "the recorded large objects",
      (m: Manifest) => {
        m.services.postgres!.databases.find((d) => d.name === "app")!.largeObjects!.digest = "0".repeat(64);
      },
      /FAIL postgres large-objects app: .* — content \(md5\) differs/,
    ],
    [
      "a WITH NO DATA materialized view (recorded as populated)",
      (m: Manifest) => {
        Object.assign(m.services.postgres!.databases.find((d) => d.name === "app")!.tables.find((t) => t.name === "monthly_revenue")!, { populated: true, rows: 3, storedRows: 3 });
      },
      /FAIL postgres row-count app\.public\.monthly_revenue: expected 3, got not populated/,
    ],
    [
      "a recorded object ETag (the source server's MD5)",
      async (_m: Manifest, dir: string) => {
        const path = join(dir, "minio/assets.objects.jsonl");
        const entries = await readListing(path);
        entries.find((e) => e.key === "images/img-3.png")!.etag = "0123456789abcdef0123456789abcdef";
        writeFileSync(path, listingText(entries));
      },
      /FAIL minio object-content assets: .*images\/img-3\.png \(ETag differs from the source's\)/,
    ],
  ])("fails (exit 3) naming the culprit when %s differs from the data", async (name, edit, pattern) => {
    const root = await resealedCopy(`wrong-${name.replace(/\W+/g, "-")}`, edit);
    const r = await runCli(["restore-drill", "--config", config, "--output", root, "--quiet"], { env });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toMatch(pattern);
    expect(r.stdout).toMatch(/restore drill .*: FAILED/);
    const summary = await readDrillSummary(join(root, setId));
    expect(summary!.ok).toBe(false);
  });

  it("fails (exit 3) naming the object when a recorded object sha256 differs from the data, before restoring", async () => {
    const root = await resealedCopy("wrong-object-sha", async (_m, dir) => {
      const path = join(dir, "minio/assets.objects.jsonl");
      const entries = await readListing(path);
      entries.find((e) => e.key === "videos/intro.mp4")!.sha256 = "f".repeat(64);
      writeFileSync(path, listingText(entries));
    });
    const r = await runCli(["restore-drill", "--config", config, "--output", root], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/minio\/assets\/videos\/intro\.mp4 \(checksum-mismatch\)/);
    expect(r.stderr).not.toMatch(/drill postgres: restoring/);
  });

  it("a corrupt dump file fails with exit 3 before any restore starts", async () => {
    const root = join(tmp(), "corrupt");
    mkdirSync(root, { recursive: true });
    cpSync(setDir, join(root, setId), { recursive: true });
    const dat = (await listFiles(join(root, setId, "postgres/app"), join(root, setId))).find((p) => p.endsWith(".dat.gz"))!;
    const bytes = readFileSync(join(root, setId, dat));
    bytes[10]! ^= 0xff;
    writeFileSync(join(root, setId, dat), bytes);
    const summaryPath = join(root, setId, "restore-drill-summary.json");
    const summaryBefore = existsSync(summaryPath) ? readFileSync(summaryPath) : undefined; // there is one when an earlier test drilled the set
    const r = await runCli(["restore-drill", "--config", config, "--output", root, "--set", setId], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${dat} (checksum-mismatch)`);
    expect(r.stderr).toMatch(/nothing restored/);
    expect(r.stderr).not.toMatch(/drill (postgres|redis|minio):/);
    expect(leftoverProcesses()).toEqual([]);
    expect(tempDirs()).toEqual([]);
    expect(existsSync(summaryPath) ? readFileSync(summaryPath) : undefined).toEqual(summaryBefore); // not written, nor rewritten
  });

  it("no server, port or temp dir survives a failed check", async () => {
    const root = await resealedCopy("leftovers-failed", (m) => {
      m.services.postgres!.databases.find((d) => d.name === "analytics")!.tables[0]!.rows = 1;
    });
    const r = await runCli(["restore-drill", "--config", config, "--output", root], { env });
    expect(r.code).toBe(3);
    const ports = [...r.stderr.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(ports.length).toBeGreaterThan(0);
    for (const p of ports) expect(await portOpen(p), `port ${p}`).toBe(false);
    expect(leftoverProcesses()).toEqual([]);
    expect(tempDirs()).toEqual([]);
  });

  it("SIGTERM in the middle of a restore stops every server and removes its data", async () => {
    const child = spawn(process.execPath, [BIN, "restore-drill", "--config", config], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let sawServersRunning = 0;
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d;
        if (/postgres\/restore\/\S+: started/.test(stderr) && !child.killed) {
          sawServersRunning = serversUnder(tmpdir()).filter((p) => isDescendant(p.pid, child.pid!)).length;
          child.kill("SIGTERM");
          resolve();
        }
      });
    });
    const code = await exited;
    expect(sawServersRunning).toBeGreaterThan(0); // the signal really came mid-drill, with this CLI's own servers up
    expect(code).toBe(143);
    const ports = [...stderr.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    for (const p of ports) expect(await portOpen(p), `port ${p}`).toBe(false);
    expect(leftoverProcesses()).toEqual([]);
    expect(tempDirs()).toEqual([]);
  });

  it("refuses a configured backup source as the drill target (exit 2)", async () => {
    const targets = join(tmp(), "targets.json");
    writeFileSync(targets, JSON.stringify({ postgres: { host: "localhost", port: servers().postgres.port, password: "env:TEST_PG_PASSWORD" } }));
    const r = await runCli(["restore-drill", "--config", config, "--target-config", targets], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/drill target postgres localhost:\d+ is a configured backup source/);
  });
});
