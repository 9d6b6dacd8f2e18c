import { readFileSync } from "node:fs";
import { mkdir, readdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { checkpoint } from "../checkpoint.js";
import type { Config, ToolPaths } from "../config.js";
import { OperationError, TimeoutError, UserError } from "../errors.js";
import type { Progress } from "../progress.js";
import { Secret, scrub } from "../secret.js";
import type { SecretName, Step, ToolName } from "../step.js";
import { resolveTool } from "../tools.js";
import { humanBytes as human } from "../report.js";
import { makeTempDir, removeTempDir } from "../throwaway/process.js";
import { DEFAULT_TIMEOUTS_MS, type Timeouts } from "../timeouts.js";
import { killGroup, spawnSupervised } from "./children.js";
import { processTree } from "./open-files.js";

export type StepResult = {
  id: string;
  service: Step["service"];
  argv: string[];
  exitCode: number;
  durationMs: number;
  /** Whole stdout, for steps with captureStdout. */
  stdout?: string;
};

/** Secrets a host run can hand to its steps, by name. */
export type SecretBag = Partial<Record<SecretName, Secret>>;

export function secretBagFromConfig(cfg: Config): SecretBag {
  const bag: SecretBag = {};
  if (cfg.postgres?.password) bag["postgres.password"] = cfg.postgres.password;
  if (cfg.redis?.password) bag["redis.password"] = cfg.redis.password;
  if (cfg.minio) bag["minio.mcHost"] = mcHostSecret(cfg.minio.endpoint, cfg.minio.accessKey, cfg.minio.secretKey);
  return bag;
}

/**
 * MC_HOST_<alias> = scheme://ACCESS:SECRET@host:port. mc takes it apart with
 * a regular expression and uses the keys raw (not URL-decoded), so a key is
 * written as it is — and one the format cannot carry (":" in the access key,
 * "@" in the secret key) is refused here rather than failing inside mc.
 */
export function mcHostSecret(endpoint: string, accessKey: Secret, secretKey: Secret): Secret {
  return new Secret(() => {
    const ak = accessKey.reveal();
    const sk = secretKey.reveal();
    if (ak.includes(":")) throw new UserError("minio.accessKey contains ':', which mc cannot take (MC_HOST_<alias>)");
    if (sk.includes("@")) throw new UserError("minio.secretKey contains '@', which mc cannot take (MC_HOST_<alias>)");
    const url = new URL(endpoint);
    return `${url.protocol}//${ak}:${sk}@${url.host}`;
  }, "minio.endpoint+keys");
}

const TAIL = 8 * 1024;

async function bytesUnder(path: string): Promise<number> {
  try {
    const s = await stat(path);
    if (!s.isDirectory()) return s.size;
    let total = 0;
    for (const e of await readdir(path, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) total += (await stat(join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size;
    }
    return total;
  } catch {
    return 0;
  }
}

/**
 * A progress counter of a process and its descendants: bytes passed to
 * read/write (files, pipes, and sockets for tools that read them that way,
 * like mc) from /proc/<pid>/io, plus — for single-threaded tools (pg_dump,
 * pg_restore, redis-cli, whose sockets are read with recv) — how often the
 * process woke from a wait (voluntary context switches): every reply from
 * the server wakes it. A tool blocked on a stopped server or a black hole
 * moves neither.
 */
export function treeIo(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) total += ioProgress(p);
  return total;
}

/** One process's share of treeIo: rchar + wchar, plus its wake-ups when single-threaded; 0 when it is gone. */
function ioProgress(pid: number): number {
  try {
    let total = 0;
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    for (const m of io.matchAll(/^(rchar|wchar): (\d+)$/gm)) total += Number(m[2]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    if (/^Threads:\s+1$/m.test(status)) total += Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0);
    return total;
  } catch {
    return 0;
  }
}

/** Bytes a process and its descendants wrote (wchar of /proc/<pid>/io: files, pipes, sockets), or undefined when /proc cannot say. */
export function treeWritten(pid: number): number | undefined {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${p}/io`, "utf8"))?.[1] ?? 0);
    } catch {
      if (p === pid) return undefined;
    }
  }
  return total;
}

/** The lines of a tool's stderr that say why it failed (mc and pg_dump put the cause after a summary). */
export function causeLines(stderr: string, stdout: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const causes = lines.filter((l) => /error|fatal|failed|cause|refused|denied|timeout|timed out|reset|broken pipe|no such/i.test(l));
  const chosen = (causes.length > 0 ? causes : lines).slice(-3);
  if (chosen.length > 0) return chosen.join(" | ");
  return stdout.split("\n").map((l) => l.trim()).filter(Boolean).slice(-3).join(" | ");
}

export type HostRunnerOptions = {
  tools: ToolPaths;
  secrets: SecretBag;
  progress: Progress;
  signal?: AbortSignal;
  /** Seconds between progress lines while a step runs. */
  heartbeatSeconds?: number;
  /** Stall limits (timeouts.stall / restoreStall); default: the defaults. */
  timeouts?: Pick<Timeouts, "stallMs" | "restoreStallMs">;
};

/**
 * Runs Steps as local child processes. argv[0] is resolved to a binary;
 * secrets go into the child's environment only; the working directory is
 * the set directory, so the Step's relative paths land inside it.
 */
export class HostRunner {
  readonly #opts: HostRunnerOptions;
  readonly #mcConfigDir: string;
  readonly #live = new Set<number>();

  constructor(opts: HostRunnerOptions) {
    this.#opts = opts;
    // mc writes its config on first use; keep it away from the user's ~/.mc.
    this.#mcConfigDir = makeTempDir("mc");
  }

  dispose(): void {
    removeTempDir(this.#mcConfigDir);
  }

  binary(tool: ToolName): string {
    return resolveTool(tool, this.#opts.tools);
  }

  /** The pids of the steps running now (each the leader of its tool's process group). */
  livePids(): number[] {
    return [...this.#live];
  }

  /**
   * Run one step to completion. It is killed (its whole process group) when
   * `signal` or the runner's signal fires, or when it stalls: no byte
   * written or read by it or its workers, no output, for timeouts.stall
   * (restoreStall for steps that wait on a server's work).
   */
  async run(step: Step, cwd: string, signal?: AbortSignal): Promise<StepResult> {
    const { progress, secrets } = this.#opts;
    const signals = [this.#opts.signal, signal].filter((s): s is AbortSignal => s !== undefined);
    const aborted = () => signals.find((s) => s.aborted);
    const cancelled = () => {
      const reason = aborted()?.reason;
      if (reason instanceof TimeoutError) return new TimeoutError(`${step.id}: ${reason.message}`, { cause: reason });
      return reason instanceof OperationError ? new OperationError(`${step.id}: ${reason.message}`, { cause: reason }) : new OperationError(`${step.id}: cancelled`);
    };
    if (aborted()) throw cancelled();
    const env: NodeJS.ProcessEnv = { ...process.env, ...step.env };
    for (const [name, secretName] of Object.entries(step.secretEnv)) {
      const secret = secrets[secretName];
      if (!secret) throw new OperationError(`${step.id}: secret ${secretName} is not configured`);
      env[name] = secret.reveal();
    }
    if (step.argv[0] === "mc") env.MC_CONFIG_DIR = this.#mcConfigDir;
    const allSecrets = Object.values(secrets).filter((s): s is Secret => s !== undefined);
    for (const arg of step.argv) {
      if (scrub(arg, allSecrets) !== arg) throw new OperationError(`${step.id}: refusing to put a secret on a command line`);
    }
    const bin = this.binary(step.argv[0]);
    for (const out of step.outputs) {
      const dir = dirname(join(cwd, out));
      await mkdir(dir, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        throw new OperationError(`${step.id}: cannot create ${dir}: ${err.code ?? err.message}`, { cause: err });
      });
    }
    const timeouts = this.#opts.timeouts ?? DEFAULT_TIMEOUTS_MS;
    const stallMs = step.waitsOnServerWork ? timeouts.restoreStallMs : timeouts.stallMs;
    checkpoint(`before-step:${step.id}`);
    const started = Date.now();
    progress.info(`${step.id}: started`);

    const child = spawnSupervised(bin, step.argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const pid = child.pid;
    if (pid !== undefined) this.#live.add(pid);
    let errTail = "";
    let outTail = "";
    let outputBytes = 0;
    const captured: Buffer[] = [];
    child.stdout!.on("data", (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (step.captureStdout) captured.push(chunk);
      else outTail = (outTail + chunk.toString("utf8")).slice(-TAIL);
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      outputBytes += chunk.length;
      errTail = (errTail + chunk.toString("utf8")).slice(-TAIL);
    });

    let finished = false;
    const beat = setInterval(
      () => {
        // What the tool's process tree wrote (/proc), or else the size of its outputs (a walk: costly for a bucket of millions).
        const written = child.pid !== undefined ? treeWritten(child.pid) : undefined;
        void (written !== undefined ? Promise.resolve(written) : Promise.all(step.outputs.map((o) => bytesUnder(join(cwd, o)))).then((sizes) => sizes.reduce((a, b) => a + b, 0))).then(
          (bytes) => {
            if (!finished) progress.info(`${step.id}: running ${((Date.now() - started) / 1000).toFixed(0)}s, ${human(bytes)} written`);
          },
        );
      },
      (this.#opts.heartbeatSeconds ?? 10) * 1000,
    );
    beat.unref();

    // Stall detection: the process tree's I/O counters plus its output, sampled often.
    let stalled: string | undefined;
    let lastProgress = -1;
    let lastChange = Date.now();
    const watch = setInterval(
      () => {
        const now = child.pid !== undefined ? treeIo(child.pid) + outputBytes : outputBytes;
        if (now !== lastProgress) {
          lastProgress = now;
          lastChange = Date.now();
          return;
        }
        if (Date.now() - lastChange >= stallMs && stalled === undefined) {
          const waited = step.waitsFor ? `; it was waiting for ${step.waitsFor}` : "";
          stalled = `${step.argv[0]} made no progress for ${Math.round(stallMs / 1000)}s (nothing written or read; timeouts.${step.waitsOnServerWork ? "restoreStall" : "stall"}), killed it${waited}`;
          progress.warn(`${step.id}: ${stalled}`);
          killGroup(child);
        }
      },
      Math.max(100, Math.min(1000, Math.floor(stallMs / 4))),
    );
    watch.unref();

    const onAbort = () => killGroup(child);
    for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
    checkpoint(`step:${step.id}`);

    const exitCode = await new Promise<number>((resolvePromise, reject) => {
      child.on("error", (err) => reject(new OperationError(`${step.id}: cannot start ${step.argv[0]}: ${err.message}`, { cause: err })));
      child.on("close", (code, sig) => resolvePromise(code ?? (sig ? 128 + (sig === "SIGKILL" ? 9 : 15) : 1)));
    }).finally(() => {
      finished = true;
      if (pid !== undefined) this.#live.delete(pid);
      clearInterval(beat);
      clearInterval(watch);
      for (const s of signals) s.removeEventListener("abort", onAbort);
    });
    const durationMs = Date.now() - started;
    if (stalled) throw new TimeoutError(`${step.id}: ${stalled}`);
    if (aborted()) throw cancelled();
    if (exitCode !== 0) {
      const detail = scrub(causeLines(errTail, outTail), allSecrets);
      const peer = step.waitsFor ? ` (talking to ${step.waitsFor})` : "";
      throw new OperationError(`${step.id}: ${step.argv[0]} exited with code ${exitCode}${peer}${detail ? `: ${detail}` : ""}`);
    }
    progress.info(`${step.id}: done in ${(durationMs / 1000).toFixed(1)}s`);
    return {
      id: step.id,
      service: step.service,
      argv: step.argv,
      exitCode,
      durationMs,
      ...(step.captureStdout ? { stdout: Buffer.concat(captured).toString("utf8") } : {}),
    };
  }
}
