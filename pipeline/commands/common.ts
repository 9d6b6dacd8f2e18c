import type { Argv, CommandModule } from "yargs";
import { loadConfig, OVERRIDES, type Config } from "../config.js";
import { BackupDrillError, type FailureKind } from "../errors.js";
import { silentProgress, stderrProgress, type Progress } from "../progress.js";
import { retireWatchdog } from "../runners/children.js";
import { stopAllServers } from "../throwaway/process.js";
import { reapedLine, reapLeftovers } from "../throwaway/registry.js";
import { configureTimeouts } from "../timeouts.js";

/** Exit codes of backup, verify, restore-drill, prune, status (DESIGN.md). */
export const EXIT = { ok: 0, operation: 1, input: 2, integrity: 3, locked: 4, offsite: 5 } as const;
export const EXIT_FOR_KIND: Record<FailureKind, number> = {
  operation: EXIT.operation,
  input: EXIT.input,
  integrity: EXIT.integrity,
  locked: EXIT.locked,
};

export const EXIT_CODES_EPILOG = `Exit codes:
  0  success
  1  the operation failed (a tool failed, a service is unreachable)
  2  bad input: config, flags, secret references
  3  integrity failure: checksum mismatch, a drill check failed; or the output root is damaged (latest.json unreadable or malformed)
  4  another run holds the lock on the output root, or the set is being drilled
  5  backup only: the set is complete and promoted, but pushing it to an offsite destination failed
  130/143  interrupted by SIGINT/SIGTERM (temporary servers stopped, staging removed)`;

export type GlobalArgs = {
  config?: string;
  output?: string;
  json: boolean;
  quiet: boolean;
  [flag: string]: unknown;
};

/** --config, --output, --json, --quiet and the per-service connection overrides. */
export function withGlobalOptions<T>(y: Argv<T>): Argv<T & GlobalArgs> {
  let out = y
    .option("config", {
      type: "string",
      describe: "Config file (default: $BACKUP_DRILL_CONFIG, else ./backup-drill.config.json if present)",
    })
    .option("output", { type: "string", describe: "Root of the backup sets (default: output/backups; env BACKUP_DRILL_OUTPUT)" })
    .option("json", { type: "boolean", default: false, describe: "Print exactly one JSON document on stdout" })
    .option("quiet", { type: "boolean", default: false, describe: "No progress on stderr" }) as unknown as Argv<T & GlobalArgs>;
  for (const o of OVERRIDES) {
    if (o.flag === "output") continue;
    out = out.option(o.flag, {
      type: "string",
      group: "Connection overrides (flags win over env, env over the config file):",
      describe: `${o.path.join(".")}${o.kind === "list" ? " (comma-separated)" : ""}${/password|secretKey|accessKey/.test(o.path.join(".")) ? ' as "env:NAME" or "file:PATH"' : ""}; env ${o.env}`,
    }) as Argv<T & GlobalArgs>;
  }
  return out;
}

export function configFrom(args: GlobalArgs, opts: { resolveSecrets?: boolean } = {}): Config {
  const cfg = loadConfig({ configPath: args.config, flags: args, ...opts });
  if (cfg.timeouts) configureTimeouts(cfg.timeouts);
  return cfg;
}

/** Where this run happens, recorded in manifests and drill summaries: the Dagger toolbox sets BACKUP_DRILL_RUNNER=dagger. */
export type RunnerName = "host" | "dagger";

export function runnerName(env: NodeJS.ProcessEnv = process.env): RunnerName {
  return env.BACKUP_DRILL_RUNNER === "dagger" ? "dagger" : "host";
}

export type CommandContext = { progress: Progress; signal: AbortSignal; runner: RunnerName };
export type CommandOutcome = { exitCode: number; json: unknown; human: string };

/**
 * The one place an outcome or an error becomes output and an exit code.
 * With --json, stdout gets exactly one JSON document, also on failure.
 * SIGINT/SIGTERM cancel the run: the engine cleans up, then we exit 130/143.
 */
export async function runCommand(
  command: string,
  args: GlobalArgs,
  fn: (ctx: CommandContext) => Promise<CommandOutcome>,
  exitForKind: Record<FailureKind, number> = EXIT_FOR_KIND,
): Promise<void> {
  const progress = args.quiet ? silentProgress : stderrProgress();
  const abort = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) process.exit(sig === "SIGINT" ? 130 : 143); // second signal: leave now
    signalled = sig;
    progress.warn(`${sig}: stopping, cleaning up`);
    abort.abort();
    void stopAllServers();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // What a killed run of any command left (throwaway servers, temp and staging dirs) goes first.
  const reaped = reapedLine(reapLeftovers());
  if (reaped) process.stderr.write(`backup-drill: ${reaped}\n`);
  let exitCode: number;
  try {
    const outcome = await fn({ progress, signal: abort.signal, runner: runnerName() });
    exitCode = outcome.exitCode;
    if (args.json) process.stdout.write(`${JSON.stringify(outcome.json, null, 2)}\n`);
    else if (outcome.human) process.stdout.write(`${outcome.human}\n`);
  } catch (err) {
    const kind: FailureKind = err instanceof BackupDrillError ? err.kind : "operation";
    exitCode = exitForKind[kind];
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`backup-drill ${command}: error: ${message}\n`);
    if (process.env.BACKUP_DRILL_DEBUG && err instanceof Error && !(err instanceof BackupDrillError)) {
      process.stderr.write(`${err.stack}\n`);
    }
    if (args.json) process.stdout.write(`${JSON.stringify({ ok: false, command, error: { kind, message }, exitCode }, null, 2)}\n`);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await stopAllServers();
    await retireWatchdog();
  }
  if (signalled) exitCode = signalled === "SIGINT" ? 130 : 143;
  process.exitCode = exitCode;
}

/** A yargs command whose handler receives the parsed flags as `A` (yargs' inferred types are not worth threading). */
export function defineCommand<A extends GlobalArgs>(c: {
  command: string;
  describe: string;
  builder: (y: Argv) => Argv<unknown>;
  handler: (args: A) => Promise<void>;
}): CommandModule {
  return c as unknown as CommandModule;
}
