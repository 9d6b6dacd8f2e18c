import { compressionArgs } from "./backup/compression.js";
import type { MinioSource, PostgresSource, RedisSource } from "./config.js";
import type { Endpoint, Step } from "./step.js";

/**
 * config + probed facts -> Steps. Pure: no I/O, no clock. The host runner
 * executes exactly these argv lists (on a host or in the Dagger toolbox).
 */

/** A name (database, bucket) as one safe path segment: [A-Za-z0-9_.-] kept, the rest %XX-encoded. */
export function pathSegment(name: string): string {
  const encoded = Array.from(new TextEncoder().encode(name), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9_.-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
  // "." and ".." are not names a directory may have.
  return encoded.replace(/^\.{1,2}$/, (dots) => "%2E".repeat(dots.length));
}

/** libpq conninfo value quoting: 'a b' with \ and ' escaped. */
function conninfoQuote(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

export type PostgresFacts = {
  serverMajor: number;
  /** The pg_dump in use: its compression flag depends on its major version. */
  pgDump: { version: string; major: number };
  databases: string[];
  /** Exported snapshot per database (host runner): counts and dump see the same data. */
  snapshots?: Record<string, string>;
};

export type PostgresDumpLayout = { database: string; dir: string; schemaFile: string };

export function postgresLayout(database: string): PostgresDumpLayout {
  const seg = pathSegment(database);
  return { database, dir: `postgres/${seg}`, schemaFile: `postgres/${seg}.schema.sql` };
}

export function planPostgres(src: PostgresSource, facts: PostgresFacts, at: Endpoint): Step[] {
  const conn = ["--host", at.host, "--port", String(at.port), "--username", src.user, "--no-password"];
  const secretEnv: Step["secretEnv"] = src.password ? { PGPASSWORD: "postgres.password" } : {};
  const env = { PGCONNECT_TIMEOUT: "10", PGAPPNAME: "backup-drill" };
  const waitsFor = `postgres at ${at.host}:${at.port}`;
  const steps: Step[] = [];
  if (src.globals) {
    steps.push({
      id: "postgres/globals",
      service: "postgres",
      argv: ["pg_dumpall", "--globals-only", ...conn, "--file", "postgres/globals.sql"],
      env,
      secretEnv,
      outputs: ["postgres/globals.sql"],
      waitsFor,
    });
  }
  for (const db of facts.databases) {
    const layout = postgresLayout(db);
    const snapshot = facts.snapshots?.[db];
    steps.push({
      id: `postgres/dump/${db}`,
      service: "postgres",
      argv: [
        "pg_dump",
        "--format=directory",
        `--jobs=${src.jobs}`,
        ...compressionArgs(src.compression, facts.pgDump),
        ...(snapshot ? [`--snapshot=${snapshot}`] : []),
        ...conn,
        "--file",
        layout.dir,
        "--dbname",
        `dbname=${conninfoQuote(db)}`,
      ],
      env,
      secretEnv,
      outputs: [layout.dir],
      waitsFor,
    });
    // The schema as pg_dump --schema-only writes it, from the same snapshot: the drill dumps the
    // restored database the same way, so both sides are produced alike (pg_restore --schema-only of
    // the dump would also keep entries such as MATERIALIZED VIEW DATA that a schema dump never has).
    steps.push({
      id: `postgres/schema/${db}`,
      service: "postgres",
      argv: [
        "pg_dump",
        "--schema-only",
        ...(snapshot ? [`--snapshot=${snapshot}`] : []),
        ...conn,
        "--file",
        layout.schemaFile,
        "--dbname",
        `dbname=${conninfoQuote(db)}`,
      ],
      env,
      secretEnv,
      outputs: [layout.schemaFile],
      waitsFor,
    });
  }
  return steps;
}

export type RedisFacts = { version: string };

export const REDIS_RDB = "redis/dump.rdb";

export function planRedis(src: RedisSource, facts: RedisFacts, at: Endpoint): Step[] {
  return [
    {
      id: "redis/rdb",
      service: "redis",
      argv: [
        "redis-cli",
        "-h",
        at.host,
        "-p",
        String(at.port),
        ...(src.username ? ["--user", src.username] : []),
        "--no-auth-warning",
        "--rdb",
        REDIS_RDB,
      ],
      env: {},
      secretEnv: src.password ? { REDISCLI_AUTH: "redis.password" } : {},
      outputs: [REDIS_RDB],
      waitsFor: `redis at ${at.host}:${at.port}`,
    },
    {
      id: "redis/check-rdb",
      service: "redis",
      argv: ["redis-check-rdb", REDIS_RDB],
      env: {},
      secretEnv: {},
      outputs: [],
    },
  ];
}

export type MinioFacts = { buckets: string[] };

/** The mc alias the steps use; MC_HOST_<alias> carries the endpoint and credentials. */
export const MC_ALIAS = "src";

export type BucketLayout = { bucket: string; dir: string; listing: string; unmapped: string; versions: string };

export function bucketLayout(bucket: string): BucketLayout {
  const seg = pathSegment(bucket);
  return {
    bucket,
    dir: `minio/${seg}`,
    listing: `minio/${seg}.objects.jsonl`,
    unmapped: `minio/${seg}.unmapped`,
    // Noncurrent versions of a versioned bucket: <versions>/<sha256(key)>/<n>, n counting from the oldest.
    versions: `minio/${seg}.versions`,
  };
}

export function planMinio(src: MinioSource, facts: MinioFacts): Step[] {
  const endpoint = new URL(src.endpoint);
  return facts.buckets.map((bucket) => {
    const layout = bucketLayout(bucket);
    return {
      id: `minio/mirror/${bucket}`,
      service: "minio" as const,
      argv: ["mc", "mirror", "--quiet", "--no-color", `${MC_ALIAS}/${bucket}`, layout.dir],
      env: {},
      secretEnv: { [`MC_HOST_${MC_ALIAS}`]: "minio.mcHost" as const },
      outputs: [layout.dir],
      waitsFor: `minio at ${endpoint.host}`,
    };
  });
}

/** Format checks verify runs on a sealed set: each dump's table of contents, the RDB's structure. */
export function planFormatChecks(
  postgres: { serverVersion: string; databases: { name: string; dir: string }[] } | undefined,
  redis: { version: string; rdb: string } | undefined,
): Step[] {
  const steps: Step[] = [];
  for (const db of postgres?.databases ?? []) {
    steps.push({
      id: `verify/pg_restore-list/${db.name}`,
      service: "postgres",
      argv: ["pg_restore", "--list", db.dir],
      env: {},
      secretEnv: {},
      outputs: [],
    });
  }
  if (redis) {
    steps.push({
      id: "verify/redis-check-rdb",
      service: "redis",
      argv: ["redis-check-rdb", redis.rdb],
      env: {},
      secretEnv: {},
      outputs: [],
    });
  }
  return steps;
}

// ---------------------------------------------------------------------------
// Restore: the same Steps for a drill's throwaway target and a real one
// ---------------------------------------------------------------------------

export type PostgresRestoreTarget = Endpoint & { user: string };

export type PostgresRestoreOptions = {
  jobs: number;
  /** Restore into this existing database instead of letting pg_restore --create the dumped one. */
  into?: string;
  /** Drop and recreate what exists (--clean --if-exists): drills, or a restore with --force. */
  clean: boolean;
  /** Roles the dump refers to are missing on the target (no globals): skip ownership and grants. */
  noOwner: boolean;
};

function pgConn(at: PostgresRestoreTarget): string[] {
  return ["--host", at.host, "--port", String(at.port), "--username", at.user, "--no-password"];
}

/**
 * pg_restore of one dump directory. With --create it recreates the database
 * as dumped (encoding, locale, database-level settings and grants),
 * connecting through template1; `into` restores into an existing database
 * instead (one that was there already, or one created under a new name).
 */
export function planPostgresRestore(
  db: { name: string; dir: string },
  serverMajor: number,
  at: PostgresRestoreTarget,
  opts: PostgresRestoreOptions,
): Step {
  return {
    id: `postgres/restore/${opts.into ?? db.name}`,
    service: "postgres",
    argv: [
      "pg_restore",
      "--exit-on-error",
      `--jobs=${opts.jobs}`,
      ...(opts.into ? [] : ["--create"]),
      ...(opts.clean ? ["--clean", "--if-exists"] : []),
      ...(opts.noOwner ? ["--no-owner", "--no-acl"] : []),
      ...pgConn(at),
      "--dbname",
      `dbname=${conninfoQuote(opts.into ?? "template1")}`,
      db.dir,
    ],
    env: { PGCONNECT_TIMEOUT: "10", PGAPPNAME: "backup-drill" },
    secretEnv: { PGPASSWORD: "postgres.target.password" },
    outputs: [],
    waitsFor: `postgres at ${at.host}:${at.port}`,
    waitsOnServerWork: true,
  };
}

/** pg_dump --schema-only of a restored database, to stdout: the drill's round-trip witness. */
export function planSchemaDump(database: string, serverMajor: number, at: PostgresRestoreTarget): Step {
  return {
    id: `postgres/schema-dump/${database}`,
    service: "postgres",
    argv: ["pg_dump", "--schema-only", ...pgConn(at), "--dbname", `dbname=${conninfoQuote(database)}`],
    env: { PGCONNECT_TIMEOUT: "10", PGAPPNAME: "backup-drill" },
    secretEnv: { PGPASSWORD: "postgres.target.password" },
    outputs: [],
    captureStdout: true,
    waitsFor: `postgres at ${at.host}:${at.port}`,
  };
}
