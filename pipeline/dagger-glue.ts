import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { countTables, databaseSize, holdSnapshot, probePostgres, type HeldSnapshot, type TableCount } from "../probes/postgres.js";
import { CANARY_PREFIX, endpointLabel, listBucketNames, listObjects, mapKeysToPaths, minioClient, minioError } from "../probes/minio.js";
import { completeFileList } from "./backup.js";
import { backupMinio } from "./backup/minio.js";
import { prepareRedis, type PreparedRedis } from "./backup/redis.js";
import type { ServiceBackupResult } from "./backup/context.js";
import type { Config, SanityQuery, ServiceName } from "./config.js";
import { restoreFailed, serviceResult } from "./drill.js";
import { buildDrillSummary, writeDrillSummary, type DrillService, type DrillSummary } from "./drill-summary.js";
import { BackupDrillError, OperationError, UserError } from "./errors.js";
import { buildManifest, writeManifest, type Manifest, type MinioFacts } from "./manifest.js";
import type { Progress } from "./progress.js";
import { checkMinio, restoreMinio } from "./restore/minio.js";
import { checkPostgres, restorePostgres, type PostgresTarget } from "./restore/postgres.js";
import { checkRedis } from "./restore/redis.js";
import { loadSet, type LoadedSet } from "./restore/set.js";
import type { MinioTarget } from "../probes/minio.js";
import type { RedisTarget } from "../probes/redis.js";
import { HostRunner, secretBagFromConfig, type SecretBag, type StepResult } from "./runners/host.js";
import { scrub, type Secret } from "./secret.js";
import type { Step, ToolName } from "./step.js";
import { fsyncTree } from "./store/fsync.js";
import { PARTIAL_PREFIX } from "./store/ids.js";
import { promoteSet, resolveSet } from "./store/sets.js";
import { verifySet, type VerifyReport } from "./verify.js";

/**
 * The Dagger runner's glue: our own logic (probes, BGSAVE, sampling, bucket
 * reconcile, canary, seal, verify, drill checks), run as the project's CLI
 * (`backup-drill internal ...`) in a Node container while every tool step
 * runs in its own image. Each phase here calls the same engine functions the
 * host runner calls in-process; tool steps that an engine function would run
 * itself are *replayed*: the Dagger runner ran them already (same Step, same
 * argv) and hands their outcome over as StepRecords.
 *
 * Nothing here imports @dagger.io/dagger.
 */

/** What the Dagger runner observed when it ran one tool step. */
export type StepRecord = {
  id: string;
  service: ServiceName;
  argv: string[];
  exitCode: number;
  durationMs: number;
  /** Whole stdout of a captureStdout step. */
  stdout?: string;
  /** Why the step failed (the tool's stderr tail), when it did. */
  error?: string;
};

/**
 * A HostRunner that runs nothing: it hands back what the Dagger runner
 * recorded for the very same Step. A plan that asks for a step the Dagger
 * runner did not run, or with another argv, is an error — so the engine
 * function and the Dagger runner provably agree on every command line.
 */
export class ReplayRunner extends HostRunner {
  readonly #records: Map<string, StepRecord>;
  readonly #secrets: Secret[];

  constructor(records: StepRecord[], progress: Progress, secrets: SecretBag = {}) {
    super({ tools: {}, secrets, progress });
    this.#records = new Map(records.map((r) => [r.id, r]));
    this.#secrets = Object.values(secrets).filter((s): s is Secret => s !== undefined);
  }

  override binary(tool: ToolName): string {
    throw new OperationError(`${tool}: under Dagger every tool runs in its own image, not in the glue container`);
  }

