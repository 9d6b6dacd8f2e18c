import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * CPUs this process may use: the scheduler's affinity mask
 * (availableParallelism), capped by a cgroup CPU quota when one is set (a
 * container limited to "2 CPUs" on a 64-core host). Never less than 1.
 */
export function availableCores(read: (path: string) => string | undefined = readOrUndefined): number {
  const affinity = Math.max(1, availableParallelism());
  const quota = cgroupQuota(read);
  return quota === undefined ? affinity : Math.max(1, Math.min(affinity, Math.ceil(quota)));
}

/** The cgroup v2 (cpu.max) or v1 (cfs quota / period) CPU limit, in CPUs; undefined when unlimited or unknown. */
export function cgroupQuota(read: (path: string) => string | undefined): number | undefined {
  const v2 = read("/sys/fs/cgroup/cpu.max")?.trim();
  if (v2) {
    const [max, period] = v2.split(/\s+/);
    if (max && max !== "max" && Number(period) > 0) return Number(max) / Number(period);
    return undefined;
  }
  const quota = Number(read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")?.trim());
  const period = Number(read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")?.trim());
  return quota > 0 && period > 0 ? quota / period : undefined;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** More pg_dump / pg_restore workers than this rarely helps and costs server connections. */
export const MAX_DEFAULT_JOBS = 8;

/** The default --jobs of pg_dump and pg_restore: one per available core, at most MAX_DEFAULT_JOBS. */
export function defaultJobs(cores = availableCores()): number {
  return Math.max(1, Math.min(MAX_DEFAULT_JOBS, cores));
}
