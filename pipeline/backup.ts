import { join } from "node:path";
import { backupMinio } from "./backup/minio.js";
import { backupPostgres } from "./backup/postgres.js";
import { backupRedis } from "./backup/redis.js";
import type { ServiceBackupContext, ServiceBackupResult } from "./backup/context.js";
import { configuredServices, type Config, type ServiceName } from "./config.js";
import { OperationError, UserError } from "./errors.js";
import { mapLimit } from "./concurrency.js";
import { walkFiles } from "./hash.js";
import { HashPool } from "./store/hash-pool.js";
import { buildManifest, SET_META_FILES, writeManifest, type FileEntry, type Manifest } from "./manifest.js";
import { failureLines, preflight } from "./preflight.js";
import type { Progress } from "./progress.js";
import { pruneAfterBackup, type AfterBackupPrune } from "./prune.js";
import { HostRunner, secretBagFromConfig, type StepResult } from "./runners/host.js";
import { fsyncTree } from "./store/fsync.js";
import { acquireLock } from "./store/lock.js";
import { discardStaged, promoteSet, stageSet, type Latest } from "./store/sets.js";
import { checkpoint } from "./checkpoint.js";
import { register } from "./throwaway/registry.js";
import { DEFAULT_TIMEOUTS_MS, withPhaseDeadline } from "./timeouts.js";

export type BackupOptions = {
  progress: Progress;
  now?: () => Date;
  /** Cancels the run (Ctrl-C): running tools are stopped and the staging directory removed. */
  signal?: AbortSignal;
  /** Run the preflight checks first (default true); a failure stages nothing. */
  preflight?: boolean;
  /** Recorded as manifest.runner (default "host"). */
  runner?: Manifest["runner"];
};

export type BackupResult = {
  id: string;
  dir: string;
  manifest: Manifest;
  manifestSha256: string;
  latest: Latest;
  /** What retention removed after the promote (only when a retention policy is configured). */
  prune?: AfterBackupPrune;
  /** Wall time of each service's backup (they run side by side). */
  serviceMs: Partial<Record<ServiceName, number>>;
};

const WORKERS: { [S in ServiceName]: (ctx: ServiceBackupContext) => Promise<ServiceBackupResult<NonNullable<Manifest["services"][S]>>> } = {
  postgres: backupPostgres,
  redis: backupRedis,
  minio: backupMinio,
};

/**
 * Back up every configured service into one new set. Services run side by
 * side and each hashes its own files as soon as its tools finish. The set is
 * sealed and promoted only when every service succeeded; any failure removes
 * the staging directory and leaves latest.json and earlier sets as they were.
 */
