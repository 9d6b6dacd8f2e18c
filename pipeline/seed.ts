import { createHash } from "node:crypto";
import type * as Minio from "minio";
import { connectPostgres, type PgTarget } from "../probes/postgres.js";
import { connectRedis, type RedisTarget } from "../probes/redis.js";

/**
 * A small but realistic app dataset for the sandbox and the tests: related
 * PostgreSQL tables with foreign keys, every Redis type (some with TTLs) in
 * two dbs, and objects with awkward keys, metadata, tags, folder markers and
 * one object large enough to go up in parts.
 */

/** Deterministic pseudo-random numbers, so every seed is the same data. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export const SEED_DATABASES = ["app", "analytics"];

export async function seedPostgres(target: PgTarget): Promise<void> {
  const admin = await connectPostgres(target, "postgres");
  try {
    for (const db of SEED_DATABASES) await admin.query(`CREATE DATABASE ${db}`);
    await admin.query("CREATE ROLE app_reader NOLOGIN");
  } finally {
    await admin.end();
  }
  const app = await connectPostgres(target, "app");
  try {
    await app.query(`
      CREATE TABLE customers (
        id serial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT '2026-01-01T00:00:00Z'
      );
      CREATE TABLE products (
        id serial PRIMARY KEY,
        sku text NOT NULL UNIQUE,
        title text NOT NULL,
        price_cents integer NOT NULL CHECK (price_cents >= 0),
        attributes jsonb NOT NULL DEFAULT '{}'
      );
      CREATE TABLE orders (
        id serial PRIMARY KEY,
        customer_id integer NOT NULL REFERENCES customers(id),
        status text NOT NULL,
        placed_at timestamptz NOT NULL
      );
      CREATE TABLE order_items (
        order_id integer NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
        product_id integer NOT NULL REFERENCES products(id),
        quantity integer NOT NULL CHECK (quantity > 0),
        PRIMARY KEY (order_id, product_id)
      );
      CREATE TABLE attachments (id serial PRIMARY KEY, order_id integer REFERENCES orders(id), body bytea NOT NULL);
      CREATE INDEX orders_customer_idx ON orders(customer_id);
      CREATE VIEW order_totals AS
        SELECT o.id, sum(i.quantity * p.price_cents) AS total_cents
        FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id GROUP BY o.id;
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_reader;
      INSERT INTO customers (email, name) SELECT 'user' || g || '@example.com', 'Customer ' || g FROM generate_series(1, 500) g;
      INSERT INTO products (sku, title, price_cents, attributes)
        SELECT 'SKU-' || g, 'Product ' || g, (g * 137) % 10000, jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g % 3], 'weight', g % 17)
        FROM generate_series(1, 200) g;
      INSERT INTO orders (customer_id, status, placed_at)
        SELECT 1 + (g * 7) % 500, (ARRAY['new','paid','shipped','returned'])[1 + g % 4], '2026-01-01T00:00:00Z'::timestamptz + g * interval '37 minutes'
        FROM generate_series(1, 2000) g;
      INSERT INTO order_items (order_id, product_id, quantity)
        SELECT o, 1 + (o * k * 13) % 200, 1 + (o + k) % 5 FROM generate_series(1, 2000) o, generate_series(1, 3) k
        ON CONFLICT DO NOTHING;
      INSERT INTO attachments (order_id, body) SELECT g, decode(md5(g::text) || md5((g * 2)::text), 'hex') FROM generate_series(1, 300) g;
      -- A materialized view holding data, and one created WITH NO DATA (it must come back unpopulated).
      CREATE MATERIALIZED VIEW customer_order_counts AS
        SELECT c.id AS customer_id, count(o.id) AS orders FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id;
      CREATE MATERIALIZED VIEW monthly_revenue AS
        SELECT date_trunc('month', o.placed_at) AS month, sum(i.quantity * p.price_cents) AS cents
        FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id GROUP BY 1
        WITH NO DATA;
      -- Large objects (invoices as PDFs, say): pg_dump carries them outside any table.
      CREATE TABLE invoices (id serial PRIMARY KEY, order_id integer REFERENCES orders(id), pdf oid NOT NULL);
      INSERT INTO invoices (order_id, pdf)
        SELECT g, lo_from_bytea(0, decode(repeat(md5(g::text), 40 * g), 'hex')) FROM generate_series(1, 12) g;
    `);
  } finally {
    await app.end();
  }
  const analytics = await connectPostgres(target, "analytics");
  try {
    await analytics.query(`
      CREATE SCHEMA events;
      CREATE TABLE events.page_views (id bigserial PRIMARY KEY, path text NOT NULL, viewed_at timestamptz NOT NULL);
      INSERT INTO events.page_views (path, viewed_at)
        SELECT '/p/' || (g % 97), '2026-02-01T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g;
    `);
  } finally {
    await analytics.end();
  }
}

/** A Redis 7 FUNCTION library: one function that writes, one flagged no-writes. */
export const SEED_FUNCTION_LIBRARY = [
  "#!lua name=shop",
  "redis.register_function('cart_add', function(keys, args) return redis.call('HINCRBY', keys[1], args[1], 1) end)",
  "redis.register_function{function_name='cart_size', callback=function(keys) return redis.call('HLEN', keys[1]) end, flags={'no-writes'}}",
].join("\n");

