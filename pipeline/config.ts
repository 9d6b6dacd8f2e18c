import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { COMPRESSION_PATTERN, DEFAULT_COMPRESSION } from "./backup/compression.js";
import { defaultJobs, MAX_DEFAULT_JOBS } from "./cores.js";
import { DURATION_PATTERN, parseDuration } from "./duration.js";
import { UserError, errorMessage } from "./errors.js";
import { Secret } from "./secret.js";
import { resolveOffsite, type Offsite } from "./offsite/config.js";
import { offsiteSchema } from "./offsite/schema.js";
import { DEFAULT_TIMEOUTS, type Timeouts } from "./timeouts.js";

export const DEFAULT_CONFIG_FILE = "backup-drill.config.json";
export const DEFAULT_OUTPUT = "output/backups";

// ---------------------------------------------------------------------------
// Schema (what the file holds: secrets are references, never values)
// ---------------------------------------------------------------------------

const secretRef = (what: string) =>
  z
    .string()
    .regex(/^(env|file):.+$/, {
      message: 'must be a reference "env:NAME" or "file:PATH", never the secret itself',
    })
    .meta({ secret: true, description: `${what}, as a reference: "env:NAME" or "file:PATH".` });

const duration = (what: string) =>
  z
    .string()
    .regex(DURATION_PATTERN, { message: 'must be a duration such as "90s", "26h", "3d" or "1h30m"' })
    .refine((d) => (parseDuration(d) ?? 0) > 0, { message: "must be longer than zero" })
    .meta({ description: what });

const host = z.string().min(1).meta({ description: "Host name or IP address." });
const port = (dflt: number) =>
  z.number().int().min(1).max(65535).default(dflt).meta({ description: "TCP port." });
const name = z.string().min(1);

export const SanityQuerySchema = z
  .strictObject({
    name: name.meta({ description: "Short name shown in the drill report." }),
    database: name.meta({ description: "Database the query runs in." }),
    sql: z.string().min(1).meta({ description: "A read-only query." }),
    expect: z
      .union([
        z.strictObject({ min: z.number() }),
        z.strictObject({ max: z.number() }),
        z.strictObject({ equals: z.union([z.number(), z.string(), z.boolean(), z.null()]) }),
        z.strictObject({ rows: z.array(z.array(z.unknown())) }),
      ])
      .meta({
        description:
          'Expectation: {"min": n} / {"max": n} / {"equals": v} compare the first column of the first row; {"rows": [[...]]} compares every row.',
      }),
  })
  .meta({ description: "A query run against the restored database in a drill." });

export const PostgresSchema = z
  .strictObject({
    host: host.default("127.0.0.1"),
    port: port(5432),
    user: name.default("postgres").meta({ description: "Role used to connect." }),
    password: secretRef("Password of the role").optional(),
    databases: z
      .array(name)
      .min(1)
      .optional()
      .meta({ description: "Databases to dump. Default: every database that accepts connections and is not a template." }),
    jobs: z
      .number()
      .int()
      .min(1)
      .max(64)
      .optional()
      .meta({ description: `pg_dump/pg_restore --jobs. Default: one per CPU available to backup-drill (its affinity mask and cgroup quota), at most ${MAX_DEFAULT_JOBS}.` }),
    compression: z
      .string()
      .regex(COMPRESSION_PATTERN, { message: "must be one of none, gzip[:1-9], lz4[:1-12], zstd[:1-22]" })
      .default(DEFAULT_COMPRESSION)
      .meta({
        description:
          "How pg_dump compresses the dump's data files: none, gzip[:1-9], lz4[:1-12] or zstd[:1-22] (lz4 and zstd need pg_dump 16 or newer). The default, gzip:1, dumps about twice as fast as pg_dump's own default (gzip level 6) for a set a few percent larger (README, Compression).",
      }),
    globals: z
      .boolean()
      .default(false)
      .meta({ description: "Also run pg_dumpall --globals-only (roles, tablespaces; needs a superuser)." }),
    sanityQueries: z.array(SanityQuerySchema).default([]),
  })
  .meta({ description: "PostgreSQL source. Omit the section to skip PostgreSQL." });

