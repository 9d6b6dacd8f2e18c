/**
 * A full disk at each write of the seal and the promote (a small tmpfs as
 * the output root, filled at the named point). Every error names its path;
 * the outcome is consistent (nothing half-sealed; or sealed and clearly
 * reported as not promoted, latest.json untouched); no temp file stays; the
 * next run, with space again, succeeds. Mounting needs root.
 */
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretEnv, useServers } from "../services/index.js";
import { latestId, runCli, sets, staged, useOwnTmpdir, writeConfig } from "./helpers.js";

const servers = useServers({ seed: false });
const tmp = useOwnTmpdir("disk");
let mount: string;
let root: string;
let config: string;
let env: Record<string, string>;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("test/faults/disk.faults.test.ts mounts a tmpfs to fill it: it needs root");
  mount = join(tmp(), "disk");
  mkdirSync(mount);
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=80m", "tmpfs", mount]);
  root = join(mount, "backups");
  config = writeConfig(tmp(), servers(), root, { services: ["redis"] });
  env = { ...secretEnv(servers()), TMPDIR: tmp() };
  const first = await runCli(["backup", "--config", config], { env });
  expect(first.code, first.stderr).toBe(0);
});

afterAll(() => {
  if (mount && existsSync(mount)) execFileSync("umount", ["-l", mount]);
});

const FILLER = () => join(mount, "filler");

/** Write until the filesystem says ENOSPC. */
function fillDisk(): void {
  const fd = openSync(FILLER(), "a");
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

describe("ENOSPC at each write of seal and promote", () => {
  it.each([
    ["seal:manifest.json", "manifest.json"],
    ["seal:SHA256SUMS", "SHA256SUMS"],
    ["seal:manifest.sha256", "manifest.sha256"],
  ])("disk full at %s: exit 1 naming %s and ENOSPC; the staging dir is removed; latest.json and the sets are untouched; the next run succeeds", async (point, file) => {
    const before = { latest: latestId(root), sets: sets(root) };
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: [point],
      onPause: async () => {
        fillDisk();
        return "continue";
      },
    });
    try {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`error: .*${root.replace(/[/.]/g, "\\$&")}/\\.partial-[^/]+/${file.replace(".", "\\.")}: cannot write: ENOSPC`));
      expect(staged(root)).toEqual([]);
      expect({ latest: latestId(root), sets: sets(root) }).toEqual(before);
    } finally {
      rmSync(FILLER(), { force: true });
    }
    const next = await runCli(["backup", "--config", config, "--json"], { env });
    expect(next.code, next.stderr).toBe(0);
    expect(latestId(root)).toBe(JSON.parse(next.stdout).id);
  });

  it("disk full when latest.json is replaced: exit 1, the set is sealed and reported as NOT promoted, latest.json unchanged, no temp file; the next run promotes its own set", async () => {
    const before = { latest: latestId(root), sets: sets(root) };
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: ["promote:latest.json"],
      onPause: async () => {
        fillDisk();
        return "continue";
      },
    });
    let sealed: string;
    try {
      expect(r.code, r.stderr).toBe(1);
      sealed = sets(root).find((s) => !before.sets.includes(s))!;
      expect(sealed).toBeDefined();
      expect(r.stderr).toContain(`set ${sealed} is sealed at ${join(root, sealed)} but NOT promoted: ${join(root, "latest.json")}: cannot write`);
      expect(r.stderr).toContain("ENOSPC");
      expect(latestId(root)).toBe(before.latest);
      expect(staged(root)).toEqual([]); // the temp file of latest.json was removed
    } finally {
      rmSync(FILLER(), { force: true });
    }
    const v = await runCli(["verify", "--config", config, "--set", sealed!], { env });
    expect(v.code, v.stderr).toBe(0); // sealed means complete
    const next = await runCli(["backup", "--config", config, "--json"], { env });
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(root, "latest.json"), "utf8")).id).toBe(JSON.parse(next.stdout).id);
  });

  it("the preflight warns when the free space holds the next set but not the next two", async () => {
    const probe = await runCli(["check", "--config", config, "--json"], { env });
    expect(probe.code, probe.stderr).toBe(0);
    expect(probe.stderr).not.toContain("check warning");
    const { estimateBytes, freeBytes } = JSON.parse(probe.stdout) as { estimateBytes: number; freeBytes: number };
    const need = Math.ceil(estimateBytes * 1.1) + 64 * 1024 * 1024;
    const two = Math.ceil(2 * estimateBytes * 1.1) + 64 * 1024 * 1024;
    const fd = openSync(FILLER(), "w");
    writeSync(fd, Buffer.alloc(freeBytes - Math.floor((need + two) / 2), 1));
    closeSync(fd);
    try {
      const r = await runCli(["check", "--config", config], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/check warning: output: .* free at .* holds the next set but not the next two/);
    } finally {
      rmSync(FILLER(), { force: true });
    }
  });

  it("prune removes temp files an interrupted write left in the output root", async () => {
    const stale = join(root, ".latest.json.4194303.abc123.tmp"); // pid above pid_max: never alive
    openSync(stale, "w");
    const pruneConfig = writeConfig(tmp(), servers(), root, { services: [], extra: { retention: { keepLast: 10 } } });
    const r = await runCli(["prune", "--config", pruneConfig, "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tempFiles).toEqual([".latest.json.4194303.abc123.tmp"]);
    expect(existsSync(stale)).toBe(false);
  });
});
