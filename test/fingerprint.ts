/**
 * Independent fingerprints of what a server holds, to compare a source with
 * a restored target without trusting any of backup-drill's own checks.
 */
import type * as Minio from "minio";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { connectPostgres, quoteIdent, type PgTarget } from "../probes/postgres.js";
import { listObjects, objectAttributes } from "../probes/minio.js";
import type { RedisTarget } from "../probes/redis.js";

/** Per user table: exact row count and md5 of every row's text, in a stable order. */
export async function pgFingerprint(t: PgTarget, db: string): Promise<Record<string, { rows: number; md5: string }>> {
  const c = await connectPostgres(t, db);
  try {
    const tables = await c.query<{ s: string; n: string }>(
      `SELECT n.nspname AS s, c.relname AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2`,
    );
    const out: Record<string, { rows: number; md5: string }> = {};
    for (const { s, n } of tables.rows) {
      const r = await c.query<{ rows: string; md5: string | null }>(
        `SELECT count(*)::bigint AS rows, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS md5 FROM ${quoteIdent(s)}.${quoteIdent(n)} t`,
      );
      out[`${s}.${n}`] = { rows: Number(r.rows[0]!.rows), md5: r.rows[0]!.md5 ?? "" };
    }
    return out;
  } finally {
    await c.end();
  }
}

/**
 * Every key of a db: type, value and TTL. Values are fetched type by type
 * with plain commands on a connection of our own and kept as canonical text
 * (JSON of base64 parts; sets and hashes sorted, since their order is the server's
 * own): nothing here shares code with backup-drill's key digests, so a broken
 * digest cannot make two different servers look the same. A TTL ticks down
 * between two reads, so it is kept as the moment the key expires, to 10 s:
 * compare with sameRedis(), which allows one step of that rounding.
 */
export type RedisPrint = Record<string, { type: string; value: string; expiresAt: "never" | number }>;

async function redisClient(t: RedisTarget, db: number): Promise<Redis> {
  const c = new Redis({ host: t.host, port: t.port, username: t.username, password: t.password?.reveal(), db, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  c.on("error", () => {}); // a failed connect rejects below; the event would only be logged
  await c.connect();
  return c;
}

const b64 = (x: Buffer) => x.toString("base64");
/** [a, b, c, d] -> [[a, b], [c, d]], base64 */
function pairs(flat: Buffer[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([b64(flat[i]!), b64(flat[i + 1]!)]);
  return out;
}
const byFirst = (a: [string, string], b: [string, string]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** A key's value as canonical text; throws on a type it does not know rather than calling it equal. */
export async function redisValue(c: Redis, key: Buffer, type: string): Promise<string> {
  switch (type) {
    case "string":
      return JSON.stringify(b64((await c.getBuffer(key)) ?? Buffer.alloc(0)));
    case "list":
      return JSON.stringify((await c.lrangeBuffer(key, 0, -1)).map(b64));
    case "set":
      return JSON.stringify((await c.smembersBuffer(key)).map(b64).sort());
    case "zset":
      // Members in score order, ties by member: the order is part of the value. Scores as the server prints them.
      return JSON.stringify(pairs((await c.callBuffer("ZRANGE", key, "0", "-1", "WITHSCORES")) as Buffer[]));
    case "hash":
      return JSON.stringify(pairs((await c.callBuffer("HGETALL", key)) as Buffer[]).sort(byFirst));
    case "stream": {
      const entries = (await c.callBuffer("XRANGE", key, "-", "+")) as [Buffer, Buffer[]][];
      return JSON.stringify(entries.map(([id, fields]) => [b64(id), fields.map(b64)]));
    }
    default:
      throw new Error(`redisFingerprint: key ${JSON.stringify(key.toString())} has type ${type}, which it cannot compare`);
  }
}

export async function redisFingerprint(t: RedisTarget, db: number): Promise<RedisPrint> {
  const c = await redisClient(t, db);
  try {
    const out: RedisPrint = {};
    let cursor = "0";
    do {
      const [next, keys] = (await c.callBuffer("SCAN", cursor, "COUNT", "500")) as [Buffer, Buffer[]];
      cursor = next.toString();
      for (const k of keys) {
        const type = await c.type(k);
        if (type === "none") continue; // expired since the SCAN
        const value = await redisValue(c, k, type);
        const ttlMs = await c.pttl(k);
        if (ttlMs === -2) continue;
        out[k.toString("base64")] = { type, value, expiresAt: ttlMs < 0 ? "never" : Math.round((Date.now() + ttlMs) / 10_000) };
      }
    } while (cursor !== "0");
    return out;
  } finally {
    c.disconnect();
  }
}

/** Every object of a bucket (optionally under a prefix): sha256 of its bytes and its attributes. */
export async function minioFingerprint(client: Minio.Client, bucket: string, prefix = ""): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const o of await listObjects(client, bucket)) {
    if (!o.key.startsWith(prefix) || o.key.startsWith(".backup-drill-canary/")) continue;
    const h = createHash("sha256");
    for await (const chunk of await client.getObject(bucket, o.key)) h.update(chunk as Buffer);
    const { etag: _e, lastModified: _l, ...attrs } = await objectAttributes(client, bucket, o.key);
    out[o.key] = { sha256: h.digest("hex"), ...attrs };
  }
  return out;
}

/** A value for a failure message: base64 parts shown as text where they are text, cut to 60 characters. */
function preview(value: string): string {
  const text = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(text);
    if (typeof x !== "string") return x;
    const b = Buffer.from(x, "base64");
    return Buffer.from(b.toString("utf8"), "utf8").equals(b) ? b.toString("utf8") : `base64:${x}`;
  };
  const v = JSON.stringify(text(JSON.parse(value)));
  return v.length > 60 ? `${v.slice(0, 57)}...` : v;
}

/** Same keys, types and values; expiry moments within one 10 s step of each other. */
export function sameRedis(a: RedisPrint, b: RedisPrint): { ok: boolean; differences: string[] } {
  const differences: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[k];
    const y = b[k];
    const name = Buffer.from(k, "base64").toString("utf8");
    if (!x || !y) differences.push(`${name}: only on ${x ? "the first" : "the second"}`);
    else if (x.type !== y.type) differences.push(`${name}: type ${x.type} vs ${y.type}`);
    else if (x.value !== y.value) differences.push(`${name}: ${x.type} value differs: ${preview(x.value)} vs ${preview(y.value)}`);
    else if (x.expiresAt === "never" || y.expiresAt === "never" ? x.expiresAt !== y.expiresAt : Math.abs(x.expiresAt - y.expiresAt) > 1) {
      differences.push(`${name}: expires ${x.expiresAt} vs ${y.expiresAt}`);
    }
  }
  return { ok: differences.length === 0, differences };
}

