import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** A process and its descendants (through /proc/<pid>/task/<tid>/children), the process first. */
export function processTree(pid: number, depth = 0): number[] {
  const out = [pid];
  if (depth > 6) return out;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      for (const k of kids ? kids.split(" ") : []) out.push(...processTree(Number(k), depth + 1));
    }
  } catch {
    // gone meanwhile
  }
  return out;
}

/**
 * Absolute paths under `dir` that the given processes (or any of their
 * descendants) hold open now, read from /proc/<pid>/fd. Undefined when
 * that cannot be known (no /proc, or a process whose descriptors we may not
 * read): the caller must then assume every file may still be written.
 */
export function openFilesUnder(pids: number[], dir: string): Set<string> | undefined {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const out = new Set<string>();
  for (const root of pids) {
    for (const pid of processTree(root)) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // exited meanwhile
        return undefined;
      }
      for (const fd of fds) {
        try {
          const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
          if (target.startsWith(prefix)) out.add(target.replace(/ \(deleted\)$/, ""));
        } catch {
          // closed meanwhile
        }
      }
    }
  }
  return out;
}
