import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { connectPostgres } from "../../probes/postgres.js";
import { CARRIED_CONFIGS, getBucketConfig, listObjects, minioClient, minioError, normalizeConfigXml, versioningStatus, type MinioTarget } from "../../probes/minio.js";
import { connectRedis, functionLibraries, parseInfo, parseKeyspace, type RedisTarget } from "../../probes/redis.js";
import { endpointOfUrl, sameEndpoint, type Config, type ServiceName } from "../config.js";
import { bucketsToRestore, configsToRestore, selectedEntries } from "./minio.js";
import { databasesToRestore, restoredName, type PostgresTarget } from "./postgres.js";
import type { LoadedSet } from "./set.js";

/** What a restore was asked to restore. */
export type RestoreSelection = {
  services: ServiceName[];
  databases?: string[];
  renames: Record<string, string>;
  globals: boolean;
  redisDbs?: number[];
  keyPattern?: string;
  buckets?: string[];
  prefix?: string;
};

export type RestoreTargets = { postgres?: PostgresTarget; redis?: RedisTarget; minio?: MinioTarget };

/** What the target holds where the restore would write: found by looking, before anything is written. */
export type TargetInspection = {
  postgres?: {
    where: string;
    databases: { name: string; from: string; exists: boolean; userObjects: number; examples: string[] }[];
    /** Roles the set's globals would create, and which of them the target has already. */
    roles: { name: string; exists: boolean }[];
  };
  redis?: {
    where: string;
    dbs: { db: number; keys: number }[];
    /** The set's FUNCTION libraries (when this restore copies them) and whether the target has one of that name. */
    functions: { name: string; exists: boolean }[];
    /** Why the set's FUNCTION libraries are not copied (a selective restore), when they are not. */
    functionsSkipped?: string;
    /** Libraries the target has, whatever their name. */
    targetLibraries: number;
  };
  minio?: {
    where: string;
    buckets: {
      name: string;
      exists: boolean;
      objects: number;
      collisions: string[];
      /** The set's bucket is versioned: versions and delete markers to put back. */
      versions?: { versions: number; deleteMarkers: number };
      /** Configurations the restore puts on the bucket (versioning, object-lock, lifecycle). */
      configs: string[];
      /** What an existing bucket has that the restore would change or cannot give it. */
      conflicts: string[];
    }[];
  };
};

export type PlannedAction = {
  service: ServiceName;
  /** create: nothing there yet; restore: into something empty; overwrite: replaces what is there (needs --force); skip: in the set, left out by this restore. */
  kind: "create" | "restore" | "overwrite" | "skip";
  subject: string;
  detail: string;
};

export type RestorePlan = { actions: PlannedAction[]; refusals: string[] };

const USER_OBJECTS_SQL = `
  SELECT name FROM (
    SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    UNION ALL
    SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'schema ' || nspname FROM pg_namespace
      WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'
  ) o ORDER BY name`;

/** Role names a pg_dumpall --globals-only file creates. */
export function rolesInGlobals(sql: string): string[] {
  return [...sql.matchAll(/^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);/gm)].map((m) => m[1]!.replace(/^"|"$/g, "").replace(/""/g, '"'));
}

async function inspectPostgres(set: LoadedSet, target: PostgresTarget, sel: RestoreSelection): Promise<NonNullable<TargetInspection["postgres"]>> {
  const admin = await connectPostgres(target, "postgres");
  try {
    const existing = new Set((await admin.query<{ datname: string }>("SELECT datname FROM pg_database")).rows.map((r) => r.datname));
    const databases = [];
    for (const db of databasesToRestore(set, sel)) {
      const name = restoredName(db.name, sel);
      let userObjects = 0;
      let examples: string[] = [];
      if (existing.has(name)) {
        const c = await connectPostgres(target, name);
        try {
          const rows = (await c.query<{ name: string }>(USER_OBJECTS_SQL)).rows.map((r) => r.name);
          userObjects = rows.length;
          examples = rows.slice(0, 3);
        } finally {
          await c.end().catch(() => {});
        }
      }
      databases.push({ name, from: db.name, exists: existing.has(name), userObjects, examples });
    }
    const globalsFile = set.manifest.services.postgres?.globals;
    const wanted = globalsFile ? rolesInGlobals(await readFile(join(set.dir, globalsFile), "utf8")).filter((r) => r !== target.user) : [];
    const have = new Set((await admin.query<{ rolname: string }>("SELECT rolname FROM pg_roles")).rows.map((r) => r.rolname));
    return { where: `${target.host}:${target.port}`, databases, roles: wanted.map((name) => ({ name, exists: have.has(name) })) };
  } finally {
    await admin.end().catch(() => {});
  }
}

