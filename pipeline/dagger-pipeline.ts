import { randomBytes } from "node:crypto";
import { dag, ReturnType, type Container, type Directory, type File, type Secret, type Service } from "@dagger.io/dagger";
import { checkPgDumpVersion } from "./backup/postgres.js";
import type { PreparedRedis } from "./backup/redis.js";
import { ConfigSchema, type MinioSource, type PostgresSource, type RedisSource, type SanityQuery, type ServiceName } from "./config.js";
import type { DrillFinishInput, GlueAnswer, MinioProbe, PostgresSnapshotFacts, SealInput, SealOutput, SetPlan, StepRecord } from "./dagger-glue.js";
import type { DrillSummary } from "./drill-summary.js";
import { BackupDrillError, IntegrityError, OperationError, UserError } from "./errors.js";
import type { Manifest, MinioFacts, PostgresFacts, RedisFacts } from "./manifest.js";
import {
  REDIS_RDB,
  planFormatChecks,
  planMinio,
  planPostgres,
  planPostgresRestore,
  planRedis,
  planSchemaDump,
  postgresImage,
  postgresLayout,
  redisImage,
} from "./plan.js";
import { drillHuman, verifyHuman } from "./report.js";
import { Secret as HostSecret } from "./secret.js";
import { CACHE_BUSTER_ENV, CLI, DaggerRunner, type Binding, type DaggerSecrets, type Toolbox } from "./runners/dagger.js";
import type { Step } from "./step.js";
import { PARTIAL_PREFIX, setIdFor } from "./store/ids.js";
import type { VerifyReport } from "./verify.js";

/**
 * The backup-drill graph under Dagger: what src/index.ts's functions call.
 * Tool steps come from plan.ts and run through DaggerRunner; glue phases run
 * as `backup-drill internal ...` in the Node container (dagger-glue.ts).
 */

/** Aliases the sources are bound under; plans are made with these as hosts. */
export const ALIAS = { postgres: "pg", redis: "redis", minio: "minio", snapshots: "pg-snapshots" } as const;
/** Aliases of the drill's throwaway targets. */
export const DRILL_ALIAS = { postgres: "drill-pg", redis: "drill-redis", minio: "drill-minio" } as const;
const SNAPSHOT_PORT = 8000;
const RUN_DIR = "/run/backup-drill";
const CONFIG_PATH = `${RUN_DIR}/config.json`;
const TARGETS_PATH = `${RUN_DIR}/targets.json`;
const STEPS_PATH = `${RUN_DIR}/steps.json`;
const INPUT_PATH = `${RUN_DIR}/input.json`;
const BACKUPS = "/backups";

/** Environment variable names the glue's config refers to (`env:NAME`); their values are secret variables. */
const SECRET_ENV = {
  pgPassword: "PGPASSWORD",
  redisPassword: "REDISCLI_AUTH",
  minioAccessKey: "BACKUP_DRILL_MINIO_ACCESS_KEY",
  minioSecretKey: "BACKUP_DRILL_MINIO_SECRET_KEY",
  drillPg: "DRILL_PG_PASSWORD",
  drillRedis: "DRILL_REDIS_PASSWORD",
  drillMinioAccess: "DRILL_MINIO_ACCESS_KEY",
  drillMinioSecret: "DRILL_MINIO_SECRET_KEY",
} as const;

export type PostgresInput = {
  service: Service;
  user: string;
  password?: Secret;
  databases?: string[];
  jobs: number;
  globals: boolean;
  image?: string;
};
export type RedisInput = {
  service: Service;
  username?: string;
  password?: Secret;
  sampleSize: number;
  samplePatterns: string[];
  bgsaveTimeout: string;
  image?: string;
};
export type MinioInput = {
  service: Service;
  accessKey: Secret;
  secretKey: Secret;
  buckets?: string[];
  canary: boolean;
  region: string;
};
export type BackupInputs = { postgres?: PostgresInput; redis?: RedisInput; minio?: MinioInput };

/** An error a glue phase reported: its kind survives, for the message and for tests. */
export class GlueError extends BackupDrillError {}