export async function seedRedis(target: RedisTarget): Promise<void> {
  const r = rng(42);
  const db0 = await connectRedis(target, 0);
  try {
    const p = db0.pipeline();
    for (let i = 0; i < 300; i++) p.set(`session:${i}`, `token-${Math.floor(r() * 1e9)}`);
    for (let i = 0; i < 50; i++) p.set(`cache:page:${i}`, `<html>${i}</html>`, "EX", 86_400 + i);
    for (let i = 0; i < 100; i++) p.hset(`user:${i}`, { name: `User ${i}`, email: `user${i}@example.com`, visits: String(i * 3) });
    for (let i = 0; i < 20; i++) p.rpush(`queue:jobs:${i}`, ...Array.from({ length: 10 }, (_, j) => `job-${i}-${j}`));
    for (let i = 0; i < 20; i++) p.sadd(`tags:${i}`, ...Array.from({ length: 8 }, (_, j) => `t${(i * j) % 13}`));
    p.zadd("leaderboard", ...Array.from({ length: 200 }, (_, i) => [String((i * 7919) % 1000), `player:${i}`]).flat());
    p.xadd("events", "*", "type", "signup", "user", "1");
    p.xadd("events", "*", "type", "order", "user", "2");
    // A consumer group that has delivered one entry, not yet acknowledged (one pending).
    p.xgroup("CREATE", "events", "mailer", "0");
    p.xreadgroup("GROUP", "mailer", "worker-1", "COUNT", "1", "STREAMS", "events", ">");
    p.set(Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00, 0x01]), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    p.set("rate:limit:api", "17", "PX", 3_600_000);
    await p.exec();
    await db0.call("FUNCTION", "LOAD", SEED_FUNCTION_LIBRARY);
  } finally {
    db0.disconnect();
  }
  const db1 = await connectRedis(target, 1);
  try {
    const p = db1.pipeline();
    for (let i = 0; i < 150; i++) p.set(`feature:${i}`, i % 2 ? "on" : "off");
    for (let i = 0; i < 10; i++) p.hset(`config:${i}`, "value", String(i), "owner", "platform");
    p.set("temp:report", "pending", "EX", 7_200);
    await p.exec();
  } finally {
    db1.disconnect();
  }
}

/** Keys S3 allows and a filesystem finds awkward. */
export const AWKWARD_KEYS = [
  "with space.txt",
  "unicodé/ключ/文件.txt",
  "a+b=c.txt",
  "100%.txt",
  "a..b.txt",
  "/leading-slash.txt",
  "q?mark#hash.txt",
  "back\\slash.txt",
  "x/../escape-attempt.txt",
  "../outside.txt",
];

export type SeededObject = { bucket: string; key: string; sha256: string; size: number };

/** The versioned bucket the sandbox seeds. */
export const VERSIONED_BUCKET = "archive";

/**
 * A bucket with versioning on: a key with three versions (each with its own
 * content type and tags), a key whose latest version is a delete marker, a
 * key deleted twice, and a lifecycle rule for noncurrent versions.
 */
async function seedVersionedBucket(client: Minio.Client, objects: SeededObject[]): Promise<void> {
  const b = VERSIONED_BUCKET;
  await client.makeBucket(b);
  await client.setBucketVersioning(b, { Status: "Enabled" });
  const put = async (key: string, body: string, meta: Record<string, string>, tags?: Record<string, string>) => {
    const up = await client.putObject(b, key, Buffer.from(body), body.length, meta);
    if (tags) await client.setObjectTagging(b, key, tags, { versionId: up.versionId! });
    objects.push({ bucket: b, key, size: body.length, sha256: createHash("sha256").update(body).digest("hex") });
  };
  for (let v = 1; v <= 3; v++) {
    await put("reports/q1.csv", `quarter,revenue\nq1,${v * 1000}\n`, { "Content-Type": "text/csv", "X-Amz-Meta-Revision": String(v) }, { rev: String(v) });
  }
  await put("reports/draft.txt", "first draft", { "Content-Type": "text/plain" });
  await client.removeObject(b, "reports/draft.txt"); // a delete marker on top
  await put("tmp/scratch.bin", "scratch", { "Content-Type": "application/octet-stream" });
  await client.removeObject(b, "tmp/scratch.bin");
  await put("tmp/scratch.bin", "scratch again", { "Content-Type": "application/octet-stream" });
  await client.removeObject(b, "tmp/scratch.bin");
  await client.setBucketLifecycle(b, {
    Rule: [{ ID: "expire-old-report-versions", Status: "Enabled", Filter: { Prefix: "reports/" }, NoncurrentVersionExpiration: { NoncurrentDays: 365 } }],
  });
}