export const RedisSchema = z
  .strictObject({
    host: host.default("127.0.0.1"),
    port: port(6379),
    username: name.optional().meta({ description: "ACL user (default: the default user)." }),
    password: secretRef("Password (requirepass or the ACL user's)").optional(),
    bgsaveTimeout: duration(
      "How long the snapshot may take: the server's fork for redis-cli --rdb (a replication SYNC, the server's own BGSAVE) and the transfer. The name is kept from when a separate BGSAVE was waited for.",
    ).default("1h"),
    sampleSize: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(1000)
      .meta({ description: "Keys whose type and value digest are recorded for the drill to compare." }),
    samplePatterns: z
      .array(z.string().min(1))
      .default([])
      .meta({ description: "SCAN MATCH patterns: every matching key is recorded too." }),
  })
  .meta({ description: "Redis source. Omit the section to skip Redis." });

export const MinioSchema = z
  .strictObject({
    endpoint: z
      .url({ protocol: /^https?$/ })
      .default("http://127.0.0.1:9000")
      .meta({ description: "S3 endpoint URL, e.g. http://127.0.0.1:9000." }),
    accessKey: z.string().min(1).meta({ description: 'Access key: a literal or "env:NAME" / "file:PATH".' }),
    secretKey: secretRef("Secret key"),
    region: z.string().min(1).default("us-east-1"),
    buckets: z
      .array(name)
      .min(1)
      .optional()
      .meta({ description: "Buckets to mirror. Default: every bucket." }),
    canary: z
      .boolean()
      .default(true)
      .meta({ description: "Write, read back and delete a random object in each bucket to prove it works." }),
  })
  .meta({ description: "MinIO / S3 source. Omit the section to skip object storage." });

export const ToolsSchema = z
  .strictObject({
    pg_dump: z.string().min(1).optional(),
    pg_dumpall: z.string().min(1).optional(),
    pg_restore: z.string().min(1).optional(),
    psql: z.string().min(1).optional(),
    postgres_bin: z
      .string()
      .min(1)
      .optional()
      .meta({ description: "Directory holding initdb and postgres for throwaway drill servers." }),
    redis_cli: z.string().min(1).optional(),
    redis_server: z.string().min(1).optional(),
    redis_check_rdb: z.string().min(1).optional(),
    mc: z.string().min(1).optional(),
    minio: z.string().min(1).optional(),
  })
  .meta({ description: "Paths of external tools. Default: found on PATH." });

const FreshnessThresholdsSchema = z
  .strictObject({
    warnAfter: duration("WARNING once the newest good backup of the service is older than this.").optional(),
    criticalAfter: duration("CRITICAL once the newest good backup of the service is older than this.").optional(),
    minSizeBytes: z
      .number()
      .int()
      .min(0)
      .optional()
      .meta({ description: "A dump smaller than this (bytes under <service>/ in the set) is not a good backup." }),
  })
  .meta({ description: "Per-service overrides of the freshness thresholds." });

export const WebhookSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^(https?:\/\/|env:|file:).+/, { message: 'must be an http(s) URL, or a reference "env:NAME" / "file:PATH"' })
      .meta({ secret: true, description: 'Receives the JSON report (POST) when the status is WARNING or worse. A URL, or "env:NAME" / "file:PATH" when it holds a token.' }),
    timeoutMs: z.number().int().min(1).max(600_000).default(5000).meta({ description: "Give up on the webhook after this many milliseconds." }),
  })
  .meta({ description: "Webhook for freshness alerts (also --webhook or $BACKUP_DRILL_WEBHOOK_URL)." });

export const FreshnessSchema = z
  .strictObject({
    warnAfter: duration("Default for every service: WARNING once its newest good backup is older than this.").default("26h"),
    criticalAfter: duration("Default for every service: CRITICAL once its newest good backup is older than this.").default("50h"),
    minSizeBytes: z.number().int().min(0).default(1).meta({ description: "Default for every service: a smaller dump is not a good backup." }),
    drillMaxAge: z
      .union([duration("A set is proven only if a passing restore drill ran on it, or on a newer set, within this age."), z.literal("off")])
      .default("8d")
      .meta({ description: 'A set is proven only if a passing restore drill ran on it, or on a newer set, within this age; unproven is WARNING. "off" stops checking.' }),
    postgres: FreshnessThresholdsSchema.optional(),
    redis: FreshnessThresholdsSchema.optional(),
    minio: FreshnessThresholdsSchema.optional(),
    webhook: WebhookSchema.optional(),
  })
  .meta({ description: "Freshness policy: how old a backup may get before `backup-drill freshness` warns." });