/** Run a glue phase in `ctr` (the CLI container) and return its answer, or throw what it reported. */
export async function glue<T>(ctr: Container, args: string[]): Promise<{ value: T; ctr: Container }> {
  const done = await ctr.withExec([...CLI, "internal", ...args]).sync();
  const out = await done.stdout();
  let answer: GlueAnswer<T>;
  try {
    answer = JSON.parse(out) as GlueAnswer<T>;
  } catch {
    throw new OperationError(`glue ${args[0]}: no answer (stdout: ${out.slice(0, 200)})`);
  }
  if (!answer.ok) throw new GlueError(answer.kind, answer.message);
  return { value: answer.value, ctr: done };
}

/** The port a bound service listens on, from its endpoint ("host:port"). */
export async function servicePort(service: Service, fallback: number): Promise<number> {
  const endpoint = await service.endpoint();
  const m = /:(\d+)$/.exec(endpoint);
  return m ? Number(m[1]) : fallback;
}

function bindIf(step: Step, binding: Binding): Binding | undefined {
  // A step that talks to the service (its argv names the alias, or it carries credentials) gets the binding.
  return step.argv.includes(binding.alias) || Object.keys(step.secretEnv).length > 0 ? binding : undefined;
}

function failed(r: StepRecord): Error {
  return new OperationError(`${r.id}: ${r.argv[0]} exited with code ${r.exitCode}${r.error ? `: ${r.error}` : ""}`);
}

/**
 * Stands in for a secret in a plan: plan.ts only asks whether a password is
 * set. Dagger holds the value; this process never has it (reveal throws).
 */
export const HELD_BY_DAGGER = new HostSecret(() => {
  throw new Error("this secret is held by Dagger and reaches steps only as a secret variable");
}, "dagger secret");

function randomSecret(name: string, runId: string, bytes = 18): { secret: Secret; value: string } {
  // Generated here for a throwaway server: never a user's secret. It crosses once, in setSecret.
  const value = randomBytes(bytes).toString("base64url");
  return { secret: dag.setSecret(`${name}-${runId}`, value), value };
}

// ---------------------------------------------------------------------------
// backup
// ---------------------------------------------------------------------------

type ServiceOutcome<F> = { dir: Directory; facts: F; steps: StepRecord[] };

type BackupContext = {
  tb: Toolbox;
  runner: DaggerRunner;
  /** The CLI container with the config file, the secrets and every source bound. */
  glueBase: Container;
  inputs: BackupInputs;
  ports: Partial<Record<ServiceName, number>>;
};

