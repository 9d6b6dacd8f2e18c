import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { LockedError, OperationError } from "../errors.js";
import { processStartTime, sameProcess } from "../runners/children.js";

/**
 * Locks on one set, beside the root's `.lock` (which only writers take):
 * - `.locks/<id>.use-<pid>-<rand>`: shared, held by each restore-drill and
 *   restore reading the set; prune skips a set that has a live one;
 * - `.locks/<id>.drill`: exclusive, one drill of a set at a time (drills
 *   write the set's drill record).
 * A holder is live when its pid still has the recorded start time on this host.
 */
export const SET_LOCKS_DIR = ".locks";

export type SetLockInfo = { pid: number; start?: string; host: string; command: string; since: string };

function me(command: string): SetLockInfo {
  return { pid: process.pid, start: processStartTime(process.pid), host: hostname(), command, since: new Date().toISOString() };
}

function live(info: SetLockInfo): boolean {
  return info.host !== hostname() || sameProcess(info.pid, info.start);
}

async function readInfo(path: string): Promise<SetLockInfo | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as SetLockInfo;
  } catch {
    return undefined;
  }
}

async function writeExclusive(path: string, info: SetLockInfo): Promise<void> {
  const fh = await open(path, "wx", 0o644);
  try {
    await fh.writeFile(`${JSON.stringify(info)}\n`);
  } finally {
    await fh.close();
  }
}

export type SetLock = { release(): Promise<void> };

function releaser(path: string): SetLock {
  let done = false;
  return {
    release: async () => {
      if (done) return;
      done = true;
      await unlink(path).catch(() => {});
    },
  };
}

async function locksDir(root: string): Promise<string> {
  const dir = join(root, SET_LOCKS_DIR);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new OperationError(`${dir}: cannot create: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return dir;
}

/** A shared lock on set `id`: prune leaves the set alone while it is held. */
export async function useSet(root: string, id: string, command: string): Promise<SetLock> {
  const path = join(root, SET_LOCKS_DIR, `${id}.use-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    await mkdir(join(root, SET_LOCKS_DIR), { recursive: true });
    await writeExclusive(path, me(command));
  } catch (err) {
    // A root we cannot write (read-only media) cannot be pruned either: read it unlocked.
    if (["EROFS", "EACCES", "EPERM"].includes((err as NodeJS.ErrnoException).code ?? "")) return { release: async () => {} };
    throw new OperationError(`${path}: cannot write: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return releaser(path);
}

/** The live holders of shared locks on set `id` (stale ones are removed). */
export async function setUsers(root: string, id: string): Promise<SetLockInfo[]> {
  const dir = join(root, SET_LOCKS_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: SetLockInfo[] = [];
  for (const n of names.filter((x) => x.startsWith(`${id}.use-`))) {
    const info = await readInfo(join(dir, n));
    if (info && live(info)) out.push(info);
    else if (info || Date.now() - (await stat(join(dir, n)).then((s) => s.mtimeMs, () => 0)) > 10_000) await unlink(join(dir, n)).catch(() => {});
  }
  return out;
}

/** The exclusive drill lock of set `id`; LockedError naming the live holder. */
export async function lockDrill(root: string, id: string): Promise<SetLock> {
  const path = join(await locksDir(root), `${id}.drill`);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeExclusive(path, me("restore-drill"));
      return releaser(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new OperationError(`${path}: cannot write: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
      }
    }
    const holder = await readInfo(path);
    if (holder && live(holder)) throw new LockedError(`set ${id} is being drilled by pid ${holder.pid} on ${holder.host} (since ${holder.since}); drills of one set run one at a time`);
    if (!holder) {
      const age = Date.now() - (await stat(path).then((s) => s.mtimeMs, () => 0));
      if (age < 10_000) throw new LockedError(`set ${id}: ${path} is being taken by another drill`);
    }
    await unlink(path).catch(() => {}); // stale: its drill is gone
  }
  throw new LockedError(`set ${id}: could not take ${path}`);
}

/** Describe holders for a message: "restore-drill (pid 123)". */
export function describeUsers(users: SetLockInfo[]): string {
  return users.map((u) => `${u.command} (pid ${u.pid}${u.host === hostname() ? "" : ` on ${u.host}`})`).join(", ");
}