/** What `backup` and `prune` apply when the config has no retention section: bounded by default. */
export const DEFAULT_RETENTION = { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 6, partialGrace: "24h" } as const;
export const DEFAULT_RETENTION_TEXT = "keep the last 3 sets, one a day for 7 days, one a week for 4 weeks, one a month for 6 months";

const keepCount = (what: string) => z.number().int().min(0).optional().meta({ description: what });

export const RetentionSchema = z
  .strictObject({
    keepLast: keepCount("Keep the newest n sets."),
    keepHourly: keepCount("Keep the newest set of each of the n most recent hours (UTC) that have sets."),
    keepDaily: keepCount("Keep the newest set of each of the n most recent days (UTC) that have sets."),
    keepWeekly: keepCount("Keep the newest set of each of the n most recent ISO weeks (UTC) that have sets."),
    keepMonthly: keepCount("Keep the newest set of each of the n most recent months (UTC) that have sets."),
    keepYearly: keepCount("Keep the newest set of each of the n most recent years (UTC) that have sets."),
    keepWithin: duration("Keep every set taken within this duration of the newest set.").optional(),
    partialGrace: duration("Remove a .partial-* directory only when it is older than this.").default("24h"),
  })
  .refine((r) => [r.keepLast, r.keepHourly, r.keepDaily, r.keepWeekly, r.keepMonthly, r.keepYearly].some((n) => (n ?? 0) > 0) || (r.keepWithin !== undefined && parseDuration(r.keepWithin)! > 0), {
    message: "empty policy: set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, keepWithin",
  })
  .meta({ description: "Retention (restic-style keep rules, OR'ed). `backup` applies it after each successful set; without a retention section the default policy applies." });

export const TimeoutsSchema = z
  .strictObject({
    connect: duration("Connecting to a server (TCP and authentication).").default(DEFAULT_TIMEOUTS.connect),
    redisCommand: duration("One Redis command.").default(DEFAULT_TIMEOUTS.redisCommand),
    pgQuery: duration("One PostgreSQL query (an exact count(*) of the largest table must fit).").default(DEFAULT_TIMEOUTS.pgQuery),
    s3Request: duration("One S3 request: no byte sent or received for this long ends it.").default(DEFAULT_TIMEOUTS.s3Request),
    stall: duration("A tool step (pg_dump, redis-cli, mc, ...) that writes no byte and does no I/O for this long is killed.").default(DEFAULT_TIMEOUTS.stall),
    restoreStall: duration("The same for pg_restore into a server, which may wait long on an index build.").default(DEFAULT_TIMEOUTS.restoreStall),
    phase: duration("A whole phase: one service's backup, drill or restore.").default(DEFAULT_TIMEOUTS.phase),
  })
  .meta({ description: "Deadlines: every server command, tool step and phase is bounded. The defaults suit a 100 GB database." });

export const ConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    output: z.string().min(1).default(DEFAULT_OUTPUT).meta({ description: "Root of the backup sets." }),
    postgres: PostgresSchema.optional(),
    redis: RedisSchema.optional(),
    minio: MinioSchema.optional(),
    tools: ToolsSchema.default({}),
    freshness: FreshnessSchema.optional(),
    retention: z
      .union([RetentionSchema, z.literal("off")])
      .optional()
      .meta({ description: `Retention. Without this section the default policy applies (${DEFAULT_RETENTION_TEXT}); "off" keeps every set.` }),
    offsite: offsiteSchema({ secretRef, duration, retention: RetentionSchema }).optional(),
    timeouts: TimeoutsSchema.default(TimeoutsSchema.parse({})),
  })
  .meta({ title: "backup-drill configuration" });

export type ConfigFile = z.infer<typeof ConfigSchema>;
export type SanityQuery = z.infer<typeof SanityQuerySchema>;
export type ToolPaths = z.infer<typeof ToolsSchema>;
export type FreshnessConfig = z.infer<typeof FreshnessSchema>;
export type RetentionConfig = z.infer<typeof RetentionSchema>;

function timeoutsMs(t: z.infer<typeof TimeoutsSchema>): Timeouts {
  const d = (s: string) => parseDuration(s)!;
  return {
    connectMs: d(t.connect),
    redisCommandMs: d(t.redisCommand),
    pgQueryMs: d(t.pgQuery),
    s3RequestMs: d(t.s3Request),
    stallMs: d(t.stall),
    restoreStallMs: d(t.restoreStall),
    phaseMs: d(t.phase),
  };
}