/** The glue's config file: the same schema as a user's, hosts are the bound aliases, secrets `env:` references. */
export function glueConfig(inputs: BackupInputs, ports: Partial<Record<ServiceName, number>>): Record<string, unknown> {
  const raw: Record<string, unknown> = { output: BACKUPS };
  const pg = inputs.postgres;
  if (pg) {
    raw.postgres = {
      host: ALIAS.postgres,
      port: ports.postgres,
      user: pg.user,
      ...(pg.password ? { password: `env:${SECRET_ENV.pgPassword}` } : {}),
      ...(pg.databases?.length ? { databases: pg.databases } : {}),
      jobs: pg.jobs,
      globals: pg.globals,
    };
  }
  const r = inputs.redis;
  if (r) {
    raw.redis = {
      host: ALIAS.redis,
      port: ports.redis,
      ...(r.username ? { username: r.username } : {}),
      ...(r.password ? { password: `env:${SECRET_ENV.redisPassword}` } : {}),
      bgsaveTimeout: r.bgsaveTimeout,
      sampleSize: r.sampleSize,
      samplePatterns: r.samplePatterns,
    };
  }
  const m = inputs.minio;
  if (m) {
    raw.minio = {
      endpoint: `http://${ALIAS.minio}:${ports.minio}`,
      accessKey: `env:${SECRET_ENV.minioAccessKey}`,
      secretKey: `env:${SECRET_ENV.minioSecretKey}`,
      region: m.region,
      ...(m.buckets?.length ? { buckets: m.buckets } : {}),
      canary: m.canary,
    };
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${issue.path.join(".")}: ${issue.message}`);
  }
  return raw;
}

/**
 * Back up every given source into one new set; returns the backups root
 * (`<id>/` and latest.json) for `export --path output/backups`.
 */
export async function daggerBackup(tb: Toolbox, inputs: BackupInputs, now: () => Date = () => new Date()): Promise<Directory> {
  const services = (["postgres", "redis", "minio"] as const).filter((s) => inputs[s] !== undefined);
  if (services.length === 0) throw new UserError("nothing to back up: pass --pg, --redis and/or --minio");
  const startedAt = now();
  const id = setIdFor(startedAt);

  const ports: Partial<Record<ServiceName, number>> = {};
  if (inputs.postgres) ports.postgres = await servicePort(inputs.postgres.service, 5432);
  if (inputs.redis) ports.redis = await servicePort(inputs.redis.service, 6379);
  if (inputs.minio) ports.minio = await servicePort(inputs.minio.service, 9000);
  const config = glueConfig(inputs, ports);

  const secrets: DaggerSecrets = {};
  let glueBase = tb.cli().withNewFile(CONFIG_PATH, `${JSON.stringify(config, null, 2)}\n`);
  if (inputs.postgres) {
    if (inputs.postgres.password) {
      secrets["postgres.password"] = { kind: "secret", secret: inputs.postgres.password };
      glueBase = glueBase.withSecretVariable(SECRET_ENV.pgPassword, inputs.postgres.password);
    }
    glueBase = glueBase.withServiceBinding(ALIAS.postgres, inputs.postgres.service);
  }
  if (inputs.redis) {
    if (inputs.redis.password) {
      secrets["redis.password"] = { kind: "secret", secret: inputs.redis.password };
      glueBase = glueBase.withSecretVariable(SECRET_ENV.redisPassword, inputs.redis.password);
    }
    glueBase = glueBase.withServiceBinding(ALIAS.redis, inputs.redis.service);
  }
  if (inputs.minio) {
    secrets["minio.mcHost"] = { kind: "mc-host", endpoint: `http://${ALIAS.minio}:${ports.minio}`, accessKey: inputs.minio.accessKey, secretKey: inputs.minio.secretKey };
    glueBase = glueBase
      .withSecretVariable(SECRET_ENV.minioAccessKey, inputs.minio.accessKey)
      .withSecretVariable(SECRET_ENV.minioSecretKey, inputs.minio.secretKey)
      .withServiceBinding(ALIAS.minio, inputs.minio.service);
  }
  const runner = new DaggerRunner(tb, secrets, { postgres: inputs.postgres?.image, redis: inputs.redis?.image });
  const ctx: BackupContext = { tb, runner, glueBase, inputs, ports };

  // Services side by side, as on the host.
  const [pg, redis, minio] = await Promise.all([
    inputs.postgres ? backupPostgres(ctx, inputs.postgres) : undefined,
    inputs.redis ? backupRedis(ctx, inputs.redis) : undefined,
    inputs.minio ? backupMinio(ctx, inputs.minio) : undefined,
  ]);

  let staged = dag.directory();
  for (const s of [pg, redis, minio]) if (s) staged = staged.withDirectory(".", s.dir);
  const seal: SealInput = {
    id,
    startedAt: startedAt.toISOString(),
    finishedAt: now().toISOString(),
    services: {
      ...(pg ? { postgres: pg.facts } : {}),
      ...(redis ? { redis: redis.facts } : {}),
      ...(minio ? { minio: minio.facts } : {}),
    } satisfies Manifest["services"],
    steps: [...(pg?.steps ?? []), ...(redis?.steps ?? []), ...(minio?.steps ?? [])],
  };
  const sealed = await glue<SealOutput>(
    tb
      .cli()
      .withMountedDirectory(BACKUPS, dag.directory().withDirectory(`${PARTIAL_PREFIX}${id}`, staged))
      .withWorkdir(BACKUPS)
      .withNewFile(INPUT_PATH, JSON.stringify(seal)),
    ["seal", "--output", ".", "--input", INPUT_PATH],
  );
  return sealed.ctr.directory(BACKUPS);
}

async function runAll(ctx: BackupContext, steps: Step[], set: Directory, binding: Binding, records: StepRecord[]): Promise<Directory> {
  let dir = set;
  for (const step of steps) {
    const r = await ctx.runner.run(step, dir, bindIf(step, binding));
    records.push(r.record);
    if (r.record.error !== undefined) throw failed(r.record);
    dir = r.set;
  }
  return dir;
}

