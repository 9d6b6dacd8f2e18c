import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./cli.js";
import { corruptDump, writeDrill, writeLatest, writeSet } from "./fixtures/sets.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("status");
const H = 3_600_000;
const ago = (ms: number) => new Date(Date.now() - ms);

let n = 0;
function scenario(extra: Record<string, unknown> = { retention: { keepLast: 1 } }): { root: string; config: string } {
  const dir = join(tmp(), `s${++n}`);
  const root = join(dir, "backups");
  mkdirSync(root, { recursive: true });
  const config = join(dir, "config.json");
  writeFileSync(config, JSON.stringify({ output: root, postgres: { host: "db.invalid" }, redis: { host: "cache.invalid" }, ...extra }));
  return { root, config };
}

async function status(config: string, ...args: string[]) {
  const r = await runCli(["status", "--config", config, "--json", ...args]);
  return { ...r, doc: JSON.parse(r.stdout) };
}

describe("backup-drill status: one document", () => {
  it("healthy (exit 0): latest set verified, last drill passed, freshness per service, what prune would do", async () => {
    const { root, config } = scenario();
    const old = await writeSet(root, { time: ago(30 * H) });
    const latest = await writeSet(root, { time: ago(2 * H) });
    await writeDrill(latest, { finishedAt: ago(1 * H) });
    writeLatest(root, latest);
    const before = readdirSync(root).sort();
    const { code, doc, stderr } = await status(config);
    expect(code, stderr).toBe(0);
    expect(doc).toMatchObject({
      ok: true,
      verdict: "healthy",
      exitCode: 0,
      problems: [],
      latest: { id: latest.id, valid: true },
      verify: { id: latest.id, ok: true, filesChecked: 2, findings: [] },
      lastDrill: { setId: latest.id, ok: true, matchesManifest: true, totals: { failed: 0 } },
      freshness: { status: "OK", services: [{ service: "postgres", status: "OK" }, { service: "redis", status: "OK" }] },
    });
    expect(doc.prune.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons])).toEqual([[latest.id, ["last", "newest-complete", "newest-drilled", "latest"]]]);
    expect(doc.prune.remove.map((r: { id: string }) => r.id)).toEqual([old.id]);
    expect(readdirSync(root).sort()).toEqual(before); // status only reads
  });

  it("human output names each part", async () => {
    const { root, config } = scenario();
    const latest = await writeSet(root, { time: ago(2 * H) });
    await writeDrill(latest, { finishedAt: ago(1 * H) });
    writeLatest(root, latest);
    const r = await runCli(["status", "--config", config]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^status: HEALTHY$/m);
    expect(r.stdout).toMatch(new RegExp(`^latest set: ${latest.id} \\(taken 2h\\d*s? ago\\) — verify ok \\(2 files\\)$`, "m"));
    expect(r.stdout).toMatch(new RegExp(`^last drill: ok on ${latest.id} at .* — 2/2 checks passed$`, "m"));
    expect(r.stdout).toMatch(/^FRESHNESS OK - /m);
    expect(r.stdout).toMatch(/^prune would keep 1 and remove 0:$/m);
  });

  it("stale (exit 1): freshness is not OK", async () => {
    const { root, config } = scenario();
    const latest = await writeSet(root, { time: ago(30 * H) });
    await writeDrill(latest, { finishedAt: ago(29 * H) });
    writeLatest(root, latest);
    const { code, doc } = await status(config);
    expect(code).toBe(1);
    expect(doc).toMatchObject({ ok: false, verdict: "stale", problems: ["freshness WARNING"], verify: { ok: true } });
  });

  it("integrity (exit 3): the latest set fails verification, naming the file", async () => {
    const { root, config } = scenario();
    const latest = await writeSet(root, { time: ago(2 * H) });
    await writeDrill(latest, { finishedAt: ago(1 * H) });
    writeLatest(root, latest);
    corruptDump(latest, "postgres");
    const { code, doc } = await status(config);
    expect(code).toBe(3);
    expect(doc.verdict).toBe("integrity");
    expect(doc.verify.findings).toEqual([expect.objectContaining({ path: "postgres/app/toc.dat", verdict: "checksum-mismatch" })]);
    expect(doc.problems[0]).toContain(`latest set ${latest.id} fails verification`);
  });

  it("integrity (exit 3): the last restore drill failed", async () => {
    const { root, config } = scenario();
    const older = await writeSet(root, { time: ago(5 * H) });
    await writeDrill(older, { finishedAt: ago(4 * H) });
    const latest = await writeSet(root, { time: ago(2 * H) });
    await writeDrill(latest, { finishedAt: ago(1 * H), services: { postgres: true, redis: false } });
    writeLatest(root, latest);
    const { code, doc } = await status(config);
    expect(code).toBe(3);
    expect(doc.lastDrill).toMatchObject({ setId: latest.id, ok: false, services: { redis: { ok: false, failed: 1 }, postgres: { ok: true } } });
    expect(doc.problems).toContainEqual(expect.stringContaining("last restore drill"));
  });

  it('no sets: exit 1, latest null, freshness UNKNOWN; retention "off" is reported, not an error; no section means the default policy', async () => {
    const { config } = scenario({ retention: "off" });
    const { code, doc } = await status(config);
    expect(code).toBe(1);
    expect(doc).toMatchObject({ latest: null, verify: null, lastDrill: null, freshness: { status: "UNKNOWN" }, prune: { keep: null, remove: null } });
    expect(doc.prune.reason).toContain('retention is "off"');
    const byDefault = await status(scenario({}).config);
    expect(byDefault.doc.prune).toMatchObject({ keep: [], remove: [] });
  });
});
