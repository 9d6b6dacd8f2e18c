/**
 * Processes a test owns, found by its own PIDs and paths: the descendants of
 * a CLI it spawned, and whatever runs in, names, or inherited its TMPDIR. A
 * second test run or any other program on the machine matches neither.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export type OwnProcess = { pid: number; cmd: string; cwd: string };

function pids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/** The parent pid, or undefined when the process is gone. "pid (comm) state ppid ...": comm may hold spaces and parens. */
export function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`).toString().split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

function read(path: string, how: "link" | "bytes"): string {
  try {
    return how === "link" ? readlinkSync(path) : readFileSync(path).toString();
  } catch {
    return "";
  }
}

/** Is `p` the directory `dir` or a path inside it (a deleted cwd reads "<path> (deleted)")? */
const inside = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`) || p.startsWith(`${dir} `);

/**
 * Running processes (other than this one) that belong to `dir`, a directory
 * only this test uses: their working directory is in it, their command line
 * names a path in it, or they inherited TMPDIR pointing into it (every
 * process a CLI spawned does, even after its parent died).
 */
export function processesUnder(dir: string): OwnProcess[] {
  const out: OwnProcess[] = [];
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    const cwd = read(`/proc/${pid}/cwd`, "link");
    const argv = read(`/proc/${pid}/cmdline`, "bytes").split("\0");
    const tmp = read(`/proc/${pid}/environ`, "bytes")
      .split("\0")
      .find((e) => e.startsWith("TMPDIR="))
      ?.slice("TMPDIR=".length);
    if (inside(cwd, dir) || argv.some((a) => a.includes(`${dir}/`) || a === dir) || (tmp !== undefined && inside(tmp, dir))) {
      out.push({ pid, cmd: argv.join(" ").trim(), cwd });
    }
  }
  return out;
}

/** Processes of `dir` (see processesUnder) that run in it: the throwaway servers, whose data directory is their cwd. */
export function serversUnder(dir: string): OwnProcess[] {
  return processesUnder(dir).filter((p) => inside(p.cwd, dir));
}

/**
 * Samples the command line of `root` and each of its descendants every few
 * milliseconds until stopped: what a CLI spawned, and whether a secret was on
 * a command line. Parentage is read from /proc/<pid>/stat (this kernel has no
 * /proc/<pid>/task/<tid>/children); a pid is looked at once unless it is in
 * the tree, so a pass stays cheap on a busy machine.
 */
export class ArgvSampler {
  readonly seen = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #parents = new Map<number, number>();

  start(root: number): this {
    let tree = new Set<number>([root]);
    const sample = () => {
      const live = pids();
      const alive = new Set(live);
      for (const pid of this.#parents.keys()) if (!alive.has(pid)) this.#parents.delete(pid);
      for (const pid of live) {
        // New pids are read once; pids in the tree again, in case one exited and its number was reused.
        if (this.#parents.has(pid) && !tree.has(pid)) continue;
        const ppid = parentOf(pid);
        if (ppid === undefined) this.#parents.delete(pid);
        else this.#parents.set(pid, ppid);
      }
      const children = new Map<number, number[]>();
      for (const [pid, ppid] of this.#parents) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
      tree = new Set([root]);
      for (const pid of tree) for (const c of children.get(pid) ?? []) tree.add(c);
      for (const pid of tree) {
        // One caught between fork and exec shows its parent's command line first, the tool's on a later pass: both are kept.
        const cmd = commandLine(pid);
        if (cmd) this.seen.add(cmd);
      }
    };
    sample();
    this.#timer = setInterval(sample, 3);
    return this;
  }

  stop(): string[] {
    clearInterval(this.#timer);
    return [...this.seen.values()];
  }
}

/** Is `pid` a descendant of `root` (following parents up to init)? */
export function isDescendant(pid: number, root: number): boolean {
  for (let p: number | undefined = parentOf(pid); p !== undefined && p > 1; p = parentOf(p)) if (p === root) return true;
  return false;
}

/** Direct children of `pid` (for instance the fork of a Redis server that is writing a BGSAVE). */
export function childrenOf(pid: number): number[] {
  return pids().filter((p) => parentOf(p) === pid);
}

/** The registry of what runs leave (pipeline/throwaway/registry.ts): it may stay in a TMPDIR, but only empty. */
export const REGISTRY_DIR = "backup-drill-registry";

/**
 * backup-drill temp dirs left in `dir` (server data, mc config, staging), as
 * "name" or, for a registry that still holds entries, "name: entries". An
 * empty registry is not a leftover; one holding an entry is (something was
 * registered and neither released nor reaped).
 */
export function backupDrillTempDirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const n of readdirSync(dir).filter((x) => x.startsWith("backup-drill-"))) {
    if (n !== REGISTRY_DIR) out.push(n);
    else {
      const entries = readdirSync(join(dir, n));
      if (entries.length > 0) out.push(`${n}: ${entries.join(", ")}`);
    }
  }
  return out;
}

/** Is `pid` the watchdog (pipeline/runners/watchdog.cjs) of the process `parent`? It lives as long as its parent, by design. */
export function isWatchdogOf(pid: number, cmd: string, parent: number): boolean {
  if (!cmd.endsWith("runners/watchdog.cjs")) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent;
  } catch {
    return false;
  }
}