/**
 * PostgreSQL: a glue service holds one exported snapshot per database and
 * serves the counts read in it; every pg_dump runs with --snapshot=<id>
 * while the service keeps those transactions open, so rows counted and rows
 * dumped are the same rows, as on the host. The service is stopped after.
 */
async function backupPostgres(ctx: BackupContext, inp: PostgresInput): Promise<ServiceOutcome<PostgresFacts>> {
  const holder = ctx.glueBase
    .withExposedPort(SNAPSHOT_PORT)
    .asService({ args: [...CLI, "internal", "pg-snapshots", "--port", String(SNAPSHOT_PORT), "--config", CONFIG_PATH] });
  const started = await holder.start();
  try {
    const { value: snap } = await glue<PostgresSnapshotFacts>(ctx.tb.cli().withServiceBinding(ALIAS.snapshots, started), [
      "fetch",
      `http://${ALIAS.snapshots}:${SNAPSHOT_PORT}/`,
    ]);
    const image = inp.image ?? postgresImage(snap.serverMajor);
    // The host checks its pg_dump the same way: `pg_dump --version`, at least the server's major.
    const versionOut = await dag.container().from(image).withEnvVariable(CACHE_BUSTER_ENV, ctx.tb.runId).withExec(["pg_dump", "--version"]).stdout();
    const pgDumpVersion = /(\d+\.\d+(?:\.\d+)?)/.exec(versionOut)?.[1];
    if (!pgDumpVersion) throw new OperationError(`${image}: pg_dump --version printed no version: ${versionOut.trim().slice(0, 200)}`);
    checkPgDumpVersion(pgDumpVersion, snap.serverVersion);

    const withPw: PostgresSource = {
      host: ALIAS.postgres,
      port: ctx.ports.postgres!,
      user: inp.user,
      password: inp.password ? HELD_BY_DAGGER : undefined,
      databases: inp.databases,
      jobs: inp.jobs,
      globals: inp.globals,
      sanityQueries: [],
    };
    const at = { host: ALIAS.postgres, port: ctx.ports.postgres! };
    const binding = { alias: ALIAS.postgres, service: inp.service };
    const facts: PostgresFacts = {
      serverVersion: snap.serverVersion,
      serverVersionNum: snap.serverVersionNum,
      systemIdentifier: snap.systemIdentifier,
      pgDumpVersion,
      databases: [],
    };
    const records: StepRecord[] = [];
    let dir = dag.directory();
    if (inp.globals) {
      const [globals] = planPostgres(withPw, { serverMajor: snap.serverMajor, databases: [] }, at);
      dir = await runAll(ctx, [globals!], dir, binding, records);
      facts.globals = globals!.outputs[0];
    }
    for (const db of snap.databases) {
      const steps = planPostgres({ ...withPw, globals: false }, { serverMajor: snap.serverMajor, databases: [db.name], snapshots: { [db.name]: db.snapshot } }, at);
      dir = await runAll(ctx, steps, dir, binding, records);
      const layout = postgresLayout(db.name);
      facts.databases.push({ name: db.name, dir: layout.dir, schemaFile: layout.schemaFile, sizeBytes: db.sizeBytes, tables: db.tables });
    }
    return { dir, facts, steps: records };
  } finally {
    await started.stop();
  }
}

/** Redis: BGSAVE, keyspace and sample as glue (prepareRedis), then redis-cli --rdb and redis-check-rdb in the redis image. */
async function backupRedis(ctx: BackupContext, inp: RedisInput): Promise<ServiceOutcome<RedisFacts>> {
  const { value: prepared } = await glue<PreparedRedis>(ctx.glueBase, ["redis-prepare", "--config", CONFIG_PATH]);
  const src: RedisSource = {
    host: ALIAS.redis,
    port: ctx.ports.redis!,
    username: inp.username,
    password: inp.password ? HELD_BY_DAGGER : undefined,
    bgsaveTimeoutMs: 0,
    sampleSize: inp.sampleSize,
    samplePatterns: inp.samplePatterns,
  };
  const records: StepRecord[] = [];
  const dir = await runAll(ctx, planRedis(src, { version: prepared.version }, { host: ALIAS.redis, port: ctx.ports.redis! }), dag.directory(), { alias: ALIAS.redis, service: inp.service }, records);
  return { dir, facts: { ...prepared, rdb: REDIS_RDB, rdbCheck: "ok" }, steps: records };
}