/** Why a restore does not copy the set's FUNCTION libraries, or undefined when it does. */
export function functionsSkipReason(sel: RestoreSelection): string | undefined {
  if (sel.keyPattern !== undefined) return "--key-pattern restores some keys only";
  if (sel.redisDbs !== undefined) return "--redis-db restores some dbs only";
  return undefined;
}

async function inspectRedis(set: LoadedSet, target: RedisTarget, sel: RestoreSelection): Promise<NonNullable<TargetInspection["redis"]>> {
  const c = await connectRedis(target);
  try {
    const ks = parseKeyspace(parseInfo(await c.info("keyspace")));
    const dbs = sel.redisDbs ?? (set.manifest.services.redis?.keyspace ?? []).map((k) => k.db);
    const libs = await functionLibraries(c);
    const have = new Set(libs.map((l) => l.name));
    const recorded = set.manifest.services.redis?.functions ?? [];
    const skipped = recorded.length > 0 ? functionsSkipReason(sel) : undefined;
    return {
      where: `${target.host}:${target.port}`,
      dbs: dbs.map((db) => ({ db, keys: ks.find((k) => k.db === db)?.keys ?? 0 })),
      functions: skipped ? [] : recorded.map((l) => ({ name: l.name, exists: have.has(l.name) })),
      ...(skipped ? { functionsSkipped: skipped } : {}),
      targetLibraries: libs.length,
    };
  } finally {
    c.disconnect();
  }
}

async function inspectMinio(set: LoadedSet, target: MinioTarget, sel: RestoreSelection): Promise<NonNullable<TargetInspection["minio"]>> {
  const client = minioClient(target);
  const buckets = [];
  for (const b of bucketsToRestore(set, sel)) {
    const exists = await client.bucketExists(b.name).catch((err) => {
      throw minioError(target, `cannot check bucket ${b.name}`, err);
    });
    const entries = await selectedEntries(set, b, sel);
    let objects = 0;
    let collisions: string[] = [];
    const conflicts: string[] = [];
    const configs = configsToRestore(b, sel);
    if (exists) {
      const live = await listObjects(client, b.name);
      objects = live.length;
      const liveKeys = new Set(live.map((o) => o.key));
      collisions = [...new Set(entries.filter((e) => liveKeys.has(e.key)).map((e) => e.key))];
      if (b.versioning && !(await versioningStatus(client, b.name))) conflicts.push("is not versioned: the restore turns versioning on, and it cannot be turned off again");
      if (b.configs?.objectLock && !(await getBucketConfig(client, b.name, "objectLock"))) conflicts.push("has no object lock, which can only be enabled when a bucket is created");
      for (const [which, body] of configs) {
        if (which === "versioning") continue;
        const have = await getBucketConfig(client, b.name, which);
        if (have !== undefined && normalizeConfigXml(have) !== normalizeConfigXml(body)) conflicts.push(`has a different ${CARRIED_CONFIGS[which]} configuration, which the restore would replace`);
      }
    }
    const versions = b.versions ? { versions: entries.filter((e) => !e.deleteMarker).length, deleteMarkers: entries.filter((e) => e.deleteMarker).length } : undefined;
    buckets.push({ name: b.name, exists, objects, collisions, ...(versions ? { versions } : {}), configs: configs.map(([w]) => CARRIED_CONFIGS[w]), conflicts });
  }
  return { where: target.endpoint, buckets };
}

/** Look at the target where the restore would write. Read-only. */
export async function inspectTargets(set: LoadedSet, targets: RestoreTargets, sel: RestoreSelection): Promise<TargetInspection> {
  return {
    ...(sel.services.includes("postgres") && targets.postgres ? { postgres: await inspectPostgres(set, targets.postgres, sel) } : {}),
    ...(sel.services.includes("redis") && targets.redis ? { redis: await inspectRedis(set, targets.redis, sel) } : {}),
    ...(sel.services.includes("minio") && targets.minio ? { minio: await inspectMinio(set, targets.minio, sel) } : {}),
  };
}

/**
 * Targets that are configured backup sources (same host:port; localhost and
 * 127.0.0.1 alike), as "postgres 127.0.0.1:5432". The drill refuses them
 * outright; a restore refuses them unless --force.
 */
export function targetsThatAreSources(cfg: Config, targets: RestoreTargets, services: ServiceName[] = ["postgres", "redis", "minio"]): string[] {
  const pairs: [ServiceName, { host: string; port: number } | undefined, { host: string; port: number } | undefined][] = [
    ["postgres", targets.postgres, cfg.postgres],
    ["redis", targets.redis, cfg.redis],
    ["minio", targets.minio && endpointOfUrl(targets.minio.endpoint), cfg.minio && endpointOfUrl(cfg.minio.endpoint)],
  ];
  return pairs
    .filter(([service, target, source]) => services.includes(service) && target && source && sameEndpoint(target, source))
    .map(([service, target]) => `${service} ${target!.host}:${target!.port}`);
}

