import type { ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { OperationError } from "../errors.js";
import { killGroup, processStartTime, spawnSupervised } from "../runners/children.js";
import { register, type Registration } from "./registry.js";

/**
 * Throwaway servers: started on a free loopback port in a temp directory,
 * stopped by PID, their directory removed. Every live one is registered so
 * a signal handler (or, at worst, process exit) can stop it.
 */
export type ServerProcess = {
  name: string;
  pid: number;
  host: "127.0.0.1";
  port: number;
  /** Temp directory holding data and log; removed on stop. */
  dir: string;
  stop(): Promise<void>;
};

const live = new Map<number, { child: ChildProcess; dir: string; stop: () => Promise<void> }>();

export function liveServerPids(): number[] {
  return [...live.keys()];
}

/** Stop every server this process started (signal handlers, test teardown). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...live.values()].map((s) => s.stop().catch(() => {})));
}

// Last resort: a process that exits without stopping its servers kills them and removes their data.
process.on("exit", () => {
  for (const [pid, s] of live) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
    removeTempDir(s.dir);
  }
});

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolvePort(addr.port) : reject(new Error("no port"))));
    });
  });
}

const tempDirs = new Map<string, Registration>();

/** Can `uid`/`gid` walk into `path` (execute permission on it and every ancestor)? */
export function reachableBy(path: string, who: { uid: number; gid: number }): { ok: true } | { ok: false; blocker: string; mode: string } {
  if (who.uid === 0) return { ok: true };
  for (let p = path; ; p = dirname(p)) {
    let st;
    try {
      st = statSync(p);
    } catch {
      return { ok: false, blocker: p, mode: "missing" };
    }
    const bit = st.uid === who.uid ? 0o100 : st.gid === who.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return { ok: false, blocker: p, mode: (st.mode & 0o777).toString(8).padStart(4, "0") };
    if (dirname(p) === p) return { ok: true };
  }
}

/**
 * Where throwaway servers' temp dirs go: $TMPDIR, unless the server runs as
 * another user (PostgreSQL as `postgres` when we are root) who cannot reach
 * it (a private 0700 TMPDIR): then /var/tmp or /tmp. When none is reachable
 * the error names the directory in the way.
 */
export function tempBaseFor(who?: { uid: number; gid: number; name: string }): string {
  const base = tmpdir();
  if (!who) return base;
  const first = reachableBy(base, who);
  if (first.ok) return base;
  for (const alt of ["/var/tmp", "/tmp"]) if (reachableBy(alt, who).ok) return alt;
  throw new OperationError(
    `the ${who.name} user cannot reach the temp dir ${base}: ${first.blocker} is mode ${first.mode}; set TMPDIR to a directory ${who.name} can reach (e.g. /tmp) or chmod o+x ${first.blocker}`,
  );
}

/** A registered temp dir (reaped by the next run if this one is killed); remove it with removeTempDir. */
export function makeTempDir(prefix: string, who?: { uid: number; gid: number; name: string }): string {
  const dir = mkdtempSync(join(tempBaseFor(who), `backup-drill-${prefix}-`));
  tempDirs.set(dir, register({ kind: "temp-dir", what: `temp dir (${prefix})`, path: dir }));
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.get(dir)?.release();
  tempDirs.delete(dir);
}

export type SpawnServerOptions = {
  name: string;
  bin: string;
  args: string[];
  dir: string;
  port: number;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, then closed (redis-server - reads its config there). */
  stdin?: string;
  uid?: number;
  gid?: number;
  /** Signal for an orderly shutdown. */
  stopSignal: NodeJS.Signals;
  /** Resolves once the server answers; rejects to give up. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function logTail(path: string, lines = 8): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-lines).join(" | ");
  } catch {
    return "";
  }
}

export async function spawnServer(opts: SpawnServerOptions): Promise<ServerProcess> {
  const logPath = join(opts.dir, "server.log");
  const logFd = openSync(logPath, "a", 0o600);
  let child: ChildProcess;
  try {
    child = spawnSupervised(opts.bin, opts.args, {
      cwd: opts.dir,
      env: opts.env ?? process.env,
      stdio: [opts.stdin !== undefined ? "pipe" : "ignore", logFd, logFd],
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
    });
  } finally {
    closeSync(logFd);
  }
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  let exited = false;
  const exitPromise = new Promise<void>((r) =>
    child.once("exit", () => {
      exited = true;
      r();
    }),
  );
  child.once("error", () => {
    exited = true;
  });
  const pid = child.pid;
  if (pid === undefined) {
    removeTempDir(opts.dir);
    throw new OperationError(`${opts.name}: cannot start ${opts.bin}`);
  }
  const registration = register({ kind: "server", what: opts.name, path: opts.dir, pid, start: processStartTime(pid) });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!exited) {
        child.kill("SIGCONT"); // a stopped server cannot shut down
        child.kill(opts.stopSignal);
        let timer: NodeJS.Timeout | undefined;
        const killed = await Promise.race([
          exitPromise.then(() => true),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 20_000))),
        ]);
        clearTimeout(timer);
        if (!killed) {
          killGroup(child);
          await exitPromise;
        }
      }
      live.delete(pid);
      removeTempDir(opts.dir);
      registration.release();
    })();
    return stopping;
  };
  live.set(pid, { child, dir: opts.dir, stop });

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      const tail = logTail(logPath);
      await stop();
      throw new OperationError(`${opts.name}: exited during start-up${tail ? `: ${tail}` : ""}`);
    }
    if (await opts.ready().catch(() => false)) break;
    if (Date.now() > deadline) {
      const tail = logTail(logPath);
      await stop();
      throw new OperationError(`${opts.name}: not ready within ${Math.round((opts.readyTimeoutMs ?? 60_000) / 1000)}s${tail ? `: ${tail}` : ""}`);
    }
    await sleep(100);
  }
  return { name: opts.name, pid, host: "127.0.0.1", port: opts.port, dir: opts.dir, stop };
}