/**
 * MinIO: the glue lists the buckets and decides per bucket whether mc mirror
 * may run (every key a safe path); mc mirror runs in the mc image; then the
 * glue runs the host's backupMinio on the mirrored directory with the mirror
 * steps replayed: attributes, reconcile, listing, hashes, canary.
 */
async function backupMinio(ctx: BackupContext, inp: MinioInput): Promise<ServiceOutcome<MinioFacts>> {
  const { value: probe } = await glue<MinioProbe>(ctx.glueBase, ["minio-probe", "--config", CONFIG_PATH]);
  const src: MinioSource = {
    endpoint: `http://${ALIAS.minio}:${ctx.ports.minio}`,
    accessKey: HELD_BY_DAGGER,
    secretKey: HELD_BY_DAGGER,
    region: inp.region,
    buckets: inp.buckets,
    canary: inp.canary,
  };
  const records: StepRecord[] = [];
  let dir = dag.directory().withNewDirectory("minio");
  const binding = { alias: ALIAS.minio, service: inp.service };
  for (const bucket of probe.buckets.filter((b) => b.mirror)) {
    dir = await runAll(ctx, planMinio(src, { buckets: [bucket.name] }), dir, binding, records);
  }
  const { value, ctr } = await glue<{ facts: MinioFacts }>(
    ctx.glueBase.withMountedDirectory("/set", dir).withNewFile(STEPS_PATH, JSON.stringify(records)),
    ["minio-backup", "--config", CONFIG_PATH, "--set-dir", "/set", "--steps", STEPS_PATH],
  );
  return { dir: ctr.directory("/set"), facts: value.facts, steps: records };
}

// ---------------------------------------------------------------------------
// verify and restore drill
// ---------------------------------------------------------------------------

export type SetInputs = { backups: Directory; set?: string; config?: File; pgImage?: string; redisImage?: string };

function setGlue(tb: Toolbox, inp: SetInputs): Container {
  let ctr = tb.cli().withMountedDirectory(BACKUPS, inp.backups).withWorkdir(BACKUPS);
  if (inp.config) ctr = ctr.withFile(CONFIG_PATH, inp.config);
  return ctr;
}

/** The set's format checks (pg_restore --list, redis-check-rdb) in their images, then verifySet with them replayed. */
async function verifyIn(tb: Toolbox, inp: SetInputs, glueCtr: Container): Promise<{ plan: SetPlan; report: VerifyReport }> {
  const { value: plan } = await glue<SetPlan>(glueCtr, ["set-plan", "--output", BACKUPS, ...(inp.set ? ["--set", inp.set] : [])]);
  const runner = new DaggerRunner(tb, {}, { postgres: inp.pgImage, redis: inp.redisImage });
  const setDir = inp.backups.directory(plan.id);
  const records: StepRecord[] = [];
  for (const step of planFormatChecks(plan.postgres, plan.redis)) records.push((await runner.run(step, setDir)).record);
  const { value: report } = await glue<VerifyReport>(glueCtr.withNewFile(STEPS_PATH, JSON.stringify(records)), [
    "verify",
    "--output",
    BACKUPS,
    "--set",
    plan.id,
    "--steps",
    STEPS_PATH,
  ]);
  return { plan, report };
}

/** Verify a set; the human report, or an IntegrityError carrying it. */
export async function daggerVerify(tb: Toolbox, inp: SetInputs): Promise<string> {
  const { report } = await verifyIn(tb, inp, setGlue(tb, inp));
  const text = verifyHuman(report);
  if (!report.ok) throw new IntegrityError(text);
  return text;
}

/** A throwaway PostgreSQL: the official image's entry point, POSTGRES_PASSWORD as a secret. */
export function postgresServer(image: string, password: Secret, runId: string): Service {
  return dag
    .container()
    .from(image)
    .withSecretVariable("POSTGRES_PASSWORD", password)
    .withEnvVariable(CACHE_BUSTER_ENV, runId)
    .withExposedPort(5432)
    .asService({ useEntrypoint: true });
}