// ---------------------------------------------------------------------------
// Resolved config: what engines receive (secrets resolved, paths absolute)
// ---------------------------------------------------------------------------

export type PostgresSource = Omit<z.infer<typeof PostgresSchema>, "password" | "jobs"> & {
  password?: Secret;
  /** Resolved: the configured value, or defaultJobs(). */
  jobs: number;
};
export type RedisSource = Omit<z.infer<typeof RedisSchema>, "password" | "bgsaveTimeout"> & {
  password?: Secret;
  bgsaveTimeoutMs: number;
};
export type MinioSource = Omit<z.infer<typeof MinioSchema>, "accessKey" | "secretKey"> & {
  accessKey: Secret;
  secretKey: Secret;
};

export type Config = {
  /** Where the config came from (a file path, or "defaults"); for messages. */
  source: string;
  output: string;
  postgres?: PostgresSource;
  redis?: RedisSource;
  minio?: MinioSource;
  tools: ToolPaths;
  /** As in the file (durations unparsed; the webhook URL still a reference): freshness.ts and retention.ts interpret them. */
  freshness?: FreshnessConfig;
  /** The config's retention section, or "off"; undefined: the default policy (DEFAULT_RETENTION). */
  retention?: RetentionConfig | "off";
  /** Deadlines; undefined: the defaults. */
  timeouts?: Timeouts;
  /** Offsite S3 destinations (pipeline/offsite/). */
  offsite?: Offsite;
  /** The directory `file:` references in the config are relative to. */
  baseDir?: string;
};

export type ServiceName = "postgres" | "redis" | "minio";
export const SERVICES: readonly ServiceName[] = ["postgres", "redis", "minio"];

export function configuredServices(cfg: Config): ServiceName[] {
  return SERVICES.filter((s) => cfg[s] !== undefined);
}

export function secretsOf(cfg: Config): Secret[] {
  return [cfg.postgres?.password, cfg.redis?.password, cfg.minio?.accessKey, cfg.minio?.secretKey].filter(
    (s): s is Secret => s !== undefined,
  );
}

// ---------------------------------------------------------------------------
// Overrides: flags and environment variables
// ---------------------------------------------------------------------------

type OverrideSpec = { path: [string, string] | [string]; kind: "string" | "int" | "list"; env: string; flag: string };

/** Every scalar a flag or an environment variable may override. Flags win over env, env over the file. */
export const OVERRIDES: readonly OverrideSpec[] = [
  { path: ["output"], kind: "string", env: "BACKUP_DRILL_OUTPUT", flag: "output" },
  { path: ["postgres", "host"], kind: "string", env: "BACKUP_DRILL_PG_HOST", flag: "pg-host" },
  { path: ["postgres", "port"], kind: "int", env: "BACKUP_DRILL_PG_PORT", flag: "pg-port" },
  { path: ["postgres", "user"], kind: "string", env: "BACKUP_DRILL_PG_USER", flag: "pg-user" },
  { path: ["postgres", "password"], kind: "string", env: "BACKUP_DRILL_PG_PASSWORD", flag: "pg-password" },
  { path: ["postgres", "databases"], kind: "list", env: "BACKUP_DRILL_PG_DATABASES", flag: "pg-databases" },
  { path: ["redis", "host"], kind: "string", env: "BACKUP_DRILL_REDIS_HOST", flag: "redis-host" },
  { path: ["redis", "port"], kind: "int", env: "BACKUP_DRILL_REDIS_PORT", flag: "redis-port" },
  { path: ["redis", "username"], kind: "string", env: "BACKUP_DRILL_REDIS_USERNAME", flag: "redis-username" },
  { path: ["redis", "password"], kind: "string", env: "BACKUP_DRILL_REDIS_PASSWORD", flag: "redis-password" },
  { path: ["minio", "endpoint"], kind: "string", env: "BACKUP_DRILL_MINIO_ENDPOINT", flag: "minio-endpoint" },
  { path: ["minio", "accessKey"], kind: "string", env: "BACKUP_DRILL_MINIO_ACCESS_KEY", flag: "minio-access-key" },
  { path: ["minio", "secretKey"], kind: "string", env: "BACKUP_DRILL_MINIO_SECRET_KEY", flag: "minio-secret-key" },
  { path: ["minio", "buckets"], kind: "list", env: "BACKUP_DRILL_MINIO_BUCKETS", flag: "minio-buckets" },
];

