import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./cli.js";
import { tamperManifest, writeDrill, writeLatest, writePartial, writeSet, type BuiltSet } from "./fixtures/sets.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("prune");
const H = 3_600_000;
const D = 24 * H;
const ago = (ms: number) => new Date(Date.now() - ms);

let n = 0;
function scenario(retention: unknown): { root: string; config: string } {
  const dir = join(tmp(), `s${++n}`);
  const root = join(dir, "backups");
  mkdirSync(root, { recursive: true });
  const config = join(dir, "config.json");
  writeFileSync(config, JSON.stringify({ output: root, ...(retention === undefined ? {} : { retention }) }));
  return { root, config };
}

const entries = (root: string) => readdirSync(root).filter((e) => e !== "latest.json").sort();

/** Six daily sets (the oldest drilled), a tampered one, an old and a young partial; latest.json on the newest. */
async function history(root: string) {
  const sets: BuiltSet[] = [];
  for (let day = 6; day >= 1; day--) sets.push(await writeSet(root, { time: ago(day * D) }));
  await writeDrill(sets[0]!, { finishedAt: ago(6 * D - H) }); // the oldest set has the only passing drill
  const tampered = await writeSet(root, { time: ago(3.5 * D) });
  tamperManifest(tampered);
  const oldPartial = writePartial(root, ago(2 * D));
  const youngPartial = writePartial(root, ago(2 * H));
  writeLatest(root, sets[5]!);
  return { sets, tampered, oldPartial, youngPartial };
}

describe("backup-drill prune on constructed sets", () => {
  it("removes what no rule keeps; keeps the floors and says which rule kept each set", async () => {
    const { root, config } = scenario({ keepLast: 2 });
    const h = await history(root);
    const r = await runCli(["prune", "--config", config, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const reasons = Object.fromEntries(doc.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons]));
    const [s6, s5, s4, s3, s2, s1] = h.sets;
    expect(reasons).toEqual({
      [s1!.id]: ["last", "newest-complete", "latest"],
      [s2!.id]: ["last"],
      [h.youngPartial.split(".partial-")[1]!]: ["partial-in-grace"],
      [h.tampered.id]: ["invalid"],
      [s6!.id]: ["newest-drilled"],
    });
    expect(doc.remove.map((x: { id: string; reason: string }) => [x.id, x.reason]).sort()).toEqual(
      [
        [s5!.id, "no-rule"],
        [s4!.id, "no-rule"],
        [s3!.id, "no-rule"],
        [h.oldPartial.split(".partial-")[1]!, "partial-expired"],
      ].sort(),
    );
    expect(entries(root)).toEqual([".partial-" + h.youngPartial.split(".partial-")[1], h.tampered.id, s6!.id, s2!.id, s1!.id].sort());
    expect(existsSync(join(root, ".lock"))).toBe(false);
    expect(JSON.parse(readFileSync(join(root, "latest.json"), "utf8")).id).toBe(s1!.id);
  });

  it("--dry-run changes nothing, takes no lock, and prints the same plan in words", async () => {
    const { root, config } = scenario({ keepDaily: 1 });
    await history(root);
    // A live lock holder does not stop a dry run: it only reads.
    writeFileSync(join(root, ".lock"), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), command: "backup" }));
    const before = entries(root);
    const r = await runCli(["prune", "--config", config, "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^prune \(dry run\): would keep 4, would remove 5$/m);
    expect(r.stdout).toMatch(/keep +\S+ +daily, newest-complete, latest/);
    expect(r.stdout).toMatch(/remove +\.partial-\S+ +partial-expired/);
    expect(entries(root)).toEqual(before);
  });

  it("exits 4 and removes nothing while another run holds the lock", async () => {
    const { root, config } = scenario({ keepLast: 1 });
    await history(root);
    writeFileSync(join(root, ".lock"), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), command: "backup" }));
    const before = entries(root);
    const r = await runCli(["prune", "--config", config]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`held by pid ${process.pid}`);
    expect(entries(root)).toEqual(before);
  });

  it.each([
    ["an empty retention section", {}, "retention: empty policy"],
    ["all-zero rules", { keepLast: 0, keepDaily: 0 }, "retention: empty policy"],
    ["a zero duration", { keepLast: 1, keepWithin: "0s" }, "retention.keepWithin: must be longer than zero"],
    ['retention "off"', "off", 'retention is "off"'],
  ])("refuses %s with exit 2 and removes nothing", async (_name, retention, message) => {
    const { root, config } = scenario(retention);
    await history(root);
    const before = entries(root);
    const r = await runCli(["prune", "--config", config, "--json"]);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, exitCode: 2, error: { kind: "input", message: expect.stringContaining(message) } });
    expect(entries(root)).toEqual(before);
  });

  it("applies the default policy (last 3, 7 daily, 4 weekly, 6 monthly) when the config has no retention section", async () => {
    const { root, config } = scenario(undefined);
    // Ten sets an hour apart today: last 3 + the newest of today (daily/weekly/monthly) keep three; seven go.
    const sets: BuiltSet[] = [];
    for (let i = 10; i >= 1; i--) sets.push(await writeSet(root, { time: ago(i * 60_000) }));
    const r = await runCli(["prune", "--config", config, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.keep.map((k: { id: string }) => k.id)).toEqual(sets.slice(-3).reverse().map((s) => s.id));
    expect(doc.removed).toHaveLength(7);
  });

  it("removes a set even when a leftover .partial- of the same id is in the way, and the partial too", async () => {
    const { root, config } = scenario({ keepLast: 1 });
    const t = ago(3 * D);
    const old = await writeSet(root, { time: t });
    const partial = writePartial(root, t);
    const newest = await writeSet(root, { time: ago(1 * H) });
    const r = await runCli(["prune", "--config", config, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).removed.sort()).toEqual([old.id, partial.slice(root.length + 1)].sort());
    expect(entries(root)).toEqual([newest.id]);
  });

  it("orders sets by manifest time, not by directory name", async () => {
    const { root, config } = scenario({ keepLast: 1 });
    // Named as if newest, but its manifest says it was taken three days ago.
    const misnamed = await writeSet(root, { time: ago(3 * D), id: "2099-01-01T00-00-00Z" });
    const newest = await writeSet(root, { time: ago(1 * H) });
    const r = await runCli(["prune", "--config", config, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.keep.map((k: { id: string }) => k.id)).toEqual([newest.id]);
    expect(doc.remove.map((k: { id: string }) => k.id)).toEqual([misnamed.id]);
    expect(entries(root)).toEqual([newest.id]);
  });

  it("--now plans as of another time (what-if): keepWithin counts back from the newest set, not from now", async () => {
    const { root, config } = scenario({ keepWithin: "2d" });
    const sets = [await writeSet(root, { time: ago(10 * D) }), await writeSet(root, { time: ago(9 * D) }), await writeSet(root, { time: ago(5 * D) })];
    const later = new Date(Date.now() + 30 * D).toISOString();
    const r = await runCli(["prune", "--config", config, "--dry-run", "--json", "--now", later]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    // A month later, backups having stopped: the newest set is still kept by "within", the 10-day gap drops the others.
    expect(doc.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons])).toEqual([[sets[2]!.id, ["within", "newest-complete"]]]);
    expect(doc.remove).toHaveLength(2);
  });
});