// ---------------------------------------------------------------------------
// Beyond rows, keys and current objects: materialized views, large objects,
// Redis functions and consumer groups, object versions and bucket settings.
// Plain drivers, SQL, Redis commands and the mc CLI only: no product code.
// ---------------------------------------------------------------------------

type PgLogin = { host: string; port: number; user: string; password?: { reveal(): string } };

async function pgQuery<R extends pg.QueryResultRow>(t: PgLogin, db: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ host: t.host, port: t.port, user: t.user, password: t.password?.reveal(), database: db });
  await c.connect();
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** Per materialized view: populated or not and, when populated, its row count and the md5 of its rows. */
export async function pgMatviewFingerprint(t: PgLogin, db: string): Promise<Record<string, { populated: boolean; rows?: number; md5?: string }>> {
  const views = await pgQuery<{ s: string; n: string; populated: boolean }>(
    t,
    db,
    "SELECT schemaname AS s, matviewname AS n, ispopulated AS populated FROM pg_matviews ORDER BY 1, 2",
  );
  const out: Record<string, { populated: boolean; rows?: number; md5?: string }> = {};
  for (const v of views) {
    const name = `"${v.s.replace(/"/g, '""')}"."${v.n.replace(/"/g, '""')}"`;
    if (!v.populated) {
      out[`${v.s}.${v.n}`] = { populated: false };
      continue;
    }
    const [r] = await pgQuery<{ rows: string; md5: string | null }>(t, db, `SELECT count(*) AS rows, md5(string_agg(v::text, E'\\n' ORDER BY v::text)) AS md5 FROM ${name} v`);
    out[`${v.s}.${v.n}`] = { populated: true, rows: Number(r!.rows), md5: r!.md5 ?? "" };
  }
  return out;
}

/** Every large object by oid: its size and the md5 of its bytes. */
export async function pgLargeObjectFingerprint(t: PgLogin, db: string): Promise<Record<string, { size: number; md5: string }>> {
  const rows = await pgQuery<{ oid: string; size: string; md5: string }>(
    t,
    db,
    "SELECT oid::text AS oid, octet_length(lo_get(oid)) AS size, md5(lo_get(oid)) AS md5 FROM pg_largeobject_metadata ORDER BY oid",
  );
  return Object.fromEntries(rows.map((r) => [r.oid, { size: Number(r.size), md5: r.md5 }]));
}

async function plainRedis(t: RedisTarget, db = 0): Promise<Redis> {
  const c = new Redis({ host: t.host, port: t.port, username: t.username, password: t.password?.reveal(), db, lazyConnect: true, maxRetriesPerRequest: 1 });
  await c.connect();
  return c;
}

/** FUNCTION LIST WITHCODE as it comes, libraries sorted by name. */
export async function redisFunctionsFingerprint(t: RedisTarget): Promise<unknown[]> {
  const c = await plainRedis(t);
  try {
    const libs = (await c.call("FUNCTION", "LIST", "WITHCODE")) as unknown[][];
    // The server keeps a library's functions in a hash table: their order is not data.
    const sortFunctions = (lib: unknown[]) => lib.map((v, i) => (lib[i - 1] === "functions" ? [...(v as unknown[][])].sort((a, b) => String(a[1]).localeCompare(String(b[1]))) : v));
    return libs.map(sortFunctions).sort((a, b) => String(a[1]).localeCompare(String(b[1])));
  } finally {
    c.disconnect();
  }
}

