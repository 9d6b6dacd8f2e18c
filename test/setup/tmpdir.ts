/**
 * Every test file, and every test in it, runs with its own TMPDIR (set for
 * this worker, hence for every CLI and server it spawns). Throwaway servers
 * and the runner's temp dirs land there, so a test that looks for leftovers
 * looks in a place nothing else writes to. After each test (and after the
 * file's hooks) that place must hold no backup-drill-* temp dir and no
 * running process: a leak fails the test that caused it, and its processes
 * (ours by construction: they run in, or inherited, this TMPDIR) are killed.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, afterEach, beforeEach, expect, inject } from "vitest";
import { backupDrillTempDirs, isWatchdogOf, processesUnder } from "../procs.js";

const root = inject("tmpRoot");
const outerTmp = inject("outerTmp");

function makeTmp(parent: string, prefix: string): string {
  const dir = mkdtempSync(join(parent, prefix));
  chmodSync(dir, 0o1777);
  // tsx keeps its compile cache in $TMPDIR/tsx-<uid>: share the run's usual one, or every CLI start compiles afresh.
  const cache = `tsx-${process.geteuid?.() ?? "user"}`;
  mkdirSync(join(outerTmp, cache), { recursive: true });
  symlinkSync(join(outerTmp, cache), join(dir, cache));
  return dir;
}

/**
 * backup-drill temp dirs and running processes left in `dir`; kills the
 * processes. This worker's own watchdog lives as long as the worker and is
 * not a leftover; an empty registry is not either (see backupDrillTempDirs).
 * A CLI that exits waits for its watchdog (retireWatchdog); the watchdog of
 * a CLI that was killed gets a moment to notice (end-of-file of its stdin),
 * kill what is left and exit; nothing else does.
 */
export async function leftovers(dir: string): Promise<string[]> {
  const foreign = () => processesUnder(dir).filter((p) => !isWatchdogOf(p.pid, p.cmd, process.pid));
  let procs = foreign();
  for (let waited = 0; procs.length > 0 && procs.every((p) => p.cmd.endsWith("runners/watchdog.cjs")) && waited < 2000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    procs = foreign();
  }
  const found = backupDrillTempDirs(dir).map((n) => `temp dir ${join(dir, n)}`);
  for (const p of procs) {
    found.push(`process ${p.pid} still running: ${p.cmd}`);
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

const file = basename(expect.getState().testPath ?? "file").replace(/\.test\.ts$/, "").slice(0, 24);
const fileTmp = makeTmp(root, `${file}-`);
process.env.TMPDIR = fileTmp;

beforeEach(() => {
  process.env.TMPDIR = makeTmp(fileTmp, "t-");
});

afterEach(async () => {
  const testTmp = process.env.TMPDIR!;
  process.env.TMPDIR = fileTmp;
  const left = await leftovers(testTmp);
  rmSync(testTmp, { recursive: true, force: true });
  expect(left, "left behind in the test's TMPDIR").toEqual([]);
});

// Registered before the test file's own hooks, so it runs after them (vitest runs after-hooks as a stack).
afterAll(async () => {
  const left = await leftovers(fileTmp);
  rmSync(fileTmp, { recursive: true, force: true });
  expect(left, "left behind in the test file's TMPDIR").toEqual([]);
});
