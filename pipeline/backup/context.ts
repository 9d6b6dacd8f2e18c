import type { Config } from "../config.js";
import { BackupDrillError, OperationError } from "../errors.js";
import type { FileEntry } from "../manifest.js";
import type { Progress } from "../progress.js";
import type { HostRunner, StepResult } from "../runners/host.js";
import type { HashPool } from "../store/hash-pool.js";

/** What one service's backup needs: the config, the staging directory and a runner. */
export type ServiceBackupContext = {
  cfg: Config;
  setDir: string;
  /** Runs this service's steps (bounded by the service's phase deadline). */
  runner: Pick<HostRunner, "run" | "binary" | "livePids">;
  /** Hashing threads shared by the services: files are hashed (and fsynced) as they are finished. */
  pool: HashPool;
  progress: Progress;
  signal: AbortSignal;
};

/** What one service's backup hands back to the orchestrator. */
export type ServiceBackupResult<F> = { facts: F; steps: StepResult[]; files: FileEntry[] };

/**
 * Run one phase of a service's backup; a failure is rethrown with the
 * service and phase in front ("redis bgsave: ..."), keeping its exit code kind.
 */
export async function phase<T>(service: string, name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const text = `${service} ${name}: ${msg.replace(new RegExp(`^${service}[ /]`), "")}`;
    if (err instanceof BackupDrillError) throw new BackupDrillError(err.kind, text, { cause: err });
    throw new OperationError(text, { cause: err });
  }
}
