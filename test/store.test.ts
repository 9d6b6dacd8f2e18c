import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { listSetDirs, normalizeModes, promoteSet, readLatest } from "../pipeline/store/sets.js";

/**
 * The seal and promote of a staged set where the first real Dagger engine
 * run broke (issue 14): a staging directory the kernel will not rename into
 * the output root (EXDEV), and tool-chosen modes that an exported set must
 * not keep.
 */

const ID = "2026-11-30T10-00-00Z";
const made: string[] = [];
const mounts: string[] = [];

afterEach(() => {
  for (const m of mounts.splice(0)) execFileSync("umount", [m]);
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `bd-store-${prefix}-`));
  made.push(d);
  return d;
}

/** A small tmpfs: another filesystem than the output root. Needs root (mount). */
function tmpfs(size: string): string {
  if (process.getuid?.() !== 0) throw new Error("this test mounts a tmpfs and needs root (run the suite as root, as .ci/run does)");
  const d = tempDir("tmpfs");
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", d]);
  mounts.unshift(d);
  return d;
}

/** A staged set laid out the way pg_dump leaves one: 0700 directories, 0600 files. */
function stagePgDumpLike(parent: string, bytes = 4096): string {
  const dir = join(parent, `.partial-${ID}`);
  mkdirSync(join(dir, "postgres", "app"), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "postgres", "app", "toc.dat"), Buffer.alloc(bytes, 7), { mode: 0o600 });
  writeFileSync(join(dir, "manifest.json"), "{}\n", { mode: 0o600 });
  chmodSync(join(dir, "postgres"), 0o700);
  chmodSync(join(dir, "postgres", "app"), 0o700);
  return dir;
}

function modes(dir: string): Record<string, string> {
  const out: Record<string, string> = { ".": (statSync(dir).mode & 0o777).toString(8) };
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name);
    out[p.slice(dir.length + 1)] = (statSync(p).mode & 0o777).toString(8);
  }
  return out;
}

describe("promote across filesystems (EXDEV: an overlay lower layer, another mount)", () => {
  it("a staged set on another filesystem than its output root still seals: copied beside, renamed into place, the stage removed", async () => {
    const stageFs = tmpfs("16m");
    const root = tempDir("root");
    const staged = stagePgDumpLike(stageFs);
    // The case is real: the kernel refuses this rename.
    expect(() => renameSync(staged, join(root, "probe"))).toThrow(/EXDEV/);

    const latest = await promoteSet(root, { id: ID, dir: staged }, "a".repeat(64), new Date("2026-11-30T10:01:00Z"));
    expect(latest.id).toBe(ID);
    expect(readFileSync(join(root, ID, "postgres", "app", "toc.dat"))).toEqual(Buffer.alloc(4096, 7));
    expect(existsSync(staged)).toBe(false);
    expect(readdirSync(root).sort()).toEqual([ID, "latest.json"]);
    expect((await readLatest(root))!.id).toBe(ID);
  });

  it("a copy that cannot complete (the root fills up) leaves the stage as it was and no half copy or set behind", async () => {
    const stageFs = tmpfs("16m");
    const root = tmpfs("1m");
    const staged = stagePgDumpLike(stageFs, 3 * 1024 * 1024);
    await expect(promoteSet(root, { id: ID, dir: staged }, "a".repeat(64), new Date())).rejects.toThrow(/ENOSPC/);
    expect(readdirSync(root)).toEqual([]);
    expect(statSync(join(staged, "postgres", "app", "toc.dat")).size).toBe(3 * 1024 * 1024);
  });

  it("a leftover copy from a killed promote is listed as a partial of its set (prune's grace period applies)", async () => {
    const root = tempDir("root");
    mkdirSync(join(root, `.partial-${ID}.copy`));
    expect(await listSetDirs(root)).toEqual([{ id: ID, dir: join(root, `.partial-${ID}.copy`), partial: true }]);
  });
});

describe("a sealed set's modes follow the umask, not the tool", () => {
  it("under umask 022 (a container, the usual host) every directory is 0755 and every file 0644", async () => {
    const staged = stagePgDumpLike(tempDir("stage"));
    await normalizeModes(staged, 0o022);
    expect(modes(staged)).toEqual({ ".": "755", postgres: "755", "postgres/app": "755", "postgres/app/toc.dat": "644", "manifest.json": "644" });
  });

  it("under umask 077 a set stays private", async () => {
    const staged = stagePgDumpLike(tempDir("stage"));
    await normalizeModes(staged, 0o077);
    expect(new Set(Object.values(modes(staged)))).toEqual(new Set(["700", "600"]));
  });

  it("promote applies the process umask to the set", async () => {
    const root = tempDir("root");
    const staged = stagePgDumpLike(root);
    const umask = process.umask();
    await promoteSet(root, { id: ID, dir: staged }, "a".repeat(64), new Date());
    const want = { dir: (0o777 & ~umask).toString(8), file: (0o666 & ~umask).toString(8) };
    expect(modes(join(root, ID))).toEqual({ ".": want.dir, postgres: want.dir, "postgres/app": want.dir, "postgres/app/toc.dat": want.file, "manifest.json": want.file });
  });
});
