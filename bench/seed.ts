import { randomBytes } from "node:crypto";
import * as Minio from "minio";
import { connectPostgres } from "../probes/postgres.js";
import { connectRedis } from "../probes/redis.js";
import { humanBytes } from "../pipeline/report.js";
import type { SandboxServers } from "../pipeline/sandbox.js";
import { resolveTool } from "../pipeline/tools.js";
import { run } from "./raw.js";


// ---------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------

export type SeedSize = { scale: number; keys: number; objects: number; objectBytes: number; blobs?: number; say: (m: string) => void };

/** The bench dataset: pgbench tables plus 50,000 incompressible 4 KiB bytea rows, Redis keys of three kinds, objects small and large. */
export async function seed(s: SandboxServers, dims: SeedSize): Promise<void> {
  const { scale: SCALE, keys: KEYS, objects: OBJECTS, objectBytes: OBJECT_BYTES, say } = dims;
  const pgEnv = { PGPASSWORD: s.postgres.password.reveal() };
  const admin = await connectPostgres(s.postgres, "postgres");
  await admin.query("CREATE DATABASE bench");
  await admin.end();
  say(`postgres: pgbench -i -s ${SCALE}`);
  await run(resolveTool("pgbench"), ["-i", "-q", "-s", String(SCALE), "-h", s.postgres.host, "-p", String(s.postgres.port), "-U", "postgres", "bench"], pgEnv);
  const db = await connectPostgres(s.postgres, "bench");
  // 50,000 incompressible 4 KiB rows (random bytes, written from here in batches), beside pgbench's very compressible ones.
  await db.query("CREATE TABLE blobs (id serial PRIMARY KEY, body bytea NOT NULL, doc jsonb NOT NULL)");
  const BLOBS = dims.blobs ?? 50_000;
  for (let i = 0; i < BLOBS; i += 500) {
    const n = Math.min(500, BLOBS - i);
    const bodies = Array.from({ length: n }, () => randomBytes(4096));
    const docs = Array.from({ length: n }, (_, j) => JSON.stringify({ n: i + j, tags: ["a", "b", (i + j) % 7] }));
    await db.query("INSERT INTO blobs (body, doc) SELECT * FROM unnest($1::bytea[], $2::jsonb[])", [bodies, docs]);
  }
  const size = await db.query<{ s: string }>("SELECT pg_size_pretty(pg_database_size('bench')) AS s");
  await db.end();
  say(`postgres: bench database ${size.rows[0]!.s}`);

  say(`redis: ${KEYS} keys`);
  const r = await connectRedis(s.redis, 0);
  for (let i = 0; i < KEYS; i += 10_000) {
    const p = r.pipeline();
    for (let j = i; j < Math.min(KEYS, i + 10_000); j++) {
      if (j % 10 === 0) p.hset(`user:${j}`, "name", `n${j}`, "visits", String(j % 97));
      else if (j % 50 === 1) p.set(`session:${j}`, `t${j}`, "EX", 86_400);
      else p.set(`k:${j}`, `value-${j}-${"x".repeat(j % 40)}`);
    }
    await p.exec();
  }
  r.disconnect();

  say(`minio: ${OBJECTS} objects, ${humanBytes(OBJECT_BYTES)}`);
  const client = new Minio.Client({ endPoint: "127.0.0.1", port: s.minio.port, useSSL: false, accessKey: s.minio.accessKey.reveal(), secretKey: s.minio.secretKey.reveal() });
  await client.makeBucket("bench-objects");
  const large = 8;
  const largeBytes = Math.floor((OBJECT_BYTES * 0.5) / large);
  const smallBytes = Math.floor((OBJECT_BYTES * 0.5) / (OBJECTS - large));
  const queue = Array.from({ length: OBJECTS }, (_, i) => i);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        const body = randomBytes(i < large ? largeBytes : smallBytes);
        await client.putObject("bench-objects", i < large ? `large/blob-${i}.bin` : `small/${i % 50}/obj-${i}.json`, body, body.length, {
          "Content-Type": i < large ? "application/octet-stream" : "application/json",
        });
      }
    }),
  );
}