/** A throwaway Redis, optionally started on an RDB; its password only in a mounted config file. */
export function redisServer(image: string, conf: Secret, runId: string, rdb?: File): Service {
  let ctr = dag.container().from(image).withEnvVariable(CACHE_BUSTER_ENV, runId);
  if (rdb) ctr = ctr.withFile("/data/dump.rdb", rdb);
  return ctr
    .withMountedSecret("/run/secrets/redis.conf", conf, { owner: "redis", mode: 0o400 })
    .withExposedPort(6379)
    .asService({ useEntrypoint: true, args: ["redis-server", "/run/secrets/redis.conf"] });
}

export function redisConf(password: string): string {
  return ["port 6379", "dir /data", "dbfilename dump.rdb", `requirepass "${password}"`, 'save ""', "appendonly no", ""].join("\n");
}

/** A throwaway MinIO from the pinned build (or the override image). */
export function minioServer(tb: Toolbox, accessKey: Secret, secretKey: Secret): Service {
  return tb
    .minio()
    .withSecretVariable("MINIO_ROOT_USER", accessKey)
    .withSecretVariable("MINIO_ROOT_PASSWORD", secretKey)
    .withEnvVariable("MINIO_BROWSER", "off")
    .withEnvVariable("MINIO_UPDATE", "off")
    .withExposedPort(9000)
    .asService({ useEntrypoint: true, args: ["server", "/data", "--address", ":9000", "--quiet"] });
}

export type DrillOutcome = { backups: Directory; summary: DrillSummary };

/**
 * Restore a set into throwaway services and prove the data came back:
 * verify (format checks in their images), start the targets, apply the
 * globals (glue), pg_restore and pg_dump --schema-only in the postgres image,
 * then the checks and the summary (glue). Every target is stopped at the end.
 */
