import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./cli.js";
import { corruptDump, tamperManifest, writeDrill, writeLatest, writeSet } from "./fixtures/sets.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("freshness-cli");
const H = 3_600_000;
const ago = (ms: number) => new Date(Date.now() - ms);

let n = 0;
/** A fresh output root and a config expecting postgres and redis (default thresholds: warn 26h, critical 50h, drill 8d). */
function scenario(freshness: Record<string, unknown> = {}): { root: string; config: string } {
  const dir = join(tmp(), `s${++n}`);
  const root = join(dir, "backups");
  mkdirSync(root, { recursive: true });
  const config = join(dir, "config.json");
  writeFileSync(config, JSON.stringify({ output: root, postgres: { host: "db.invalid" }, redis: { host: "cache.invalid" }, freshness }));
  return { root, config };
}

async function freshness(config: string, ...args: string[]) {
  const r = await runCli(["freshness", "--config", config, ...args]);
  return r;
}

async function json(config: string, ...args: string[]) {
  const r = await freshness(config, "--json", ...args);
  return { ...r, doc: JSON.parse(r.stdout) };
}

describe("backup-drill freshness: Nagios exit codes on constructed sets", () => {
  it("0 OK: a 1h old set proven by a drill 30m ago; human output has one line per service with age and thresholds", async () => {
    const { root, config } = scenario();
    const set = await writeSet(root, { time: ago(1 * H) });
    await writeDrill(set, { finishedAt: ago(0.5 * H) });
    writeLatest(root, set);
    const r = await freshness(config);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^FRESHNESS OK - postgres 1h\d*s? old, redis 1h\d*s? old$/);
    const pg = lines.find((l) => l.startsWith("postgres"))!;
    const redis = lines.find((l) => l.startsWith("redis"))!;
    for (const line of [pg, redis]) {
      expect(line).toMatch(/\bOK\b/);
      expect(line).toMatch(/\b1h(\d+s)?\b/); // age
      expect(line).toContain("1d2h"); // warnAfter 26h
      expect(line).toContain("2d2h"); // criticalAfter 50h
      expect(line).toContain(set.id);
      expect(line).toContain("proven");
    }
  });

  it("1 WARNING: newest good set older than warnAfter", async () => {
    const { root, config } = scenario();
    const set = await writeSet(root, { time: ago(27 * H) });
    await writeDrill(set, { finishedAt: ago(26 * H) });
    const { code, doc } = await json(config);
    expect(code).toBe(1);
    expect(doc).toMatchObject({ status: "WARNING", exitCode: 1 });
    expect(doc.services.map((s: { status: string }) => s.status)).toEqual(["WARNING", "WARNING"]);
    expect(doc.services[0].findings[0]).toMatchObject({ kind: "stale", status: "WARNING", thresholdMs: 26 * H });
  });

  it("2 CRITICAL: newest good set older than criticalAfter", async () => {
    const { root, config } = scenario();
    const set = await writeSet(root, { time: ago(51 * H) });
    await writeDrill(set, { finishedAt: ago(50 * H) });
    const r = await freshness(config);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^FRESHNESS CRITICAL - /);
  });

  it("2 CRITICAL: a configured service that no set holds", async () => {
    const { root, config } = scenario();
    const set = await writeSet(root, { time: ago(1 * H), services: { postgres: 100 } });
    await writeDrill(set, { finishedAt: ago(0.5 * H), services: { postgres: true } });
    const { code, doc } = await json(config);
    expect(code).toBe(2);
    expect(doc.services.find((s: { service: string }) => s.service === "redis")).toMatchObject({ status: "CRITICAL", lastGood: null });
  });

  it("1 WARNING: the zero-byte dump in the newest set is not a backup; the older set is what counts", async () => {
    const { root, config } = scenario();
    const older = await writeSet(root, { time: ago(5 * H) });
    await writeDrill(older, { finishedAt: ago(4 * H) });
    const newest = await writeSet(root, { time: ago(1 * H), services: { postgres: 100, redis: 0 } });
    await writeDrill(newest, { finishedAt: ago(0.5 * H), services: { postgres: true, redis: true } });
    const { code, doc } = await json(config);
    expect(code).toBe(1);
    const redis = doc.services.find((s: { service: string }) => s.service === "redis");
    expect(redis.lastGood.setId).toBe(older.id);
    expect(redis.findings).toEqual([expect.objectContaining({ kind: "too-small", setId: newest.id, bytes: 0, minSizeBytes: 1 })]);
  });

  it("1 WARNING: a tampered newest manifest is rejected and the previous set counts", async () => {
    const { root, config } = scenario();
    const good = await writeSet(root, { time: ago(3 * H) });
    await writeDrill(good, { finishedAt: ago(2 * H) });
    const bad = await writeSet(root, { time: ago(1 * H) });
    tamperManifest(bad);
    const { code, doc } = await json(config);
    expect(code).toBe(1);
    expect(doc.findings).toEqual([expect.objectContaining({ kind: "newest-set-invalid", setId: bad.id })]);
    expect(doc.sets.rejected).toEqual([{ id: bad.id, problem: expect.stringContaining("checksum mismatch") }]);
    expect(doc.services.every((s: { lastGood: { setId: string } }) => s.lastGood.setId === good.id)).toBe(true);
  });

  it("1 WARNING: not proven when the only drill is older than drillMaxAge; OK with drillMaxAge off", async () => {
    const { root, config } = scenario({ drillMaxAge: "2h" });
    const set = await writeSet(root, { time: ago(4 * H) });
    await writeDrill(set, { finishedAt: ago(3 * H) });
    const { code, doc } = await json(config);
    expect(code).toBe(1);
    expect(doc.services[0].findings).toEqual([expect.objectContaining({ kind: "unproven" })]);
    const off = scenario({ drillMaxAge: "off" });
    await writeSet(off.root, { time: ago(4 * H) });
    expect((await freshness(off.config)).code).toBe(0);
  });

  it("3 UNKNOWN: no sets at all (an empty or missing output root)", async () => {
    const { root, config } = scenario();
    const empty = await json(config);
    expect(empty.code).toBe(3);
    expect(empty.doc).toMatchObject({ status: "UNKNOWN", findings: [expect.objectContaining({ kind: "no-sets" })] });
    const missing = await json(config, "--output", join(root, "nope"));
    expect(missing.code).toBe(3);
  });

  it("3 UNKNOWN: an unreadable output root, with one JSON document naming the problem", async () => {
    const { root, config } = scenario();
    const file = join(root, "not-a-dir");
    writeFileSync(file, "x");
    const r = await json(config, "--output", file);
    expect(r.code).toBe(3);
    expect(r.doc).toMatchObject({ ok: false, command: "freshness", exitCode: 3, error: { message: expect.stringContaining("cannot list") } });
  });

  it.each([
    ["an unknown flag", ["--bogus"]],
    ["a malformed --now", ["--now", "yesterday"]],
  ])("3 UNKNOWN on bad input: %s (not 2, which would read as CRITICAL)", async (_name, args) => {
    const { config } = scenario();
    const r = await freshness(config, ...args);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/error/);
  });

  it("3 UNKNOWN on a bad config: criticalAfter shorter than warnAfter, named in one line", async () => {
    const { config } = scenario({ redis: { warnAfter: "3d" } });
    const r = await freshness(config);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe("backup-drill freshness: error: freshness.redis.criticalAfter: 50h is shorter than warnAfter 3d");
  });

  it("3 UNKNOWN on a malformed duration in the config", async () => {
    const { config } = scenario({ warnAfter: "26 hours" });
    const r = await freshness(config);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("freshness.warnAfter: must be a duration");
  });

  it("--now decides the thresholds exactly: at warnAfter OK, one second later WARNING", async () => {
    const { root, config } = scenario({ drillMaxAge: "off" });
    const t = new Date("2026-03-01T00:00:00Z");
    await writeSet(root, { time: t });
    const at = new Date(t.getTime() + 26 * H).toISOString();
    const after = new Date(t.getTime() + 26 * H + 1000).toISOString();
    expect((await freshness(config, "--now", at)).code).toBe(0);
    expect((await freshness(config, "--now", after)).code).toBe(1);
    expect((await freshness(config, "--now", new Date(t.getTime() + 50 * H + 1000).toISOString())).code).toBe(2);
  });

  it("--deep re-hashes the files: a corrupted dump under an intact manifest passes the cheap check, not the deep one", async () => {
    const { root, config } = scenario();
    const good = await writeSet(root, { time: ago(3 * H) });
    await writeDrill(good, { finishedAt: ago(2 * H) });
    const newest = await writeSet(root, { time: ago(1 * H) });
    await writeDrill(newest, { finishedAt: ago(0.5 * H) });
    corruptDump(newest, "redis");
    const cheap = await json(config);
    expect(cheap.code).toBe(0);
    expect(cheap.doc.services[1].lastGood.setId).toBe(newest.id);
    const deep = await json(config, "--deep");
    expect(deep.code).toBe(1);
    expect(deep.doc.sets.rejected).toEqual([{ id: newest.id, problem: expect.stringContaining("checksum-mismatch redis/dump.rdb") }]);
    expect(deep.doc.services.map((s: { lastGood: { setId: string } }) => s.lastGood.setId)).toEqual([good.id, good.id]);
  });

  it("--json prints exactly one JSON document, the whole report, and progress stays on stderr", async () => {
    const { root, config } = scenario();
    const t = new Date("2026-03-01T00:00:00Z");
    const set = await writeSet(root, { time: t });
    await writeDrill(set, { finishedAt: new Date(t.getTime() + H / 2) });
    const drill = { setId: set.id, finishedAt: new Date(t.getTime() + H / 2).toISOString() };
    const now = new Date(t.getTime() + H);
    const r = await freshness(config, "--json", "--deep", "--now", now.toISOString());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("re-hashing");
    const service = (name: string, bytes: number) => ({
      service: name,
      status: "OK",
      ageMs: H,
      age: "1h",
      warnAfterMs: 26 * H,
      criticalAfterMs: 50 * H,
      minSizeBytes: 1,
      lastGood: { setId: set.id, time: t.toISOString(), bytes },
      proof: { required: true, proven: true, drill: { ...drill, ageMs: H / 2 } },
      findings: [],
    });
    expect(JSON.parse(r.stdout)).toEqual({
      check: "backup-drill freshness",
      status: "OK",
      exitCode: 0,
      summary: "postgres 1h old, redis 1h old",
      now: now.toISOString(),
      root,
      services: [service("postgres", 2048), service("redis", 1024)],
      findings: [],
      sets: { total: 1, valid: 1, newestId: set.id, rejected: [] },
      lastDrillSuccess: drill,
      webhook: { sent: false, reason: "no webhook configured" },
      outputs: {},
    });
  });

  it("--markdown appends a summary table for $GITHUB_STEP_SUMMARY", async () => {
    const { root, config } = scenario();
    const set = await writeSet(root, { time: ago(27 * H) });
    await writeDrill(set, { finishedAt: ago(26 * H) });
    const summary = join(root, "..", "summary.md");
    writeFileSync(summary, "## earlier step output\n");
    const r = await freshness(config, "--markdown", summary);
    expect(r.code).toBe(1);
    const md = readFileSync(summary, "utf8");
    expect(md.startsWith("## earlier step output\n")).toBe(true);
    expect(md).toContain("### ⚠️ backup-drill freshness: WARNING");
    expect(md).toContain("| service | status | age | warn after | critical after | newest good set | size | restore drill |");
    expect(md).toMatch(/\| postgres \| ⚠️ WARNING \| 1d3h(\d+s)? \| 1d2h \| 2d2h \| /);
  });

  it("3 UNKNOWN when the --prometheus file cannot be written (the check did not complete)", async () => {
    const { root, config } = scenario();
    await writeSet(root, { time: ago(1 * H) });
    const r = await freshness(config, "--prometheus", join(root, "no-such-dir", "backup.prom"));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("--prometheus: cannot write");
  });
});
