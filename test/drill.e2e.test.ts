import { spawn } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { backupSet } from "../pipeline/backup.js";
import { DrillSummarySchema, readDrillSummary } from "../pipeline/drill-summary.js";
import { listFiles, hashFile } from "../pipeline/hash.js";
import { listingText, readListing } from "../pipeline/listing.js";
import { ManifestSchema, writeManifest, type Manifest } from "../pipeline/manifest.js";
import { silentProgress } from "../pipeline/progress.js";
import { sandboxConfig } from "../pipeline/sandbox.js";
import { BIN, REPO, runCli } from "./cli.js";
import { throwawayServerPids } from "./secrets.js";
import { secretEnv, secretValues, useServers, useTempDir, writeCliConfig } from "./services/index.js";

const servers = useServers();
const tmp = useTempDir("drill");

/** New backup-drill temp dirs under /tmp (server data dirs). */
function tempDirs(): string[] {
  return readdirSync("/tmp").filter((n) => /^backup-drill-(pg|redis|minio|mc)-/.test(n));
}

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
    const pidsBefore = throwawayServerPids();
    const dirsBefore = tempDirs();
    const r = await runCli(["restore-drill", "--config", config, "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const summary = DrillSummarySchema.parse(JSON.parse(r.stdout));
    expect(summary).toMatchObject({ ok: true, setId, totals: { failed: 0 } });
    const kinds = new Set(summary.services.postgres!.checks.map((c) => c.check));
    expect([...kinds].sort()).toEqual(["large-objects", "row-count", "sanity-query", "schema-roundtrip"]);
    expect(summary.services.postgres!.checks.filter((c) => c.check === "sanity-query")).toHaveLength(3);
    expect(new Set(summary.services.redis!.checks.map((c) => c.check))).toEqual(new Set(["keyspace", "key-values", "functions", "stream-groups"]));
    expect(new Set(summary.services.minio!.checks.map((c) => c.check))).toEqual(
      new Set(["object-count", "object-keys", "object-content", "object-attributes", "canary", "versioning", "object-versions", "bucket-config"]),
    );
    // Materialized views: the populated one by its rows, the WITH NO DATA one back unpopulated.
    expect(summary.services.postgres!.checks.find((c) => c.subject === "app.public.customer_order_counts")).toMatchObject({ expected: 500, actual: 500, ok: true });
    expect(summary.services.postgres!.checks.find((c) => c.subject === "app.public.monthly_revenue")).toMatchObject({ expected: "not populated", actual: "not populated", ok: true });
    expect(summary.services.minio!.checks.find((c) => c.check === "object-versions")).toMatchObject({ subject: "archive", ok: true, expected: "3 keys, 6 versions, 3 delete markers" });
    expect(summary.services.minio!.checks.filter((c) => c.warning)).toEqual([]); // the sandbox buckets have nothing the tool cannot carry
    for (const c of [...summary.services.postgres!.checks, ...summary.services.redis!.checks, ...summary.services.minio!.checks]) {
      expect(c, c.subject).toHaveProperty("expected");
      expect(c, c.subject).toHaveProperty("actual");
    }
    expect(summary.services.postgres!.checks.find((c) => c.subject === "app.public.customers")).toMatchObject({ expected: 500, actual: 500, ok: true });
    for (const s of ["postgres", "redis", "minio"] as const) expect(summary.services[s]!.restoreMs).toBeGreaterThan(0);
    // Written into the set, with its own checksum, and verify still passes.
    expect(await readDrillSummary(setDir)).toEqual(summary);
    expect((await runCli(["verify", "--output", output])).code).toBe(0);
    // Human output: a table with the RTO line.
    const human = await runCli(["restore-drill", "--config", config, "--quiet"], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/PASSED — \d+\/\d+ checks passed/);
    expect(human.stdout).toMatch(/restore time \(RTO\): postgres [\d.]+s, redis [\d.]+s, minio [\d.]+s/);
    // Nothing left behind.
    expect(throwawayServerPids().filter((p) => !pidsBefore.includes(p))).toEqual([]);
    expect(tempDirs().filter((d) => !dirsBefore.includes(d))).toEqual([]);
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
    const pidsBefore = throwawayServerPids();
    const summaryBefore = readFileSync(join(root, setId, "restore-drill-summary.json"));
    const r = await runCli(["restore-drill", "--config", config, "--output", root, "--set", setId], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${dat} (checksum-mismatch)`);
    expect(r.stderr).toMatch(/nothing restored/);
    expect(r.stderr).not.toMatch(/drill (postgres|redis|minio):/);
    expect(throwawayServerPids().filter((p) => !pidsBefore.includes(p))).toEqual([]);
    expect(readFileSync(join(root, setId, "restore-drill-summary.json")).equals(summaryBefore)).toBe(true); // not rewritten
  });

  it("no server, port or temp dir survives a failed check", async () => {
    const root = await resealedCopy("leftovers-failed", (m) => {
      m.services.postgres!.databases.find((d) => d.name === "analytics")!.tables[0]!.rows = 1;
    });
    const pidsBefore = throwawayServerPids();
    const dirsBefore = tempDirs();
    const r = await runCli(["restore-drill", "--config", config, "--output", root], { env });
    expect(r.code).toBe(3);
    const ports = [...r.stderr.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(ports.length).toBeGreaterThan(0);
    for (const p of ports) expect(await portOpen(p), `port ${p}`).toBe(false);
    expect(throwawayServerPids().filter((p) => !pidsBefore.includes(p))).toEqual([]);
    expect(tempDirs().filter((d) => !dirsBefore.includes(d))).toEqual([]);
  });

  it("SIGTERM in the middle of a restore stops every server and removes its data", async () => {
    const pidsBefore = throwawayServerPids();
    const dirsBefore = tempDirs();
    const child = spawn(process.execPath, [BIN, "restore-drill", "--config", config], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let sawServersRunning = 0;
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d;
        if (/postgres\/restore\/\S+: started/.test(stderr) && !child.killed) {
          sawServersRunning = throwawayServerPids().filter((p) => !pidsBefore.includes(p)).length;
          child.kill("SIGTERM");
          resolve();
        }
      });
    });
    const code = await exited;
    expect(sawServersRunning).toBeGreaterThan(0); // the signal really came mid-drill
    expect(code).toBe(143);
    const ports = [...stderr.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    for (const p of ports) expect(await portOpen(p), `port ${p}`).toBe(false);
    expect(throwawayServerPids().filter((p) => !pidsBefore.includes(p))).toEqual([]);
    expect(tempDirs().filter((d) => !dirsBefore.includes(d))).toEqual([]);
  });

  it("refuses a configured backup source as the drill target (exit 2)", async () => {
    const targets = join(tmp(), "targets.json");
    writeFileSync(targets, JSON.stringify({ postgres: { host: "localhost", port: servers().postgres.port, password: "env:TEST_PG_PASSWORD" } }));
    const r = await runCli(["restore-drill", "--config", config, "--target-config", targets], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/drill target postgres localhost:\d+ is a configured backup source/);
  });
});