export type LoadOptions = {
  /** --config; else $BACKUP_DRILL_CONFIG; else ./backup-drill.config.json when it exists. */
  configPath?: string;
  /** Parsed flags keyed by OVERRIDES[].flag (yargs camel-cases too; both are accepted). */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Resolve secret references now (default), so a missing one fails before
   * any work starts. Commands that never contact a service (verify) pass
   * false: their secrets resolve only if revealed.
   */
  resolveSecrets?: boolean;
};

function applyOverride(raw: Record<string, unknown>, spec: OverrideSpec, value: string, origin: string): void {
  let parsed: unknown = value;
  if (spec.kind === "int") {
    if (!/^\d+$/.test(value)) throw new UserError(`${origin}: expected an integer, got "${value}"`);
    parsed = Number(value);
  } else if (spec.kind === "list") {
    parsed = value
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean);
  }
  if (spec.path.length === 1) {
    raw[spec.path[0]] = parsed;
    return;
  }
  const [section, key] = spec.path;
  const current = raw[section];
  const obj = current && typeof current === "object" ? (current as Record<string, unknown>) : {};
  obj[key] = parsed;
  raw[section] = obj;
}

function flagValue(flags: Record<string, unknown>, flag: string): string | undefined {
  const camel = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const v = flags[flag] ?? flags[camel];
  if (v === undefined || v === null) return undefined;
  return String(v);
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

function formatPath(path: readonly PropertyKey[]): string {
  return path.length === 0
    ? "(top level)"
    : path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join("");
}

/** One line for the first zod issue: "<file>: <field>: <problem>". */
function describeIssue(source: string, error: z.ZodError): string {
  const issue = error.issues[0]!;
  let path = issue.path;
  let message = issue.message;
  if (issue.code === "unrecognized_keys") {
    path = [...issue.path, issue.keys[0]!];
    message = "unknown key";
  }
  return `${source}: ${formatPath(path)}: ${message}`;
}

export function resolveSecretRef(ref: string, field: string, env: NodeJS.ProcessEnv, cwd: string): Secret {
  if (ref.startsWith("env:")) {
    const name = ref.slice(4);
    const value = env[name];
    if (value === undefined || value === "") {
      throw new UserError(`${field}: environment variable ${name} is not set`);
    }
    return new Secret(value, ref);
  }
  if (ref.startsWith("file:")) {
    const path = resolve(cwd, ref.slice(5));
    let value: string;
    try {
      value = readFileSync(path, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new UserError(`${field}: cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    if (value === "") throw new UserError(`${field}: secret file ${path} is empty`);
    return new Secret(value, ref);
  }
  throw new UserError(`${field}: must be a reference "env:NAME" or "file:PATH"`);
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const flags = opts.flags ?? {};

  const explicit = opts.configPath ?? env.BACKUP_DRILL_CONFIG;
  const path = explicit ? resolve(cwd, explicit) : resolve(cwd, DEFAULT_CONFIG_FILE);
  // file: references in a config file are relative to the file; from flags or env, to the working directory.
  let base = cwd;
  let raw: Record<string, unknown> = {};
  let source = "defaults";
  if (explicit || existsSync(path)) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new UserError(`config ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new UserError(`config ${path}: not valid JSON: ${errorMessage(err)}`);
    }
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
      throw new UserError(`config ${path}: (top level): expected a JSON object`);
    }
    source = path;
    base = resolve(path, "..");
  }

  for (const spec of OVERRIDES) {
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== "") applyOverride(raw, spec, fromEnv, `$${spec.env}`);
  }
  for (const spec of OVERRIDES) {
    const fromFlag = flagValue(flags, spec.flag);
    if (fromFlag !== undefined) applyOverride(raw, spec, fromFlag, `--${spec.flag}`);
  }

  return resolveConfig(raw, source, base, env, opts.resolveSecrets ?? true, cwd);
}

/** Validate a raw config object and resolve its secret references (eagerly, or on first use). */
function resolveConfig(
  raw: Record<string, unknown>,
  source: string,
  base: string,
  env: NodeJS.ProcessEnv,
  eager: boolean,
  cwd: string,
): Config {
  const secret = (ref: string, field: string, literalOk = false): Secret => {
    if (literalOk && !/^(env|file):/.test(ref)) return new Secret(ref, "literal");
    return eager ? resolveSecretRef(ref, field, env, base) : new Secret(() => resolveSecretRef(ref, field, env, base).reveal(), ref);
  };

  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) throw new UserError(describeIssue(source === "defaults" ? "config" : source, parsed.error));
  const file = parsed.data;

  const cfg: Config = {
    source,
    output: resolve(cwd, file.output),
    tools: file.tools,
    baseDir: base,
    ...(file.retention !== undefined ? { retention: file.retention } : {}),
    timeouts: timeoutsMs(file.timeouts),
  };
  if (file.freshness) cfg.freshness = file.freshness;
  if (file.offsite) {
    const lazy = (ref: string, field: string) => new Secret(() => resolveSecretRef(ref, field, env, base).reveal(), ref);
    cfg.offsite = resolveOffsite(file.offsite, secret, lazy);
  }
  if (file.postgres) {
    const { password, jobs, ...rest } = file.postgres;
    cfg.postgres = { ...rest, jobs: jobs ?? defaultJobs(), password: password ? secret(password, "postgres.password") : undefined };
  }
  if (file.redis) {
    const { password, bgsaveTimeout, ...rest } = file.redis;
    cfg.redis = {
      ...rest,
      password: password ? secret(password, "redis.password") : undefined,
      bgsaveTimeoutMs: parseDuration(bgsaveTimeout)!,
    };
  }
  if (file.minio) {
    const { accessKey, secretKey, ...rest } = file.minio;
    cfg.minio = {
      ...rest,
      accessKey: secret(accessKey, "minio.accessKey", true),
      secretKey: secret(secretKey, "minio.secretKey"),
    };
  }
  return cfg;
}

