import { defaultJobs } from "./cores.js";
import { readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { MinioTarget } from "../probes/minio.js";
import type { RedisTarget } from "../probes/redis.js";
import type { Config, ServiceName } from "./config.js";
import { targetsThatAreSources } from "./restore/guards.js";
import { buildDrillSummary, writeDrillSummary, type DrillCheck, type DrillService, type DrillSummary } from "./drill-summary.js";
import { checkProfile } from "./restore/checks.js";
import { BackupDrillError, OperationError, TimeoutError, UserError } from "./errors.js";
import type { Progress } from "./progress.js";
import { REDIS_RDB } from "./plan.js";
import { checkMinio, restoreMinio } from "./restore/minio.js";
import { checkPostgres, restorePostgres, type PostgresTarget } from "./restore/postgres.js";
import { checkRedis } from "./restore/redis.js";
import { loadSet, type LoadedSet } from "./restore/set.js";
import { HostRunner } from "./runners/host.js";
import { Secret } from "./secret.js";
import { startMinio, startPostgres, startRedis } from "./throwaway/servers.js";
import { DRILL_TEMP_PATTERN, requireVerified } from "./verify.js";
import { checkpoint } from "./checkpoint.js";
import { lockDrill, useSet } from "./store/set-locks.js";
import { DEFAULT_TIMEOUTS_MS, withPhaseDeadline } from "./timeouts.js";

/** Servers to drill into instead of throwaway ones (restore-drill --target-config). */
export type DrillTargets = {
  postgres?: PostgresTarget;
  /** A server already started on the set's dump.rdb. */
  redis?: RedisTarget;
  minio?: MinioTarget;
};

export type DrillOptions = {
  progress: Progress;
  signal?: AbortSignal;
  targets?: DrillTargets;
  now?: () => Date;
  /** Recorded in the summary (default "host"). */
  runner?: DrillSummary["runner"];
};

/**
 * A target that is one of the configured backup sources is refused: a drill
 * drops and recreates what it restores.
 */
export function refuseSourceTargets(cfg: Config, targets: DrillTargets): void {
  const [first] = targetsThatAreSources(cfg, targets);
  if (first) throw new UserError(`drill target ${first} is a configured backup source; a drill only restores into throwaway servers`);
}

/** One service's drill outcome from its checks (restore reports the same way), with where its time went. */
export function serviceResult(restoreMs: number, checksStarted: number, version: string, checks: DrillCheck[], serverStartMs?: number): DrillService {
  const checksMs = Date.now() - checksStarted;
  return {
    ok: checks.every((c) => c.ok),
    restoreMs,
    checksMs,
    target: { version },
    checks,
    profile: { ...(serverStartMs !== undefined ? { serverStartMs } : {}), restoreMs, checksMs, checks: checkProfile(checks) },
  };
}

/** A failure of the restore itself is a failed check (the set does not restore), not a failed run. */
export function restoreFailed(service: ServiceName, err: unknown, restoreMs: number): DrillService {
  if (err instanceof BackupDrillError && err.kind !== "operation") throw err;
  // A stalled tool or a server that stopped answering says nothing about the set: the drill could not run.
  if (err instanceof TimeoutError) throw err;
  const check: DrillCheck = { service, check: "restore", subject: service, ok: false, expected: "restores", actual: "failed", durationMs: restoreMs, detail: (err as Error).message };
  return { ok: false, restoreMs, checksMs: 0, target: { version: "unknown" }, checks: [check] };
}

/** Started servers wait for this before anything is restored into them: the set's checksums. */
type Gate = Promise<void>;

async function timedStart<T>(start: () => Promise<T>): Promise<{ server: T; ms: number }> {
  const t0 = Date.now();
  const server = await start();
  return { server, ms: Date.now() - t0 };
}

async function drillPostgres(cfg: Config, set: LoadedSet, opts: DrillOptions, verified: Gate, explicit?: PostgresTarget): Promise<DrillService> {
  const started = explicit ? undefined : await timedStart(() => startPostgres({ tools: cfg.tools }));
  const server = started?.server;
  const target = explicit ?? server!;
  const runner = new HostRunner({ tools: cfg.tools, secrets: { "postgres.target.password": target.password }, progress: opts.progress, signal: opts.signal, ...(cfg.timeouts ? { timeouts: cfg.timeouts } : {}) });
  try {
    if (server) checkpoint("drill:postgres:server-started");
    await verified;
    opts.progress.info(`drill postgres: restoring into ${target.host}:${target.port}`);
    const t0 = Date.now();
    let restored;
    try {
      restored = await restorePostgres(set, target, runner, { jobs: cfg.postgres?.jobs ?? defaultJobs(), globals: true, clean: true });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      return restoreFailed("postgres", err, Date.now() - t0);
    }
    const t1 = Date.now();
    const checks = await checkPostgres(set, target, runner, {
      sanityQueries: cfg.postgres?.sanityQueries ?? [],
      ownershipRestored: restored.ownershipRestored,
      jobs: cfg.postgres?.jobs ?? defaultJobs(),
    });
    return serviceResult(restored.restoreMs, t1, server?.version ?? "external", checks, started?.ms);
  } finally {
    runner.dispose();
    await server?.stop();
  }
}

async function drillRedis(cfg: Config, set: LoadedSet, opts: DrillOptions, verified: Gate, explicit?: RedisTarget): Promise<DrillService> {
  // The server starts on the set's dump.rdb (that load is the restore): only once the set is verified.
  await verified;
  const t0 = Date.now();
  let server;
  if (!explicit) {
    opts.progress.info("drill redis: starting a server on the set's dump.rdb");
    try {
      // Linked, not copied: the throwaway server never saves ("save" is off), and a save would replace the link.
      server = await startRedis({ tools: cfg.tools, rdb: join(set.dir, REDIS_RDB), linkRdb: true });
      checkpoint("drill:redis:server-started");
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      return restoreFailed("redis", err, Date.now() - t0);
    }
  }
  const restoreMs = explicit ? 0 : Date.now() - t0;
  try {
    const t1 = Date.now();
    const checks = await checkRedis(set, explicit ?? server!, { now: (opts.now ?? (() => new Date()))() });
    return serviceResult(restoreMs, t1, server?.version ?? "external", checks, explicit ? undefined : restoreMs);
  } finally {
    await server?.stop();
  }
}

async function drillMinio(cfg: Config, set: LoadedSet, opts: DrillOptions, verified: Gate, explicit?: MinioTarget): Promise<DrillService> {
  const started = explicit ? undefined : await timedStart(() => startMinio({ tools: cfg.tools }));
  const server = started?.server;
  const target: MinioTarget = explicit ?? { endpoint: server!.endpoint, accessKey: server!.accessKey, secretKey: server!.secretKey, region: "us-east-1" };
  try {
    if (server) checkpoint("drill:minio:server-started");
    await verified;
    opts.progress.info(`drill minio: restoring objects into ${target.endpoint}`);
    const t0 = Date.now();
    let restored;
    try {
      restored = await restoreMinio(set, target, {}, (bucket, done, total) => opts.progress.info(`drill minio: ${bucket}: ${done}/${total} objects`));
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      return restoreFailed("minio", err, Date.now() - t0);
    }
    const t1 = Date.now();
    return serviceResult(restored.restoreMs, t1, server ? "minio (pinned build)" : "external", await checkMinio(set, target, {}), started?.ms);
  } finally {
    await server?.stop();
  }
}

/**
 * Restore a set into throwaway servers and prove the data came back.
 * The set's checksums are verified first: a corrupt set fails (exit 3)
 * before anything is restored. Services are drilled side by side; each
 * service's restore time is measured on its own. The summary is written
 * into the set (restore-drill-summary.json, carrying its own sha256) and returned.
 */
export async function drillSet(cfg: Config, id: string, dir: string, opts: DrillOptions): Promise<DrillSummary> {
  const root = dirname(dir);
  // One drill of a set at a time (it writes the set's drill record), and prune leaves a set in use alone.
  const drillLock = await lockDrill(root, id);
  try {
    const inUse = await useSet(root, id, "restore-drill");
    try {
      await requirePresent(id, dir);
      try {
        return await drillLocked(cfg, id, dir, opts);
      } catch (err) {
        if (!(await present(dir))) throw new OperationError(`set ${id} vanished from ${root} during the drill (removed outside backup-drill?): ${(err as Error).message}`, { cause: err });
        throw err;
      }
    } finally {
      await inUse.release();
    }
  } finally {
    await drillLock.release();
  }
}

const present = (dir: string) => stat(dir).then(() => true, () => false);

/** The set is there, also after a prune that renamed it away for an instant (it renames a set in use back). */
export async function requirePresent(id: string, dir: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    if (await present(dir)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new OperationError(`set ${id} vanished from ${dirname(dir)} (pruned or removed) before it could be used`);
}

async function drillLocked(cfg: Config, id: string, dir: string, opts: DrillOptions): Promise<DrillSummary> {
  const now = opts.now ?? (() => new Date());
  const timeouts = cfg.timeouts ?? DEFAULT_TIMEOUTS_MS;
  if (opts.targets) refuseSourceTargets(cfg, opts.targets);
  // A drill record's temp file left by a killed drill: ours to remove, we hold the drill lock.
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (DRILL_TEMP_PATTERN.test(basename(name))) await rm(join(dir, name), { force: true });
  }
  const set = await loadSet(id, dir).catch(async (err: unknown) => {
    // A manifest that does not check out: verify names it, as for any other damage.
    await requireVerified(id, dir, { tools: cfg.tools, progress: opts.progress, formatChecks: false, timeouts });
    throw err;
  });
  const services = (["postgres", "redis", "minio"] as const).filter((s) => set.manifest.services[s] !== undefined);
  if (services.length === 0) throw new UserError(`set ${id} holds no service backup`);
  const startedAt = now();
  const t0 = Date.now();
  opts.progress.info(`drill ${id}: ${services.join(", ")}`);
  // Checksums (and listings) only: restoring each dump is the stronger format check, and it follows.
  // The throwaway servers start meanwhile; nothing is restored into them before the set is verified.
  let verifyMs = 0;
  const verified = requireVerified(id, dir, { tools: cfg.tools, progress: opts.progress, formatChecks: false, timeouts }).then(() => {
    verifyMs = Date.now() - t0;
  });
  verified.catch(() => {}); // awaited below; each service also waits for it
  const drills: Record<ServiceName, (o: DrillOptions) => Promise<DrillService>> = {
    postgres: (o) => drillPostgres(cfg, set, o, verified, opts.targets?.postgres),
    redis: (o) => drillRedis(cfg, set, o, verified, opts.targets?.redis),
    minio: (o) => drillMinio(cfg, set, o, verified, opts.targets?.minio),
  };
  const settled = await Promise.allSettled(
    services.map((s) =>
      withPhaseDeadline(`${s} drill`, { deadlineMs: timeouts.phaseMs, progress: opts.progress, signal: opts.signal }, (signal) =>
        drills[s]({ ...opts, signal }),
      ),
    ),
  );
  // A set that fails verification is the verdict (exit 3), whatever the servers did meanwhile.
  await verified;
  const failed = settled.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (opts.signal?.aborted) throw new OperationError("restore drill cancelled");
  if (failed) throw failed.reason;
  const results = settled.map((r) => (r as PromiseFulfilledResult<DrillService>).value);
  // The wall time read before finishedAt (and t0 after startedAt): it never exceeds their span.
  const wallMs = Date.now() - t0;
  const summary = buildDrillSummary({
    setId: id,
    manifestSha256: set.manifestSha256,
    runner: opts.runner ?? "host",
    startedAt: startedAt.toISOString(),
    finishedAt: now().toISOString(),
    services: services.map((name, i) => ({ name, result: results[i]! })),
    profile: { verifyMs, wallMs },
  });
  await writeDrillSummary(dir, summary);
  return summary;
}

/** Drill targets from a --target-config file's sections. */
export function targetsFrom(t: Pick<Config, "postgres" | "redis" | "minio">): DrillTargets {
  const none = new Secret("", "none");
  return {
    ...(t.postgres ? { postgres: { host: t.postgres.host, port: t.postgres.port, user: t.postgres.user, password: t.postgres.password ?? none } } : {}),
    ...(t.redis ? { redis: { host: t.redis.host, port: t.redis.port, username: t.redis.username, password: t.redis.password } } : {}),
    ...(t.minio ? { minio: { endpoint: t.minio.endpoint, accessKey: t.minio.accessKey, secretKey: t.minio.secretKey, region: t.minio.region } } : {}),
  };
}
