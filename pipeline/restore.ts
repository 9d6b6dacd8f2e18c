import { defaultJobs } from "./cores.js";
import { stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { checkpoint } from "./checkpoint.js";
import { useSet } from "./store/set-locks.js";
import { DEFAULT_TIMEOUTS_MS, withPhaseDeadline } from "./timeouts.js";
import { endpointLabel } from "../probes/minio.js";
import type { Config, ServiceName } from "./config.js";
import type { DrillService } from "./drill-summary.js";
import { OperationError, UserError } from "./errors.js";
import { REDIS_RDB } from "./plan.js";
import type { Progress } from "./progress.js";
import { requirePresent, serviceResult } from "./drill.js";
import { inspectTargets, planRestore, targetsThatAreSources, type RestorePlan, type RestoreSelection, type RestoreTargets } from "./restore/guards.js";
import { checkMinio, restoreMinio } from "./restore/minio.js";
import { checkPostgres, restorePostgres } from "./restore/postgres.js";
import { copyRedisFunctions, copyRedisKeys } from "./restore/redis-copy.js";
import { checkRedis } from "./restore/redis.js";
import { loadSet, type LoadedSet } from "./restore/set.js";
import { writeRestoreSummary, type RestoreSummary } from "./restore-summary.js";
import { HostRunner } from "./runners/host.js";
import { startRedis } from "./throwaway/servers.js";
import { requireVerified } from "./verify.js";

export type RestoreOptions = {
  progress: Progress;
  signal?: AbortSignal;
  targets: RestoreTargets;
  selection: RestoreSelection;
  force: boolean;
  dryRun: boolean;
  now?: () => Date;
};

export type RestoreResult = {
  summary: RestoreSummary;
  /** Written summary (not on --dry-run). */
  path?: string;
  plan: RestorePlan;
  /** On --dry-run: the refusal a real run would stop with. */
  refusal?: string;
};

type Inspection = Awaited<ReturnType<typeof inspectTargets>>;

async function restoreOnePostgres(cfg: Config, set: LoadedSet, opts: RestoreOptions, inspection: Inspection): Promise<DrillService> {
  const target = opts.targets.postgres!;
  const sel = opts.selection;
  const pg = inspection.postgres!;
  const runner = new HostRunner({ tools: cfg.tools, secrets: { "postgres.target.password": target.password }, progress: opts.progress, signal: opts.signal, ...(cfg.timeouts ? { timeouts: cfg.timeouts } : {}) });
  try {
    // Ownership and grants need the roles: kept when every role is there (or --globals creates them).
    const rolesMissing = pg.roles.filter((r) => !r.exists).map((r) => r.name);
    const noOwner = !sel.globals && rolesMissing.length > 0;
    if (noOwner) opts.progress.warn(`postgres: roles missing on the target (${rolesMissing.join(", ")}): restoring without ownership and grants; --globals creates them`);
    const restored = await restorePostgres(set, target, runner, {
      databases: sel.databases,
      renames: sel.renames,
      jobs: cfg.postgres?.jobs ?? defaultJobs(),
      globals: sel.globals,
      clean: opts.force,
      noOwner,
      existing: new Set(pg.databases.filter((d) => d.exists).map((d) => d.name)),
    });
    const t1 = Date.now();
    const checks = await checkPostgres(set, target, runner, {
      databases: sel.databases,
      renames: sel.renames,
      sanityQueries: cfg.postgres?.sanityQueries ?? [],
      ownershipRestored: restored.ownershipRestored,
      allowExtraTables: pg.databases.some((d) => d.userObjects > 0),
      jobs: cfg.postgres?.jobs ?? defaultJobs(),
    });
    return serviceResult(restored.restoreMs, t1, "external", checks);
  } finally {
    runner.dispose();
  }
}

async function restoreOneRedis(cfg: Config, set: LoadedSet, opts: RestoreOptions, inspection: Inspection): Promise<DrillService> {
  const target = opts.targets.redis!;
  const sel = opts.selection;
  const dbs = inspection.redis!.dbs.map((d) => d.db);
  const t0 = Date.now();
  opts.progress.info("redis: loading the set's dump.rdb into a throwaway server");
  const loaded = await startRedis({ tools: cfg.tools, rdb: join(set.dir, REDIS_RDB) });
  let copied;
  let libraries = 0;
  try {
    checkpoint("restore:redis:loaded");
    copied = await copyRedisKeys(loaded, target, {
      dbs,
      pattern: sel.keyPattern,
      replace: opts.force,
      onProgress: (db, n) => opts.progress.info(`redis: db${db}: ${n} keys copied`),
    });
    if (inspection.redis!.functions.length > 0) libraries = await copyRedisFunctions(loaded, target, { replace: opts.force });
  } finally {
    await loaded.stop();
  }
  opts.progress.info(`redis: ${copied.keys} keys${libraries ? ` and ${libraries} function librar${libraries === 1 ? "y" : "ies"}` : ""} copied in ${(copied.ms / 1000).toFixed(2)}s`);
  if (inspection.redis!.functionsSkipped) opts.progress.warn(`redis: function libraries not copied: ${inspection.redis!.functionsSkipped}`);
  const t1 = Date.now();
  const checks = await checkRedis(set, target, {
    now: (opts.now ?? (() => new Date()))(),
    dbs,
    pattern: sel.keyPattern,
    skipKeyspace: sel.keyPattern !== undefined || inspection.redis!.dbs.some((d) => d.keys > 0),
    skipFunctions: inspection.redis!.functionsSkipped !== undefined,
    allowExtraFunctions: inspection.redis!.targetLibraries > 0,
  });
  return serviceResult(t1 - t0, t1, "external", checks);
}

async function restoreOneMinio(set: LoadedSet, opts: RestoreOptions, inspection: Inspection): Promise<DrillService> {
  const target = opts.targets.minio!;
  const sel = { buckets: opts.selection.buckets, prefix: opts.selection.prefix };
  const restored = await restoreMinio(set, target, sel, (bucket, done, total) => opts.progress.info(`minio: ${bucket}: ${done}/${total} objects`));
  const t1 = Date.now();
  const checks = await checkMinio(set, target, sel, { allowExtra: inspection.minio!.buckets.some((b) => b.objects > 0) });
  return serviceResult(restored.restoreMs, t1, "external", checks);
}

/**
 * Restore a set into real servers, safely: verify the set (exit 3 before
 * anything is written), look at the targets, refuse to overwrite anything
 * without --force (exit 2, one line naming it), print the plan on --dry-run,
 * otherwise restore and run the drill's checks against the targets. The
 * summary goes to <output>/restores/<timestamp>.json, never into the set.
 */
export async function restoreSet(cfg: Config, id: string, dir: string, opts: RestoreOptions): Promise<RestoreResult> {
  // Prune leaves a set that is being restored from alone.
  const inUse = await useSet(dirname(dir), id, "restore");
  try {
    await requirePresent(id, dir);
    return await restoreLocked(cfg, id, dir, opts);
  } catch (err) {
    if (!(await stat(dir).then(() => true, () => false))) {
      throw new OperationError(`set ${id} vanished from ${dirname(dir)} during the restore (removed outside backup-drill?): ${(err as Error).message}`, { cause: err });
    }
    throw err;
  } finally {
    await inUse.release();
  }
}

async function restoreLocked(cfg: Config, id: string, dir: string, opts: RestoreOptions): Promise<RestoreResult> {
  const now = opts.now ?? (() => new Date());
  const sel = opts.selection;
  for (const s of sel.services) {
    if (!opts.targets[s]) throw new UserError(`no ${s} target: add a ${s} section to --target-config or pass --target-${s === "postgres" ? "pg" : s}-* flags`);
  }
  // Checksums (and listings) only: restoring each dump is the stronger format check, and it follows.
  await requireVerified(id, dir, { tools: cfg.tools, progress: opts.progress, formatChecks: false });
  const set = await loadSet(id, dir);
  for (const s of sel.services) if (!set.manifest.services[s]) throw new UserError(`--services: set ${id} has no ${s} backup`);
  const startedAt = now();
  const inspection = await inspectTargets(set, opts.targets, sel);
  const plan = planRestore(inspection, sel, opts.force);
  const sources = opts.force ? [] : targetsThatAreSources(cfg, opts.targets, sel.services).map((t) => `target ${t} is a configured backup source`);
  const refusals = [...sources, ...plan.refusals];
  const refusal = refusals.length > 0 ? `refusing to overwrite: ${refusals.join("; ")} (nothing was changed; --force overwrites, --dry-run shows the plan)` : undefined;
  if (refusal && !opts.dryRun) throw new UserError(refusal);
  const base = {
    schemaVersion: 1 as const,
    setId: id,
    manifestSha256: set.manifestSha256,
    dryRun: opts.dryRun,
    force: opts.force,
    targets: {
      ...(opts.targets.postgres && sel.services.includes("postgres") ? { postgres: `${opts.targets.postgres.host}:${opts.targets.postgres.port}` } : {}),
      ...(opts.targets.redis && sel.services.includes("redis") ? { redis: `${opts.targets.redis.host}:${opts.targets.redis.port}` } : {}),
      ...(opts.targets.minio && sel.services.includes("minio") ? { minio: endpointLabel(opts.targets.minio) } : {}),
    },
    selection: sel,
    plan: plan.actions,
  };
  if (opts.dryRun) {
    const summary: RestoreSummary = { ...base, startedAt: startedAt.toISOString(), finishedAt: now().toISOString(), ok: true, services: {}, totals: { checks: 0, passed: 0, failed: 0 } };
    return { summary, plan, ...(refusal ? { refusal } : {}) };
  }

  const runs: Record<ServiceName, (o: RestoreOptions) => Promise<DrillService>> = {
    postgres: (o) => restoreOnePostgres(cfg, set, o, inspection),
    redis: (o) => restoreOneRedis(cfg, set, o, inspection),
    minio: (o) => restoreOneMinio(set, o, inspection),
  };
  const phaseMs = (cfg.timeouts ?? DEFAULT_TIMEOUTS_MS).phaseMs;
  // Services restore side by side, as in the drill; all are waited for before a failure is reported.
  const settled = await Promise.allSettled(
    sel.services.map((s) => {
      opts.progress.info(`restore ${s}: ${plan.actions.filter((a) => a.service === s).map((a) => a.detail).join("; ")}`);
      return withPhaseDeadline(`${s} restore`, { deadlineMs: phaseMs, progress: opts.progress, signal: opts.signal }, (signal) => runs[s]({ ...opts, signal }));
    }),
  );
  const failed = settled.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
  const services: Partial<Record<ServiceName, DrillService>> = Object.fromEntries(
    sel.services.map((s, i) => [s, (settled[i] as PromiseFulfilledResult<DrillService>).value]),
  );
  const checks = Object.values(services).flatMap((r) => r!.checks);
  const summary: RestoreSummary = {
    ...base,
    startedAt: startedAt.toISOString(),
    finishedAt: now().toISOString(),
    ok: checks.every((c) => c.ok),
    services,
    totals: { checks: checks.length, passed: checks.filter((c) => c.ok).length, failed: checks.filter((c) => !c.ok).length },
  };
  const path = await writeRestoreSummary(cfg.output, summary);
  return { summary, path, plan };
}