/**
 * A file naming servers to restore or drill into: the same postgres / redis /
 * minio sections as a config file (secrets by reference), nothing else, and
 * no flag or environment overrides.
 */
export function loadTargetConfig(
  path: string | undefined,
  flags: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): Pick<Config, "postgres" | "redis" | "minio"> {
  let raw: Record<string, unknown> = {};
  let source = "target flags";
  let base = cwd;
  if (path !== undefined) {
    const full = resolve(cwd, path);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(full, "utf8"));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(`--target-config ${full}: ${code ? `cannot read: ${code}` : `not valid JSON: ${errorMessage(err)}`}`);
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new UserError(`--target-config ${full}: (top level): expected a JSON object`);
    const extra = Object.keys(parsed).filter((k) => !["postgres", "redis", "minio", "$schema"].includes(k));
    if (extra.length) throw new UserError(`--target-config ${full}: ${extra[0]}: unknown key (a target file holds postgres, redis and minio sections only)`);
    raw = parsed as Record<string, unknown>;
    source = `--target-config ${full}`;
    base = resolve(full, "..");
  }
  for (const spec of TARGET_OVERRIDES) {
    const v = flagValue(flags, spec.flag);
    if (v !== undefined) applyOverride(raw, spec, v, `--${spec.flag}`);
  }
  const cfg = resolveConfig(raw, source, base, env, true, cwd);
  return { postgres: cfg.postgres, redis: cfg.redis, minio: cfg.minio };
}

/** --target-pg-host and friends: the connection overrides, for a restore target (flags only, no env). */
export const TARGET_OVERRIDES: readonly OverrideSpec[] = OVERRIDES.filter(
  (o) => o.path.length === 2 && !["databases", "buckets"].includes(o.path[1]!),
).map((o) => ({ ...o, flag: `target-${o.flag}`, env: "" }));

/** Host and port equal, treating localhost and 127.0.0.1 alike. */
export function sameEndpoint(a: { host: string; port: number }, b: { host: string; port: number }): boolean {
  const norm = (h: string) => (h === "localhost" || h === "::1" || h === "[::1]" ? "127.0.0.1" : h.toLowerCase());
  return a.port === b.port && norm(a.host) === norm(b.host);
}

export function endpointOfUrl(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80 };
}

/** The config as safe-to-print data: secrets appear as their references. */
export function redactConfig(value: unknown): unknown {
  if (value instanceof Secret) return value.ref === "literal" ? "[redacted]" : value.ref;
  if (Array.isArray(value)) return value.map(redactConfig);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactConfig(v)]));
  }
  return value;
}
