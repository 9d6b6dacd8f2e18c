import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Children that die with backup-drill. Every tool and throwaway server is
 * spawned here:
 * - wrapped in `setpriv --pdeathsig SIGKILL` (util-linux): the kernel kills
 *   the direct child when this process dies, however it dies;
 * - as the leader of its own process group, registered with a small watchdog
 *   process that kills the whole group (pg_dump's and pg_restore's workers,
 *   PostgreSQL's backends) once this process is gone — the watchdog learns
 *   that from its stdin reaching end-of-file, which happens on kill -9 too.
 * A pid is only ever signalled after its start time is checked.
 */

const WATCHDOG = fileURLToPath(new URL("./watchdog.cjs", import.meta.url));
const SETPRIV_CANDIDATES = ["/usr/bin/setpriv", "/bin/setpriv"];

let setprivPath: string | null | undefined;
function setpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  for (const p of SETPRIV_CANDIDATES) {
    try {
      accessSync(p, constants.X_OK);
      setprivPath = p;
      break;
    } catch {
      // try the next
    }
  }
  return setprivPath;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined when the pid is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Is `pid` alive and the very process that had `startTime`? */
export function sameProcess(pid: number, startTime: string | undefined): boolean {
  const now = processStartTime(pid);
  return now !== undefined && (startTime === undefined || now === startTime);
}

let watchdog: ChildProcess | undefined;
function watchdogIn(): ChildProcess | undefined {
  if (watchdog && watchdog.exitCode === null && !watchdog.killed) return watchdog;
  try {
    watchdog = spawn(process.execPath, [WATCHDOG], { stdio: ["pipe", "ignore", "ignore"], detached: true });
    watchdog.on("error", () => {});
    watchdog.stdin!.on("error", () => {});
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
    return watchdog;
  } catch {
    return undefined;
  }
}

function tell(line: string): void {
  const w = watchdogIn();
  w?.stdin?.write(`${line}\n`);
}

/**
 * End the watchdog and wait (briefly) until it has gone, so that when this
 * process exits nothing it started outlives it, the watchdog included. Its
 * stdin ending is what it waits for: it kills any group still registered and
 * exits.
 */
export function retireWatchdog(timeoutMs = 2000): Promise<void> {
  const w = watchdog;
  watchdog = undefined;
  if (!w || w.exitCode !== null || w.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(resolvePromise, timeoutMs);
    w.once("exit", () => {
      clearTimeout(timer);
      resolvePromise();
    });
    w.stdin?.end();
  });
}

export type SupervisedOptions = SpawnOptions & { uid?: number; gid?: number };

/**
 * spawn(), but the child (and everything it starts in its process group)
 * dies when this process dies. The child leads a new session/process group.
 */
export function spawnSupervised(bin: string, args: string[], opts: SupervisedOptions): ChildProcess {
  const wrapper = setpriv();
  const [file, argv] = wrapper ? [wrapper, ["--pdeathsig", "SIGKILL", "--", bin, ...args]] : [bin, args];
  const child = spawn(file, argv, { ...opts, detached: true });
  const pid = child.pid;
  if (pid !== undefined) {
    const start = processStartTime(pid);
    tell(`+${pid}${start ? ` ${start}` : ""}`);
    child.once("exit", () => tell(`-${pid}`));
  }
  return child;
}

/** SIGKILL a supervised child's whole process group (its workers too). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  // Also when the leader has exited: its workers may still be in the group.
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  }
}

/** Run a short supervised command to completion; rejects with its stderr on failure or after `timeoutMs`. */
export function runSupervised(
  bin: string,
  args: string[],
  opts: SupervisedOptions & { timeoutMs: number },
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const { timeoutMs, ...spawnOpts } = opts;
    const child = spawnSupervised(bin, args, { ...spawnOpts, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      killGroup(child);
      stderr += `\n${bin}: killed after ${Math.round(timeoutMs / 1000)}s`;
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(Object.assign(err, { stderr }));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise({ stdout, stderr });
      else reject(Object.assign(new Error(`${bin} exited with code ${code}`), { stderr }));
    });
  });
}