/** `versioned: false` leaves out the versioned bucket (for a server without versioning, e.g. Versity Gateway without --versioning-dir). */
export async function seedMinio(client: Minio.Client, opts: { largeBytes?: number; versioned?: boolean } = {}): Promise<{ objects: SeededObject[]; rejected: string[] }> {
  const objects: SeededObject[] = [];
  const rejected: string[] = [];
  const put = async (bucket: string, key: string, body: Buffer, meta: Record<string, string>, tags?: Record<string, string>) => {
    try {
      await client.putObject(bucket, key, body, body.length, meta);
    } catch (err) {
      // Some servers refuse ".." segments (MinIO with a named code, Versity with a bare 400): such a key cannot exist there.
      if (/InvalidResourceName|InvalidObjectName|XMinioInvalid|^400$|BadRequest/i.test(String((err as { code?: string }).code))) {
        rejected.push(key);
        return;
      }
      throw err;
    }
    if (tags) await client.setObjectTagging(bucket, key, tags);
    objects.push({ bucket, key, size: body.length, sha256: createHash("sha256").update(body).digest("hex") });
  };
  await client.makeBucket("assets");
  await client.makeBucket("logs");
  const r = rng(7);
  for (let i = 0; i < 30; i++) {
    await put("assets", `images/img-${i}.png`, Buffer.from(Array.from({ length: 2000 + i * 50 }, () => Math.floor(r() * 256))), {
      "Content-Type": "image/png",
      "Cache-Control": "public, max-age=86400",
      "X-Amz-Meta-Uploaded-By": `user-${i}`,
    }, { project: "shop", index: String(i) });
  }
  await put("assets", "data/report.json.gz", Buffer.from("{\"pretend\":\"gzip\"}"), {
    "Content-Type": "application/json",
    "Content-Encoding": "gzip",
  });
  await put("assets", "data/export.bin", Buffer.from("no extension hint"), { "Content-Type": "application/x-custom-export" });
  await put(
    "assets",
    "docs/manual.pdf",
    Buffer.from("%PDF-pretend"),
    { "Content-Type": "application/pdf", "Content-Disposition": 'attachment; filename="manual.pdf"', "Content-Language": "de-CH", "X-Amz-Meta-Reviewed": "yes" },
    { "owner team": "docs/ops@corp: +1", "rev": "a=b+c" },
  );
  for (const key of AWKWARD_KEYS) await put("assets", key, Buffer.from(`awkward: ${key}`), { "Content-Type": "text/plain; charset=utf-8" });
  await put("assets", "folder/", Buffer.alloc(0), { "Content-Type": "application/x-directory" });
  await put("assets", "folder/inside.txt", Buffer.from("inside a folder"), { "Content-Type": "text/plain" });
  await put("assets", "empty-folder/", Buffer.alloc(0), { "Content-Type": "application/x-directory" });
  await put("assets", "zero-byte.dat", Buffer.alloc(0), { "Content-Type": "application/octet-stream" });
  const large = Buffer.alloc(opts.largeBytes ?? 12 * 1024 * 1024);
  for (let i = 0; i < large.length; i += 4) large.writeUInt32LE(Math.floor(r() * 2 ** 32), i);
  // minio-js uploads anything above its part size in parts: the sandbox client uses 5 MiB parts.
  await put("assets", "videos/intro.mp4", large, { "Content-Type": "video/mp4", "X-Amz-Meta-Duration": "93s" });
  if (opts.versioned ?? true) await seedVersionedBucket(client, objects);
  for (let i = 0; i < 40; i++) {
    await put("logs", `2026/11/${String(1 + (i % 28)).padStart(2, "0")}/app-${i}.log`, Buffer.from(`line ${i}\n`.repeat(50 + i)), {
      "Content-Type": "text/plain",
    });
  }
  return { objects, rejected };
}
