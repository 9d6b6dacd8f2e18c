import { mkdir, open, readFile, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { LockedError } from "../errors.js";

export const LOCK_FILE = ".lock";

export type LockInfo = { pid: number; host: string; startedAt: string; command: string };

/** Is a process with this pid alive (possibly someone else's)? */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as LockInfo;
  } catch {
    return undefined;
  }
}

export type Lock = { info: LockInfo; release(): Promise<void> };

/**
 * One writer per output root. The lock is a file created with O_EXCL holding
 * pid, host and start time. A lock left by a dead process on this host is
 * taken over; a live holder (or one on another host) makes this a LockedError.
 */
export async function acquireLock(root: string, command: string, now = new Date()): Promise<Lock> {
  await mkdir(root, { recursive: true });
  const path = join(root, LOCK_FILE);
  const info: LockInfo = { pid: process.pid, host: hostname(), startedAt: now.toISOString(), command };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, "wx", 0o644);
      try {
        await fh.writeFile(`${JSON.stringify(info)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      let released = false;
      return {
        info,
        release: async () => {
          if (released) return;
          released = true;
          const current = await readLock(path);
          if (current?.pid === info.pid && current.host === info.host) await unlink(path).catch(() => {});
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = await readLock(path);
    if (holder === undefined) {
      // Unreadable: either being written this instant, or left half-written by a crash.
      const age = Date.now() - (await stat(path).then((s) => s.mtimeMs).catch(() => 0));
      if (age < 10_000) throw new LockedError(`${path} is being taken by another run`);
    } else if (holder.host !== info.host || pidAlive(holder.pid)) {
      throw new LockedError(
        `${path} is held by pid ${holder.pid} on ${holder.host} (${holder.command}, since ${holder.startedAt})`,
      );
    }
    // Stale: its process is gone. Remove and retry the exclusive create.
    await unlink(path).catch(() => {});
  }
  throw new LockedError(`${path}: could not take the lock after removing a stale one`);
}