function some(names: string[], total: number): string {
  return names.length === 0 ? "" : ` (${names.join(", ")}${total > names.length ? ", …" : ""})`;
}

/**
 * What the restore would do, and what it refuses to overwrite without
 * --force. Pure: inspection in, plan out.
 */
export function planRestore(inspection: TargetInspection, sel: RestoreSelection, force: boolean): RestorePlan {
  const actions: PlannedAction[] = [];
  const pg = inspection.postgres;
  if (pg) {
    if (sel.globals) {
      for (const r of pg.roles) {
        actions.push(
          r.exists
            ? { service: "postgres", kind: "overwrite", subject: `role ${r.name}`, detail: `role "${r.name}" exists on ${pg.where}; globals.sql would ALTER it` }
            : { service: "postgres", kind: "create", subject: `role ${r.name}`, detail: `create role "${r.name}" from globals.sql` },
        );
      }
    }
    for (const db of pg.databases) {
      const from = db.from === db.name ? "" : ` from the dump of "${db.from}"`;
      if (!db.exists) actions.push({ service: "postgres", kind: "create", subject: `database ${db.name}`, detail: `create database "${db.name}"${from} on ${pg.where}` });
      else if (db.userObjects === 0) actions.push({ service: "postgres", kind: "restore", subject: `database ${db.name}`, detail: `restore into the empty database "${db.name}"${from} on ${pg.where}` });
      else {
        actions.push({
          service: "postgres",
          kind: "overwrite",
          subject: `database ${db.name}`,
          detail: `postgres database "${db.name}" on ${pg.where} has ${db.userObjects} user object(s)${some(db.examples, db.userObjects)}`,
        });
      }
    }
  }
  const rd = inspection.redis;
  if (rd) {
    for (const d of rd.dbs) {
      const what = `${sel.keyPattern ? `keys matching ${JSON.stringify(sel.keyPattern)}` : "keys"} into db${d.db} on ${rd.where}`;
      actions.push(
        d.keys === 0
          ? { service: "redis", kind: "restore", subject: `db${d.db}`, detail: `copy ${what}` }
          : { service: "redis", kind: "overwrite", subject: `db${d.db}`, detail: `redis db${d.db} on ${rd.where} has ${d.keys} key(s)` },
      );
    }
    for (const f of rd.functions) {
      actions.push(
        f.exists
          ? { service: "redis", kind: "overwrite", subject: `function library ${f.name}`, detail: `redis function library ${f.name} exists on ${rd.where}` }
          : { service: "redis", kind: "create", subject: `function library ${f.name}`, detail: `load function library ${f.name} (FUNCTION RESTORE) on ${rd.where}` },
      );
    }
    if (rd.functionsSkipped) {
      actions.push({ service: "redis", kind: "skip", subject: "function libraries", detail: `function libraries not copied: ${rd.functionsSkipped}` });
    }
  }
  const mn = inspection.minio;
  if (mn) {
    for (const b of mn.buckets) {
      const scope = sel.prefix ? ` under ${JSON.stringify(sel.prefix)}` : "";
      const what = b.versions ? `${b.versions.versions} versions and ${b.versions.deleteMarkers} delete markers${scope}, oldest first` : `objects${scope}`;
      const configs = b.configs.length ? `; then its ${b.configs.join(", ")} configuration` : "";
      if (!b.exists) actions.push({ service: "minio", kind: "create", subject: `bucket ${b.name}`, detail: `create bucket ${b.name} and put its ${what}${configs}` });
      else if (b.collisions.length === 0 && b.conflicts.length === 0) {
        actions.push({ service: "minio", kind: "restore", subject: `bucket ${b.name}`, detail: `put ${what} into ${b.name} (${b.objects} objects there now, none at the set's keys)${configs}` });
      }
      if (b.exists && b.collisions.length > 0) {
        actions.push({
          service: "minio",
          kind: "overwrite",
          subject: `bucket ${b.name}`,
          detail: `minio bucket ${b.name} has ${b.collisions.length} object(s) at keys the set would write${some(b.collisions.slice(0, 3), b.collisions.length)}`,
        });
      }
      for (const c of b.exists ? b.conflicts : []) actions.push({ service: "minio", kind: "overwrite", subject: `bucket ${b.name}`, detail: `minio bucket ${b.name} ${c}` });
    }
  }
  const refusals = force ? [] : actions.filter((a) => a.kind === "overwrite").map((a) => a.detail);
  return { actions, refusals };
}