  override async run(step: Step, _cwd: string): Promise<StepResult> {
    const rec = this.#records.get(step.id);
    if (!rec) throw new OperationError(`${step.id}: the Dagger runner did not run this step`);
    if (JSON.stringify(rec.argv) !== JSON.stringify(step.argv)) {
      throw new OperationError(`${step.id}: the Dagger runner ran ${JSON.stringify(rec.argv)}, the plan says ${JSON.stringify(step.argv)}`);
    }
    if (rec.error !== undefined || rec.exitCode !== 0) {
      const detail = scrub(rec.error ?? "", this.#secrets).trim();
      throw new OperationError(`${step.id}: ${step.argv[0]} exited with code ${rec.exitCode}${detail ? `: ${detail}` : ""}`);
    }
    return {
      id: step.id,
      service: step.service,
      argv: step.argv,
      exitCode: 0,
      durationMs: rec.durationMs,
      ...(step.captureStdout ? { stdout: rec.stdout ?? "" } : {}),
    };
  }
}

// ---------------------------------------------------------------------------
// Backup
// ---------------------------------------------------------------------------

/** What the snapshot holder serves: server facts and, per database, an exported snapshot with the counts read in it. */
export type PostgresSnapshotFacts = {
  serverVersion: string;
  serverVersionNum: number;
  serverMajor: number;
  systemIdentifier: string;
  databases: { name: string; snapshot: string; tables: TableCount[]; sizeBytes: number }[];
};

/** A glue answer over the wire: the facts, or the error a host run would have thrown. */
export type GlueAnswer<T> = { ok: true; value: T } | { ok: false; kind: BackupDrillError["kind"]; message: string };

export function glueError(err: unknown): GlueAnswer<never> {
  const kind = err instanceof BackupDrillError ? err.kind : "operation";
  return { ok: false, kind, message: err instanceof Error ? err.message : String(err) };
}

/**
 * Probe the PostgreSQL source, then hold one exported snapshot per database
 * (REPEATABLE READ, as backupPostgres does) and count every table in it.
 * pg_dump --snapshot=<id> in its own container then dumps exactly what was
 * counted, for as long as this process keeps the transactions open.
 */
export async function holdPostgresSnapshots(cfg: Config, progress: Progress): Promise<{ facts: PostgresSnapshotFacts; release(): Promise<void> }> {
  const src = cfg.postgres;
  if (!src) throw new UserError(`${cfg.source}: no postgres section`);
  const server = await probePostgres(src);
  const databases = src.databases ?? server.databases;
  for (const db of databases) {
    if (!server.databases.includes(db)) {
      throw new UserError(`postgres.databases: database "${db}" does not exist on ${src.host}:${src.port} (it has: ${server.databases.join(", ")})`);
    }
  }
  const held: HeldSnapshot[] = [];
  const release = async () => {
    await Promise.all(held.map((s) => s.close()));
  };
  try {
    const out: PostgresSnapshotFacts["databases"] = [];
    for (const db of databases) {
      const snap = await holdSnapshot(src, db);
      held.push(snap);
      const [tables, sizeBytes] = [await countTables(snap.client), await databaseSize(snap.client)];
      out.push({ name: db, snapshot: snap.id, tables, sizeBytes });
      progress.info(`postgres: ${db}: snapshot ${snap.id}, ${tables.length} tables, ${tables.reduce((a, t) => a + t.rows, 0)} rows`);
    }
    return {
      facts: { serverVersion: server.serverVersion, serverVersionNum: server.serverVersionNum, serverMajor: server.serverMajor, systemIdentifier: server.systemIdentifier, databases: out },
      release,
    };
  } catch (err) {
    await release();
    throw err;
  }
}

/**
 * Serve the snapshot facts on http://0.0.0.0:<port>/ and keep the snapshots
 * open until close() (the internal command closes on SIGTERM, when the
 * Dagger runner stops this service after every pg_dump). The port opens
 * first, so the service is healthy at once; a request waits for the facts
 * (or the error).
 */
export async function serveSnapshots(cfg: Config, port: number, progress: Progress, host = "0.0.0.0"): Promise<{ server: Server; close(): Promise<void> }> {
  const work = holdPostgresSnapshots(cfg, progress).then(
    (held) => ({ answer: { ok: true, value: held.facts } as GlueAnswer<PostgresSnapshotFacts>, release: held.release }),
    (err: unknown) => ({ answer: glueError(err) as GlueAnswer<PostgresSnapshotFacts>, release: async () => {} }),
  );
  const server = createServer((_req, res) => {
    void work.then(({ answer }) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolvePromise) => server.listen(port, host, resolvePromise));
  return {
    server,
    close: async () => {
      await (await work).release();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** GET a glue service's answer, retrying while it comes up. */
export async function fetchAnswer(url: string, attempts = 30): Promise<string> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const res = await fetch(url);
      if (res.ok) return await res.text();
      last = new Error(`HTTP ${res.status}`);
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new OperationError(`${url}: no answer: ${(last as Error).message}`);
}

/** Redis before its RDB is pulled: the same prepareRedis the host backup runs. */
export async function redisPrepare(cfg: Config, progress: Progress): Promise<PreparedRedis> {
  if (!cfg.redis) throw new UserError(`${cfg.source}: no redis section`);
  return prepareRedis(cfg.redis, progress);
}

export type MinioProbe = { endpoint: string; buckets: { name: string; mirror: boolean; objects: number }[] };

/**
 * Which buckets to back up, and for each whether `mc mirror` may run: only
 * when every key is a safe relative path (the same rule backupBucket
 * applies; otherwise the reconcile phase fetches the bucket object by object).
 */
export async function minioProbe(cfg: Config, progress: Progress): Promise<MinioProbe> {
  const src = cfg.minio;
  if (!src) throw new UserError(`${cfg.source}: no minio section`);
  const client = minioClient(src);
  const available = await listBucketNames(client).catch((err) => {
    throw minioError(src, "cannot list buckets", err);
  });
  const names = src.buckets ?? available;
  for (const b of names) {
    if (!available.includes(b)) {
      throw new UserError(`minio.buckets: bucket "${b}" does not exist at ${endpointLabel(src)} (it has: ${available.join(", ") || "none"})`);
    }
  }
  const buckets: MinioProbe["buckets"] = [];
  for (const name of names) {
    const listed = (await listObjects(client, name).catch((err) => {
      throw minioError(src, `cannot list ${name}`, err);
    })).filter((o) => !o.key.startsWith(CANARY_PREFIX));
    const unmappable = [...mapKeysToPaths(listed).values()].filter((p) => "problem" in p).length;
    buckets.push({ name, mirror: unmappable === 0, objects: listed.length });
    progress.info(`minio: ${name}: ${listed.length} objects${unmappable ? `, ${unmappable} not storable as paths (no mc mirror)` : ""}`);
  }
  return { endpoint: endpointLabel(src), buckets };
}

/**
 * After the mc mirror steps ran in their image: the host's backupMinio, with
 * the mirror steps replayed — listing, attributes, reconcile (objects that
 * changed or appeared are fetched, deleted ones dropped), listing file,
 * hashes and canary, all the same code.
 */
export async function minioBackup(cfg: Config, setDir: string, records: StepRecord[], progress: Progress): Promise<ServiceBackupResult<MinioFacts>> {
  const runner = new ReplayRunner(records, progress, secretBagFromConfig(cfg));
  try {
    return await backupMinio({ cfg, setDir, runner, progress, signal: new AbortController().signal });
  } finally {
    runner.dispose();
  }
}

export type SealInput = {
  /** The set id (from the start time) the staging directory is named after. */
  id: string;
  startedAt: string;
  finishedAt: string;
  services: Manifest["services"];
  steps: StepRecord[];
};

export type SealOutput = { id: string; manifestSha256: string; files: number; bytes: number };

/**
 * Seal `<root>/.partial-<id>/` exactly as backupSet does: every file hashed
 * (the services' files were written by their steps), manifest.json,
 * SHA256SUMS, manifest.sha256, fsync, rename to `<root>/<id>/`, latest.json.
 */
export async function sealSet(root: string, input: SealInput, now: Date): Promise<SealOutput> {
  const dir = join(root, `${PARTIAL_PREFIX}${input.id}`);
  const files = await completeFileList(dir, []);
  const manifest = buildManifest({
    id: input.id,
    runner: "dagger",
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    services: input.services,
    steps: input.steps,
    files,
  });
  const manifestSha256 = await writeManifest(dir, manifest);
  await fsyncTree(dir);
  await promoteSet(root, { id: input.id, dir }, manifestSha256, now);
  return { id: input.id, manifestSha256, files: files.length, bytes: manifest.totals.bytes };
}

// ---------------------------------------------------------------------------
// Verify and restore drill
// ---------------------------------------------------------------------------

/** What the Dagger runner needs from a set to plan its format checks and restores. */
export type SetPlan = {
  id: string;
  manifestSha256: string;
  postgres?: { serverVersion: string; databases: { name: string; dir: string }[]; globals?: string };
  redis?: { version: string; rdb: string };
  minio?: { buckets: string[] };
};

/** The set to verify or drill (default: the one latest.json names); its manifest must check out. */
export async function setPlan(root: string, id: string | undefined): Promise<SetPlan> {
  const resolved = await resolveSet(root, id);
  const set = await loadSet(resolved.id, resolved.dir);
  const { postgres, redis, minio } = set.manifest.services;
  return {
    id: set.id,
    manifestSha256: set.manifestSha256,
    ...(postgres ? { postgres: { serverVersion: postgres.serverVersion, databases: postgres.databases.map((d) => ({ name: d.name, dir: d.dir })), ...(postgres.globals ? { globals: postgres.globals } : {}) } } : {}),
    ...(redis ? { redis: { version: redis.version, rdb: redis.rdb } } : {}),
    ...(minio ? { minio: { buckets: minio.buckets.map((b) => b.name) } } : {}),
  };
}

/** verifySet with the format checks replayed from the steps the Dagger runner ran in their images. */
export async function verifyReplayed(root: string, id: string, records: StepRecord[], progress: Progress): Promise<VerifyReport> {
  const runner = new ReplayRunner(records, progress);
  try {
    return await verifySet(id, join(root, id), { tools: {}, progress, runner });
  } finally {
    runner.dispose();
  }
}

/** Drill targets as the glue reaches them (bound service aliases; secrets from the environment). */
export type GlueTargets = { postgres?: PostgresTarget; redis?: RedisTarget; minio?: MinioTarget };

/**
 * Apply the set's globals (roles) to the drill's PostgreSQL target before any
 * pg_restore runs: restorePostgres with no database selected does exactly that.
 */
export async function drillGlobals(root: string, id: string, target: PostgresTarget, progress: Progress): Promise<{ applied: boolean; ms: number }> {
  const set = await loadSet(id, join(root, id));
  const t0 = Date.now();
  const runner = new ReplayRunner([], progress, { "postgres.target.password": target.password });
  try {
    const r = await restorePostgres(set, target, runner, { databases: [], jobs: 1, globals: true, clean: true });
    return { applied: r.ownershipRestored, ms: Date.now() - t0 };
  } finally {
    runner.dispose();
  }
}

export type DrillFinishInput = {
  startedAt: string;
  /** Steps the Dagger runner ran against the targets: pg_restore, then pg_dump --schema-only. */
  steps: StepRecord[];
  jobs: number;
  sanityQueries: SanityQuery[];
  postgres?: { globalsApplied: boolean; globalsMs: number; version: string };
  /** A target that could not be started is the service's restore failing (e.g. Redis refusing the RDB). */
  startErrors: Partial<Record<ServiceName, string>>;
  redis?: { startMs: number; version: string };
  minio?: { version: string };
};

/**
 * The drill's checks on the targets the Dagger runner restored into, then
 * the summary written into the set — drillSet's second half, with the same
 * check functions; pg_restore and the schema dump are replayed from the
 * steps that ran in the postgres image.
 */
export async function drillFinish(root: string, id: string, targets: GlueTargets, input: DrillFinishInput, progress: Progress, now: () => Date): Promise<DrillSummary> {
  const set = await loadSet(id, join(root, id));
  const services = (["postgres", "redis", "minio"] as const).filter((s) => set.manifest.services[s] !== undefined);
  const missing = services.filter((s) => !targets[s] && !input.startErrors[s]);
  if (missing.length) throw new UserError(`no drill target for ${missing.join(", ")}`);
  const drills: Record<ServiceName, () => Promise<DrillService>> = {
    postgres: () => drillPostgresReplayed(set, targets.postgres!, input, progress),
    redis: async () => {
      const t1 = Date.now();
      const checks = await checkRedis(set, targets.redis!, { now: now() });
      return serviceResult(input.redis?.startMs ?? 0, t1, input.redis?.version ?? "unknown", checks);
    },
    minio: async () => {
      const t0 = Date.now();
      let restored;
      try {
        restored = await restoreMinio(set, targets.minio!, {}, (bucket, done, total) => progress.info(`drill minio: ${bucket}: ${done}/${total} objects`));
      } catch (err) {
        return restoreFailed("minio", err, Date.now() - t0);
      }
      const t1 = Date.now();
      return serviceResult(restored.restoreMs, t1, input.minio?.version ?? "unknown", await checkMinio(set, targets.minio!, {}));
    },
  };
  const settled = await Promise.allSettled(
    services.map((s) => (input.startErrors[s] !== undefined ? Promise.resolve(restoreFailed(s, new OperationError(input.startErrors[s]!), 0)) : drills[s]())),
  );
  const failed = settled.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
  const results = settled.map((r) => (r as PromiseFulfilledResult<DrillService>).value);
  const summary = buildDrillSummary({
    setId: id,
    manifestSha256: set.manifestSha256,
    runner: "dagger",
    startedAt: input.startedAt,
    finishedAt: now().toISOString(),
    services: services.map((name, i) => ({ name, result: results[i]! })),
  });
  await writeDrillSummary(set.dir, summary);
  return summary;
}

async function drillPostgresReplayed(set: LoadedSet, target: PostgresTarget, input: DrillFinishInput, progress: Progress): Promise<DrillService> {
  const runner = new ReplayRunner(input.steps, progress, { "postgres.target.password": target.password });
  const applied = input.postgres?.globalsApplied ?? false;
  // Wall time of the restore: the globals, then every pg_restore as the Dagger runner timed it.
  const restoreMs = (input.postgres?.globalsMs ?? 0) + input.steps.filter((s) => s.id.startsWith("postgres/restore/")).reduce((a, s) => a + s.durationMs, 0);
  try {
    try {
      await restorePostgres(set, target, runner, { jobs: input.jobs, globals: false, clean: true, noOwner: !applied });
    } catch (err) {
      return restoreFailed("postgres", err, restoreMs);
    }
    const t1 = Date.now();
    const checks = await checkPostgres(set, target, runner, { sanityQueries: input.sanityQueries, ownershipRestored: applied });
    return serviceResult(restoreMs, t1, input.postgres?.version ?? "unknown", checks);
  } finally {
    runner.dispose();
  }
}
