import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processStartTime, sameProcess } from "../runners/children.js";

/**
 * What a run leaves behind if it is killed: throwaway servers, temp dirs and
 * staging directories. Each is registered here as one small file (owner pid
 * and start time, the server's pid and start time, the path) while it lives,
 * so the next run of any command can reap what a killed run left: it signals
 * a server only when its pid still has the recorded start time, and removes
 * the paths. The registry lives in $TMPDIR/backup-drill-registry (or
 * $BACKUP_DRILL_REGISTRY): per machine and per TMPDIR, like the temp dirs.
 */
export type RegistryEntry = {
  owner: { pid: number; start?: string };
  kind: "server" | "temp-dir" | "staging";
  /** For messages: "throwaway postgres :5433", "mc config", ".partial-<id>". */
  what: string;
  path: string;
  /** A server's process (the leader of its process group). */
  pid?: number;
  start?: string;
};

export function registryDir(): string {
  return process.env.BACKUP_DRILL_REGISTRY || join(tmpdir(), "backup-drill-registry");
}

const self = { pid: process.pid, start: processStartTime(process.pid) };

export type Registration = { update(patch: Partial<RegistryEntry>): void; release(): void };

/** Record something to reap if this process dies before releasing it. */
export function register(entry: Omit<RegistryEntry, "owner">): Registration {
  const dir = registryDir();
  const file = join(dir, `${process.pid}-${randomBytes(6).toString("hex")}.json`);
  let current: RegistryEntry = { owner: self, ...entry };
  const write = () => {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, JSON.stringify(current), { mode: 0o600 });
      renameSync(tmp, file);
    } catch {
      // A registry that cannot be written costs only the reaping after a crash.
    }
  };
  write();
  return {
    update(patch) {
      current = { ...current, ...patch };
      write();
    },
    release() {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    },
  };
}

export type Reaped = { owners: number[]; servers: string[]; paths: string[] };

/**
 * Reap what dead runs left: kill each registered server whose pid still has
 * its recorded start time (its whole process group), remove each path, drop
 * the entries. Entries of live runs are left alone.
 */
export function reapLeftovers(): Reaped {
  const dir = registryDir();
  const out: Reaped = { owners: [], servers: [], paths: [] };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const file = join(dir, name);
    let entry: RegistryEntry;
    try {
      entry = JSON.parse(readFileSync(file, "utf8")) as RegistryEntry;
    } catch {
      // Torn write by a run that died this instant, or garbage: drop it once it is old.
      try {
        if (Date.now() - statSync(file).mtimeMs > 60_000) unlinkSync(file);
      } catch {
        // gone
      }
      continue;
    }
    if (sameProcess(entry.owner.pid, entry.owner.start)) continue; // its run is alive
    if (entry.pid !== undefined && !(entry.start !== undefined && sameProcess(entry.pid, entry.start))) {
      out.servers.push(`${entry.what} (pid ${entry.pid}, already stopped)`);
    } else if (entry.pid !== undefined) {
      try {
        process.kill(-entry.pid, "SIGKILL");
      } catch {
        try {
          process.kill(entry.pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
      out.servers.push(`${entry.what} (pid ${entry.pid}, killed)`);
    }
    try {
      statSync(entry.path);
      rmSync(entry.path, { recursive: true, force: true });
      if (entry.kind !== "server") out.paths.push(entry.path);
    } catch {
      // nothing left there
    }
    if (!out.owners.includes(entry.owner.pid)) out.owners.push(entry.owner.pid);
    try {
      unlinkSync(file);
    } catch {
      // another run reaped it
    }
  }
  return out;
}

/** One line for what was reaped, or undefined when there was nothing. */
export function reapedLine(r: Reaped): string | undefined {
  if (r.servers.length === 0 && r.paths.length === 0) return undefined;
  const parts = [
    ...(r.servers.length ? [`${r.servers.length} throwaway server(s): ${r.servers.join(", ")}`] : []),
    ...(r.paths.length ? [`${r.paths.length} temp/staging dir(s): ${r.paths.join(", ")}`] : []),
  ];
  return `reaped what a killed run (pid ${r.owners.join(", ")}) left: ${parts.join("; ")}`;
}
