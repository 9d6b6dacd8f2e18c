import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** Paths of files under `root` whose bytes contain any of `needles`. */
export function filesContaining(root: string, needles: string[]): string[] {
  const hits: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const bytes = readFileSync(p);
        if (needles.some((n) => bytes.includes(Buffer.from(n)))) hits.push(p);
      }
    }
  };
  walk(root);
  return hits;
}

/**
 * Samples /proc/<pid>/cmdline of every process every few milliseconds while
 * a command runs: what it spawned, and whether a secret was on a command line.
 */
export class ArgvSampler {
  readonly seen = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  start(): this {
    // Every pid is read on every pass: one caught between fork and exec shows its parent's
    // command line first and the tool's on a later pass; both are kept.
    const sample = () => {
      for (const name of readdirSync("/proc")) {
        if (!/^\d+$/.test(name)) continue;
        try {
          const cmd = readFileSync(`/proc/${name}/cmdline`).toString().split("\0").join(" ").trim();
          if (cmd) this.seen.add(cmd);
        } catch {
          // gone already
        }
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

/**
 * PIDs of running processes that belong to a throwaway server: their working
 * directory or command line is under a backup-drill-(pg|redis|minio)- temp dir.
 */
export function throwawayServerPids(): number[] {
  const pattern = /\/backup-drill-(pg|redis|minio)-[^/]+/;
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`).toString();
      let cwd = "";
      try {
        cwd = readlinkSync(`/proc/${name}/cwd`);
      } catch {
        // not ours to read
      }
      if (pattern.test(cmd) || pattern.test(cwd)) out.push(Number(name));
    } catch {
      // exited
    }
  }
  return out;
}
