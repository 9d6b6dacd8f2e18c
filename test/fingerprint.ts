/**
 * Independent fingerprints of what a server holds, to compare a source with
 * a restored target without trusting any of backup-drill's own checks.
 */
import type * as Minio from "minio";
import { createHash } from "node:crypto";
import { connectPostgres, quoteIdent, type PgTarget } from "../probes/postgres.js";
import { listObjects, objectAttributes } from "../probes/minio.js";
import { connectRedis, digestKey, type RedisTarget } from "../probes/redis.js";

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
 * Every key of a db: type, value digest and TTL. A TTL ticks down between two
 * reads, so it is kept as the moment the key expires, to 10 s: compare with
 * sameRedis(), which allows one step of that rounding.
 */
export type RedisPrint = Record<string, { type: string; digest: string; expiresAt: "never" | number }>;

export async function redisFingerprint(t: RedisTarget, db: number): Promise<RedisPrint> {
  const c = await connectRedis(t, db);
  try {
    const out: RedisPrint = {};
    let cursor = "0";
    do {
      const [next, keys] = (await c.callBuffer("SCAN", cursor, "COUNT", "500")) as [Buffer, Buffer[]];
      cursor = next.toString();
      for (const k of keys) {
        const d = await digestKey(c, k);
        out[k.toString("base64")] = { type: d.type, digest: d.digest, expiresAt: d.ttlMs < 0 ? "never" : Math.round((Date.now() + d.ttlMs) / 10_000) };
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

/** Same keys, types and values; expiry moments within one 10 s step of each other. */
export function sameRedis(a: RedisPrint, b: RedisPrint): { ok: boolean; differences: string[] } {
  const differences: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[k];
    const y = b[k];
    const name = Buffer.from(k, "base64").toString("utf8");
    if (!x || !y) differences.push(`${name}: only on ${x ? "the first" : "the second"}`);
    else if (x.type !== y.type || x.digest !== y.digest) differences.push(`${name}: ${x.type}/${y.type} value differs`);
    else if (x.expiresAt === "never" || y.expiresAt === "never" ? x.expiresAt !== y.expiresAt : Math.abs(x.expiresAt - y.expiresAt) > 1) {
      differences.push(`${name}: expires ${x.expiresAt} vs ${y.expiresAt}`);
    }
  }
  return { ok: differences.length === 0, differences };
}
