import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, readdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Config, ToolPaths } from "../config.js";
import { OperationError, UserError } from "../errors.js";
import type { Progress } from "../progress.js";
import { Secret, scrub } from "../secret.js";
import type { SecretName, Step, ToolName } from "../step.js";
import { resolveTool } from "../tools.js";
import { humanBytes as human } from "../report.js";

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

const STDERR_TAIL = 8 * 1024;

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

export type HostRunnerOptions = {
  tools: ToolPaths;
  secrets: SecretBag;
  progress: Progress;
  signal?: AbortSignal;
  /** Seconds between progress lines while a step runs. */
  heartbeatSeconds?: number;
};

/**
 * Runs Steps as local child processes. argv[0] is resolved to a binary;
 * secrets go into the child's environment only; the working directory is
 * the set directory, so the Step's relative paths land inside it.
 */
export class HostRunner {
  readonly #opts: HostRunnerOptions;
  readonly #mcConfigDir: string;

  constructor(opts: HostRunnerOptions) {
    this.#opts = opts;
    // mc writes its config on first use; keep it away from the user's ~/.mc.
    this.#mcConfigDir = mkdtempSync(join(tmpdir(), "backup-drill-mc-"));
  }

  dispose(): void {
    rmSync(this.#mcConfigDir, { recursive: true, force: true });
  }

  binary(tool: ToolName): string {
    return resolveTool(tool, this.#opts.tools);
  }

  async run(step: Step, cwd: string): Promise<StepResult> {
    const { progress, secrets, signal } = this.#opts;
    if (signal?.aborted) throw new OperationError(`${step.id}: cancelled`);
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
    for (const out of step.outputs) await mkdir(dirname(join(cwd, out)), { recursive: true });
    const started = Date.now();
    progress.info(`${step.id}: started`);

    const child = spawn(bin, step.argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-STDERR_TAIL);
    };
    const captured: Buffer[] = [];
    if (step.captureStdout) child.stdout.on("data", (chunk: Buffer) => captured.push(chunk));
    else child.stdout.on("data", keep);
    child.stderr.on("data", keep);

    const beat = setInterval(
      () => {
        void Promise.all(step.outputs.map((o) => bytesUnder(join(cwd, o)))).then((sizes) => {
          const bytes = sizes.reduce((a, b) => a + b, 0);
          progress.info(`${step.id}: running ${((Date.now() - started) / 1000).toFixed(0)}s, ${human(bytes)} written`);
        });
      },
      (this.#opts.heartbeatSeconds ?? 10) * 1000,
    );
    beat.unref();

    const onAbort = () => {
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    const exitCode = await new Promise<number>((resolvePromise, reject) => {
      child.on("error", (err) => reject(new OperationError(`${step.id}: cannot start ${step.argv[0]}: ${err.message}`, { cause: err })));
      child.on("close", (code, sig) => resolvePromise(code ?? (sig ? 128 + 15 : 1)));
    }).finally(() => {
      clearInterval(beat);
      signal?.removeEventListener("abort", onAbort);
    });
    const durationMs = Date.now() - started;
    if (signal?.aborted) throw new OperationError(`${step.id}: cancelled`);
    if (exitCode !== 0) {
      const detail = scrub(tail.trim(), allSecrets).split("\n").slice(-5).join(" | ");
      throw new OperationError(`${step.id}: ${step.argv[0]} exited with code ${exitCode}${detail ? `: ${detail}` : ""}`);
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