export async function backupSet(cfg: Config, opts: BackupOptions): Promise<BackupResult> {
  const now = opts.now ?? (() => new Date());
  const services = configuredServices(cfg);
  if (services.length === 0) {
    throw new UserError(`${cfg.source}: no service configured (add a "postgres", "redis" or "minio" section, or --pg-host/--redis-host/--minio-endpoint)`);
  }
  if (opts.preflight ?? true) {
    const report = await preflight(cfg, { canary: false });
    for (const w of report.checks.filter((c) => c.ok && c.warning)) opts.progress.warn(`${w.service}: ${w.warning}`);
    if (!report.ok) {
      const lines = failureLines(report).join("; ");
      // A missing password is bad input (exit 2), not a server problem.
      if (report.checks.some((c) => !c.ok && c.badInput)) throw new UserError(`preflight failed, nothing staged: ${lines}`);
      throw new OperationError(`preflight failed, nothing staged: ${lines}`);
    }
  }
  const timeouts = cfg.timeouts ?? DEFAULT_TIMEOUTS_MS;
  const lock = await acquireLock(cfg.output, "backup");
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort();
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const runner = new HostRunner({ tools: cfg.tools, secrets: secretBagFromConfig(cfg), progress: opts.progress, signal: abort.signal, timeouts });
  const pool = new HashPool();
  try {
    const startedAt = now();
    const staged = await stageSet(cfg.output, startedAt);
    // A killed run's staging directory is reaped by the next run of any command.
    const registration = register({ kind: "staging", what: `staging ${staged.id}`, path: staged.dir });
    opts.progress.info(`backup ${staged.id}: ${services.join(", ")} -> ${staged.dir}`);
    checkpoint("backup:staged");
    try {
      // One failed service stops the others; all are waited for before the staging directory goes.
      let firstError: unknown;
      const serviceMs: BackupResult["serviceMs"] = {};
      const settled = await Promise.allSettled(
        services.map((s) =>
          withPhaseDeadline<ServiceBackupResult<unknown>>(`${s} backup`, { deadlineMs: timeouts.phaseMs, progress: opts.progress, signal: abort.signal }, (signal) => {
            // The phase's signal, and a step's own deadline on top when it has one (the Redis snapshot pull).
            const scoped = {
              run: (step: Parameters<HostRunner["run"]>[0], cwd: string, stepSignal?: AbortSignal) => runner.run(step, cwd, stepSignal ? AbortSignal.any([signal, stepSignal]) : signal),
              binary: runner.binary.bind(runner),
              livePids: runner.livePids.bind(runner),
            };
            const worker = WORKERS[s] as (ctx: ServiceBackupContext) => Promise<ServiceBackupResult<unknown>>;
            const t0 = Date.now();
            return worker({ cfg, setDir: staged.dir, runner: scoped, pool, progress: opts.progress, signal }).finally(() => (serviceMs[s] = Date.now() - t0));
          }).catch((err: unknown) => {
            firstError ??= err;
            abort.abort();
            throw err;
          }),
        ),
      );
      if (firstError !== undefined) throw firstError;
      if (opts.signal?.aborted) throw new OperationError("backup cancelled");
      const results = settled.map((r) => (r as PromiseFulfilledResult<ServiceBackupResult<never>>).value);

      const files = await completeFileList(staged.dir, results.flatMap((r) => r.files), pool);
      const steps: StepResult[] = results.flatMap((r) => r.steps);
      const manifest = buildManifest({
        id: staged.id,
        runner: opts.runner ?? "host",
        startedAt: startedAt.toISOString(),
        finishedAt: now().toISOString(),
        services: Object.fromEntries(services.map((s, i) => [s, results[i]!.facts])),
        steps,
        files,
      });
      const manifestSha256 = await writeManifest(staged.dir, manifest);
      await fsyncTree(staged.dir, { files: false }); // every file was fsynced as it was hashed
      const latest = await promoteSet(cfg.output, staged, manifestSha256, now()).finally(() => registration.release());
      opts.progress.info(`backup ${staged.id}: complete, ${files.length} files, ${manifest.totals.bytes} bytes`);
      const result: BackupResult = { id: staged.id, dir: latest.path, manifest, manifestSha256, latest, serviceMs };
      // Bounded retention (the default policy unless the config says "off"), only after a successful promote; never throws.
      if (cfg.retention !== "off") result.prune = await pruneAfterBackup(cfg, now(), opts.progress);
      return result;
    } catch (err) {
      abort.abort();
      await discardStaged(staged).catch(() => {});
      registration.release();
      throw err;
    }
  } finally {
    opts.signal?.removeEventListener("abort", onOuterAbort);
    await pool.close();
    runner.dispose();
    await lock.release();
  }
}

/** The services' file lists, plus any file they did not account for (hashed now), sorted by path (in place). */
export async function completeFileList(setDir: string, reported: FileEntry[], pool: HashPool): Promise<FileEntry[]> {
  const known = new Set(reported.map((f) => f.path));
  const missing: string[] = [];
  await walkFiles(setDir, setDir, (p) => {
    if (!known.has(p) && !SET_META_FILES.has(p)) missing.push(p);
  });
  known.clear();
  const hashed = await mapLimit(missing, pool.size * 2, async (p) => ({ path: p, ...(await pool.hash(join(setDir, p), { durable: true })) }));
  reported.push(...hashed);
  return reported.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