/** Every stream's consumer groups with their consumers and pending entries (XINFO STREAM FULL), by key. */
export async function redisStreamGroupsFingerprint(t: RedisTarget, db: number): Promise<Record<string, unknown>> {
  const c = await plainRedis(t, db);
  try {
    const out: Record<string, unknown> = {};
    const keys = (await c.call("KEYS", "*")) as string[];
    for (const k of keys.sort()) {
      if ((await c.type(k)) !== "stream") continue;
      const full = (await c.call("XINFO", "STREAM", k, "FULL")) as unknown[];
      const groups = full[full.indexOf("groups") + 1] as unknown[][];
      // seen-time and active-time of consumers are wall-clock moments of the server: not data.
      out[k] = groups.map((g) => {
        const m = Object.fromEntries(g.flatMap((v, i) => (i % 2 === 0 ? [[String(v), g[i + 1]]] : [])));
        const consumers = (m.consumers as unknown[][]).map((cons) => {
          const cm = Object.fromEntries(cons.flatMap((v, i) => (i % 2 === 0 ? [[String(v), cons[i + 1]]] : [])));
          return { name: cm.name, pending: cm["pel-count"], entries: (cm.pending as unknown[][]).map((p) => [p[0], p[3]]) };
        });
        return { name: m.name, lastDelivered: m["last-delivered-id"], entriesRead: m["entries-read"], pending: m["pel-count"], consumers };
      });
    }
    return out;
  } finally {
    c.disconnect();
  }
}

type MinioLogin = { endpoint: string; accessKey: { reveal(): string }; secretKey: { reveal(): string } };

/** Run mc against one server (alias "fp"), its JSON lines parsed. */
function mcJson(s: MinioLogin, args: string[]): Record<string, unknown>[] {
  const url = new URL(s.endpoint);
  const configDir = mkdtempSync(join(tmpdir(), "fingerprint-mc-"));
  try {
    const out = execFileSync("mc", ["--json", ...args], {
      env: { ...process.env, MC_CONFIG_DIR: configDir, MC_HOST_fp: `${url.protocol}//${s.accessKey.reveal()}:${s.secretKey.reveal()}@${url.host}` },
      encoding: "utf8",
    });
    return out.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
}

/**
 * Every key's history, oldest first, as mc lists it: per version a delete
 * marker, or its size, sha256, content type, user metadata and tags (read
 * with minio-js by version ID). Version IDs are left out: no restore keeps them.
 */
export async function minioVersionsFingerprint(s: MinioLogin, client: Minio.Client, bucket: string): Promise<Record<string, unknown[]>> {
  const listed = mcJson(s, ["ls", "--versions", "--recursive", `fp/${bucket}`]).filter((v) => !String(v.key).startsWith(".backup-drill-canary/"));
  const out: Record<string, unknown[]> = {};
  for (const v of listed) {
    const key = String(v.key);
    const ordinal = Number(v.versionOrdinal);
    let entry: unknown;
    if (v.isDeleteMarker) entry = { ordinal, deleteMarker: true };
    else {
      const versionId = String(v.versionId);
      const h = createHash("sha256");
      for await (const chunk of await client.getObject(bucket, key, { versionId })) h.update(chunk as Buffer);
      const stat = await client.statObject(bucket, key, { versionId });
      const tags = await client.getObjectTagging(bucket, key, { versionId });
      const meta = Object.fromEntries(Object.entries(stat.metaData as Record<string, string>).filter(([k]) => k !== "last-modified"));
      entry = { ordinal, size: stat.size, sha256: h.digest("hex"), meta, tags: (tags as unknown as { Key: string; Value: string }[]).map((x) => `${x.Key}=${x.Value}`).sort() };
    }
    (out[key] ??= []).push(entry);
  }
  for (const k of Object.keys(out)) out[k]!.sort((a, b) => (a as { ordinal: number }).ordinal - (b as { ordinal: number }).ordinal);
  return out;
}

/** A bucket's versioning state, lifecycle rules and default retention, as mc reports them. */
export function minioBucketSettingsFingerprint(s: MinioLogin, bucket: string): Record<string, unknown> {
  const versioning = mcJson(s, ["version", "info", `fp/${bucket}`])[0]?.versioning as { status?: string } | undefined;
  let lifecycle: unknown = null;
  try {
    const exported = mcJson(s, ["ilm", "rule", "export", `fp/${bucket}`])[0] as { config?: { Rules?: unknown[] } } | undefined;
    lifecycle = exported?.config?.Rules ?? null;
  } catch {
    lifecycle = null; // no lifecycle configuration
  }
  let retention: unknown = null;
  try {
    const r = mcJson(s, ["retention", "info", "--default", `fp/${bucket}`])[0] as Record<string, unknown> | undefined;
    retention = r ? { enabled: r.enabled, mode: r.mode, validity: r.validity } : null;
  } catch {
    retention = null; // no object lock
  }
  return { versioning: versioning?.status ?? "", lifecycle, retention };
}