export async function daggerRestoreDrill(tb: Toolbox, inp: SetInputs & { sanityQueries?: SanityQuery[] }, now: () => Date = () => new Date()): Promise<DrillOutcome> {
  const startedAt = now();
  const base = setGlue(tb, inp);
  const { plan, report } = await verifyIn(tb, inp, base);
  if (!report.ok) {
    const names = report.findings.slice(0, 5).map((f) => `${f.path} (${f.verdict})`).join(", ");
    throw new IntegrityError(`set ${plan.id} failed verification, nothing restored: ${names}${report.findings.length > 5 ? ` and ${report.findings.length - 5} more` : ""}`);
  }
  const setDir = inp.backups.directory(plan.id);
  const runId = tb.runId;
  const major = plan.postgres ? Number(plan.postgres.serverVersion.split(".")[0]) : 0;
  const pgImage = inp.pgImage ?? (plan.postgres ? postgresImage(major) : "");
  const rdImage = inp.redisImage ?? (plan.redis ? redisImage(plan.redis.version) : "");

  const pgPw = plan.postgres ? randomSecret("drill-postgres-password", runId) : undefined;
  const redisPw = plan.redis ? randomSecret("drill-redis-password", runId) : undefined;
  const minioKeys = plan.minio
    ? { access: randomSecret("drill-minio-access-key", runId, 6), secret: randomSecret("drill-minio-secret-key", runId) }
    : undefined;

  const wanted: { service: ServiceName; svc: Service }[] = [];
  if (plan.postgres) wanted.push({ service: "postgres", svc: postgresServer(pgImage, pgPw!.secret, runId) });
  if (plan.redis) {
    const conf = dag.setSecret(`drill-redis-conf-${runId}`, redisConf(redisPw!.value));
    wanted.push({ service: "redis", svc: redisServer(rdImage, conf, runId, setDir.file(plan.redis.rdb)) });
  }
  if (plan.minio) wanted.push({ service: "minio", svc: minioServer(tb, minioKeys!.access.secret, minioKeys!.secret.secret) });

  const startErrors: Partial<Record<ServiceName, string>> = {};
  const running: Partial<Record<ServiceName, Service>> = {};
  const startMs: Partial<Record<ServiceName, number>> = {};
  await Promise.all(
    wanted.map(async (w) => {
      const t0 = Date.now();
      try {
        running[w.service] = await w.svc.start();
      } catch (err) {
        startErrors[w.service] = `the ${w.service} target did not start: ${(err as Error).message}`;
      }
      startMs[w.service] = Date.now() - t0;
    }),
  );
  try {
    const targets: Record<string, unknown> = {};
    let glueCtr = base;
    if (running.postgres) {
      targets.postgres = { host: DRILL_ALIAS.postgres, port: 5432, user: "postgres", password: `env:${SECRET_ENV.drillPg}` };
      glueCtr = glueCtr.withSecretVariable(SECRET_ENV.drillPg, pgPw!.secret).withServiceBinding(DRILL_ALIAS.postgres, running.postgres);
    }
    if (running.redis) {
      targets.redis = { host: DRILL_ALIAS.redis, port: 6379, password: `env:${SECRET_ENV.drillRedis}` };
      glueCtr = glueCtr.withSecretVariable(SECRET_ENV.drillRedis, redisPw!.secret).withServiceBinding(DRILL_ALIAS.redis, running.redis);
    }
    if (running.minio) {
      targets.minio = { endpoint: `http://${DRILL_ALIAS.minio}:9000`, accessKey: `env:${SECRET_ENV.drillMinioAccess}`, secretKey: `env:${SECRET_ENV.drillMinioSecret}` };
      glueCtr = glueCtr
        .withSecretVariable(SECRET_ENV.drillMinioAccess, minioKeys!.access.secret)
        .withSecretVariable(SECRET_ENV.drillMinioSecret, minioKeys!.secret.secret)
        .withServiceBinding(DRILL_ALIAS.minio, running.minio);
    }
    glueCtr = glueCtr.withNewFile(TARGETS_PATH, `${JSON.stringify(targets, null, 2)}\n`);
    const setArgs = ["--output", BACKUPS, "--set", plan.id, "--target-config", TARGETS_PATH, ...(inp.config ? ["--config", CONFIG_PATH] : [])];

    const steps: StepRecord[] = [];
    let pgInput: DrillFinishInput["postgres"];
    if (plan.postgres && running.postgres) {
      let globals = { applied: false, ms: 0 };
      if (plan.postgres.globals) ({ value: globals } = await glue<{ applied: boolean; ms: number }>(glueCtr, ["drill-globals", ...setArgs]));
      const runner = new DaggerRunner(tb, { "postgres.target.password": { kind: "secret", secret: pgPw!.secret } }, { postgres: inp.pgImage });
      const binding = { alias: DRILL_ALIAS.postgres, service: running.postgres };
      const at = { host: DRILL_ALIAS.postgres, port: 5432, user: "postgres" };
      let restored = true;
      for (const db of plan.postgres.databases) {
        const r = await runner.run(planPostgresRestore(db, major, at, { jobs: 2, clean: true, noOwner: !globals.applied }), setDir, binding);
        steps.push(r.record);
        if (r.record.error !== undefined) {
          restored = false; // the glue's replay turns this into the failed "restore" check
          break;
        }
      }
      if (restored) {
        for (const db of plan.postgres.databases) steps.push((await runner.run(planSchemaDump(db.name, major, at), setDir, binding)).record);
      }
      pgInput = { globalsApplied: globals.applied, globalsMs: globals.ms, version: pgImage };
    }
    const input: DrillFinishInput = {
      startedAt: startedAt.toISOString(),
      steps,
      jobs: 2,
      sanityQueries: inp.sanityQueries ?? [],
      ...(pgInput ? { postgres: pgInput } : {}),
      startErrors,
      ...(plan.redis ? { redis: { startMs: startMs.redis ?? 0, version: rdImage } } : {}),
      ...(plan.minio ? { minio: { version: tb.opts.minioImage ?? "minio (pinned build)" } } : {}),
    };
    const { value: summary, ctr } = await glue<DrillSummary>(glueCtr.withNewFile(INPUT_PATH, JSON.stringify(input)), ["drill-finish", ...setArgs, "--input", INPUT_PATH]);
    return { backups: ctr.directory(BACKUPS), summary };
  } finally {
    await Promise.all(Object.values(running).map((s) => s.stop().catch(() => undefined)));
  }
}

// ---------------------------------------------------------------------------
// freshness and sandbox
// ---------------------------------------------------------------------------

export type FreshnessInputs = { backups: Directory; config?: File; deep: boolean; now?: string };

/**
 * The freshness check as the CLI runs it (Nagios exit code kept, not
 * thrown): a directory with freshness.json (its `status` and `exitCode`),
 * freshness.md (for $GITHUB_STEP_SUMMARY) and freshness.prom.
 */
export async function daggerFreshness(tb: Toolbox, inp: FreshnessInputs): Promise<Directory> {
  let ctr = tb.cli().withMountedDirectory(BACKUPS, inp.backups).withWorkdir(BACKUPS).withDirectory("/out", dag.directory());
  if (inp.config) ctr = ctr.withFile(CONFIG_PATH, inp.config);
  const args = [
    ...CLI,
    "freshness",
    "--output",
    BACKUPS,
    "--json",
    "--markdown",
    "/out/freshness.md",
    "--prometheus",
    "/out/freshness.prom",
    ...(inp.config ? ["--config", CONFIG_PATH] : []),
    ...(inp.deep ? ["--deep"] : []),
    ...(inp.now ? ["--now", inp.now] : []),
  ];
  const done = await ctr.withExec(args, { expect: ReturnType.Any }).sync();
  const json = await done.stdout();
  return done.directory("/out").withNewFile("freshness.json", json);
}

export type SandboxInputs = { pgImage: string; redisImage: string };

/** The sandbox as Dagger services: throwaway servers, seeded, backed up, drilled. */
export async function daggerSandbox(
  tb: Toolbox,
  inp: SandboxInputs,
  dataset: { sanityQueries: SanityQuery[]; samplePatterns: string[] },
): Promise<DrillOutcome> {
  const runId = tb.runId;
  const pgPw = randomSecret("sandbox-postgres-password", runId);
  const redisPw = randomSecret("sandbox-redis-password", runId);
  const access = randomSecret("sandbox-minio-access-key", runId, 6);
  const secretKey = randomSecret("sandbox-minio-secret-key", runId);
  const conf = dag.setSecret(`sandbox-redis-conf-${runId}`, redisConf(redisPw.value));
  const started = await Promise.all([
    postgresServer(inp.pgImage, pgPw.secret, runId).start(),
    redisServer(inp.redisImage, conf, runId).start(),
    minioServer(tb, access.secret, secretKey.secret).start(),
  ]);
  const [pg, redis, minio] = started;
  try {
    const inputs: BackupInputs = {
      postgres: { service: pg, user: "postgres", password: pgPw.secret, jobs: 2, globals: true },
      redis: { service: redis, password: redisPw.secret, sampleSize: 1000, samplePatterns: dataset.samplePatterns, bgsaveTimeout: "60s" },
      minio: { service: minio, accessKey: access.secret, secretKey: secretKey.secret, canary: true, region: "us-east-1" },
    };
    const config = glueConfig(inputs, { postgres: 5432, redis: 6379, minio: 9000 });
    await glue(
      tb
        .cli()
        .withNewFile(CONFIG_PATH, JSON.stringify(config))
        .withSecretVariable(SECRET_ENV.pgPassword, pgPw.secret)
        .withSecretVariable(SECRET_ENV.redisPassword, redisPw.secret)
        .withSecretVariable(SECRET_ENV.minioAccessKey, access.secret)
        .withSecretVariable(SECRET_ENV.minioSecretKey, secretKey.secret)
        .withServiceBinding(ALIAS.postgres, pg)
        .withServiceBinding(ALIAS.redis, redis)
        .withServiceBinding(ALIAS.minio, minio),
      ["seed", "--config", CONFIG_PATH],
    );
    const backups = await daggerBackup(tb, inputs);
    const drilled = await daggerRestoreDrill(tb, { backups, pgImage: inp.pgImage, redisImage: inp.redisImage, sanityQueries: dataset.sanityQueries });
    if (!drilled.summary.ok) throw new IntegrityError(`sandbox drill failed:\n${drillHuman(drilled.summary)}`);
    return drilled;
  } finally {
    await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
  }
}
