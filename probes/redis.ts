import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import type { RedisSource } from "../pipeline/config.js";
import { OperationError } from "../pipeline/errors.js";
import type { RedisFunctionLibrary, RedisSample, RedisStreamGroups } from "../pipeline/manifest.js";
import type { Secret } from "../pipeline/secret.js";
import { clientTimeouts } from "../pipeline/timeouts.js";

export type RedisTarget = { host: string; port: number; username?: string; password?: Secret };

export function redisTarget(src: RedisSource): RedisTarget {
  return { host: src.host, port: src.port, username: src.username, password: src.password };
}

/**
 * A connected client that fails fast instead of retrying forever; every
 * command is bounded by timeouts.redisCommand (a stopped server or a black
 * hole ends in "Command timed out", never in a silent wait).
 */
export async function connectRedis(t: RedisTarget, db = 0): Promise<Redis> {
  const timeouts = clientTimeouts();
  const client = new Redis({
    host: t.host,
    port: t.port,
    username: t.username,
    password: t.password?.reveal(),
    db,
    lazyConnect: true,
    connectTimeout: timeouts.connectMs,
    commandTimeout: timeouts.redisCommandMs,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis reports the socket error as an event and rejects with "Connection is closed": keep the cause.
  let lastError: Error | undefined;
  client.on("error", (err: Error) => {
    lastError = err;
  });
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    const reason = lastError?.message ?? (err as Error).message;
    throw new OperationError(`redis ${t.host}:${t.port}: cannot connect: ${reason}`, { cause: err });
  }
  return client;
}

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith("#")) continue;
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export type KeyspaceEntry = { db: number; keys: number; expires: number };

/** "db0:keys=3,expires=1,avg_ttl=0" lines -> entries, sorted by db. */
export function parseKeyspace(info: Record<string, string>): KeyspaceEntry[] {
  const out: KeyspaceEntry[] = [];
  for (const [k, v] of Object.entries(info)) {
    const m = /^db(\d+)$/.exec(k);
    if (!m) continue;
    const fields = Object.fromEntries(v.split(",").map((p) => p.split("=") as [string, string]));
    out.push({ db: Number(m[1]), keys: Number(fields.keys ?? 0), expires: Number(fields.expires ?? 0) });
  }
  return out.sort((a, b) => a.db - b.db);
}

export type RedisServerFacts = { version: string; runId: string; role: string; keyspace: KeyspaceEntry[] };

export async function probeRedis(client: Redis): Promise<RedisServerFacts> {
  const info = parseInfo(await client.info());
  return {
    version: info.redis_version ?? "unknown",
    runId: info.run_id ?? "unknown",
    role: info.role ?? "unknown",
    keyspace: parseKeyspace(info),
  };
}

// ---------------------------------------------------------------------------
// Value digests: what the drill compares a restored key against
// ---------------------------------------------------------------------------

function digestParts(type: string, parts: Buffer[]): string {
  const h = createHash("sha256").update(`${type}\n`);
  for (const p of parts) h.update(`${p.length}:`).update(p);
  return h.digest("hex");
}

function flatten(value: unknown, out: Buffer[] = []): Buffer[] {
  if (Buffer.isBuffer(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) flatten(v, out);
  else if (value !== null && value !== undefined) out.push(Buffer.from(String(value)));
  return out;
}

function sortedPairs(flat: Buffer[]): Buffer[] {
  const pairs: [Buffer, Buffer][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
  return pairs.flat();
}

export type KeyDigest = { type: string; digest: string; ttlMs: number };

/** The command that reads a whole value of `type`, in a stable order where the type has one. */
function valueCommand(type: string, key: Buffer): [string, ...(Buffer | string)[]] {
  switch (type) {
    case "string":
      return ["GET", key];
    case "list":
      return ["LRANGE", key, "0", "-1"];
    case "set":
      return ["SMEMBERS", key];
    case "zset":
      return ["ZRANGE", key, "0", "-1", "WITHSCORES"];
    case "hash":
      return ["HGETALL", key];
    case "stream":
      return ["XRANGE", key, "-", "+"];
    default:
      // Module types: the serialized value is the best content witness there is.
      return ["DUMP", key];
  }
}

function digestValue(type: string, reply: unknown): string {
  let parts = flatten(reply);
  // Order-free types are sorted; lists, sorted sets and streams keep their order.
  if (type === "set") parts = parts.sort(Buffer.compare);
  else if (type === "hash") parts = sortedPairs(parts);
  return digestParts(type, parts);
}

const DIGEST_BATCH = 500;

/**
 * Type, content digest and PTTL of each key, pipelined: two round trips per
 * batch of keys (TYPE + PTTL, then the values), not three per key, so a slow
 * link costs round trips per page. Order-free types (hash, set) are sorted
 * first; lists, sorted sets and streams keep their order. A key that does
 * not exist has type "none".
 */
export async function digestKeys(client: Redis, keys: Buffer[], batchSize = DIGEST_BATCH, onProgress?: (done: number) => void): Promise<KeyDigest[]> {
  const out: KeyDigest[] = [];
  for (let at = 0; at < keys.length; at += batchSize) {
    const batch = keys.slice(at, at + batchSize);
    const head = client.pipeline();
    for (const k of batch) head.type(k).pttl(k);
    const heads = await execAll(head);
    const types = batch.map((_, i) => String(heads[2 * i]));
    const ttls = batch.map((_, i) => Number(heads[2 * i + 1]));
    const values = client.pipeline();
    batch.forEach((k, i) => {
      if (types[i] !== "none") {
        const [cmd, ...args] = valueCommand(types[i]!, k);
        values.callBuffer(cmd, ...args);
      }
    });
    const replies = await execAll(values);
    let r = 0;
    batch.forEach((_, i) => {
      const type = types[i]!;
      out.push({ type, digest: type === "none" ? digestParts(type, []) : digestValue(type, replies[r++]), ttlMs: ttls[i]! });
    });
    onProgress?.(Math.min(at + batchSize, keys.length));
  }
  return out;
}

/** One key's digest (see digestKeys). */
export async function digestKey(client: Redis, key: Buffer): Promise<KeyDigest> {
  return (await digestKeys(client, [key]))[0]!;
}

/** Results of a pipeline; the first command error is thrown. */
async function execAll(p: ReturnType<Redis["pipeline"]>): Promise<unknown[]> {
  const results = (await p.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

export function encodeKey(key: Buffer): { key: string; keyEncoding: "utf8" | "base64" } {
  const text = key.toString("utf8");
  return Buffer.from(text, "utf8").equals(key) ? { key: text, keyEncoding: "utf8" } : { key: key.toString("base64"), keyEncoding: "base64" };
}

export function decodeKey(s: Pick<RedisSample, "key" | "keyEncoding">): Buffer {
  return Buffer.from(s.key, s.keyEncoding === "base64" ? "base64" : "utf8");
}

async function scanAll(client: Redis, match: string | undefined, limit: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let cursor = "0";
  do {
    const args = match ? ["MATCH", match, "COUNT", "1000"] : ["COUNT", "1000"];
    const [next, keys] = (await client.callBuffer("SCAN", cursor, ...args)) as [Buffer, Buffer[]];
    cursor = next.toString();
    out.push(...keys);
  } while (cursor !== "0" && out.length < limit);
  return out;
}

async function randomKeys(client: Redis, n: number, dbKeys: number): Promise<Buffer[]> {
  // A small db is taken whole; a large one by RANDOMKEY, deduplicated.
  if (dbKeys <= n) return scanAll(client, undefined, Number.POSITIVE_INFINITY);
  const seen = new Map<string, Buffer>();
  for (let round = 0; round < 5 && seen.size < n; round++) {
    const pipe = client.pipeline();
    const want = Math.ceil((n - seen.size) * 1.3);
    for (let i = 0; i < want; i++) pipe.callBuffer("RANDOMKEY");
    for (const [err, key] of (await pipe.exec()) ?? []) {
      if (!err && Buffer.isBuffer(key)) seen.set(key.toString("hex"), key);
    }
  }
  return [...seen.values()].slice(0, n);
}

/** Every db gets at least this many sampled keys (or all it has), on top of the configured total. */
export const SAMPLE_FLOOR = 100;

/**
 * How many keys to sample per db: `size` spread over the dbs in proportion
 * to their key counts, but never fewer than min(keys, floor) in any db. Pure.
 */
export function sampleShares(keyspace: KeyspaceEntry[], size: number, floor = SAMPLE_FLOOR): Map<number, number> {
  const total = keyspace.reduce((a, k) => a + k.keys, 0);
  const out = new Map<number, number>();
  for (const entry of keyspace) {
    if (entry.keys === 0) continue;
    const share = total === 0 ? 0 : Math.round((size * entry.keys) / total);
    out.set(entry.db, Math.min(entry.keys, Math.max(share, floor)));
  }
  return out;
}

/**
 * Record sampled keys per db (see sampleShares), plus every key matching
 * `patterns`, with type, digest and TTL. Meant for a server holding the
 * snapshot (a throwaway loaded from dump.rdb): what it records describes
 * exactly the set's bytes.
 */
export async function sampleKeys(
  t: RedisTarget,
  keyspace: KeyspaceEntry[],
  size: number,
  patterns: string[],
): Promise<RedisSample[]> {
  const shares = sampleShares(keyspace, size);
  const out: RedisSample[] = [];
  for (const entry of keyspace) {
    const share = shares.get(entry.db);
    if (share === undefined) continue;
    const client = await connectRedis(t, entry.db);
    try {
      const chosen = new Map<string, Buffer>();
      for (const k of await randomKeys(client, share, entry.keys)) chosen.set(k.toString("hex"), k);
      for (const p of patterns) for (const k of await scanAll(client, p, Number.POSITIVE_INFINITY)) chosen.set(k.toString("hex"), k);
      const keys = [...chosen.values()].sort(Buffer.compare);
      const digests = await digestKeys(client, keys);
      keys.forEach((key, i) => {
        const d = digests[i]!;
        if (d.type === "none") return; // expired since it was picked
        out.push({ db: entry.db, ...encodeKey(key), type: d.type, digest: d.digest, ttlMs: d.ttlMs });
      });
    } finally {
      client.disconnect();
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Functions and stream consumer groups: server state beyond key values
// ---------------------------------------------------------------------------

export type FunctionLibrary = RedisFunctionLibrary;

/** A RESP2 map (flat [k, v, k, v]) as an object with string keys. */
function respMap(reply: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const flat = reply as unknown[];
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

/**
 * Every FUNCTION library: name, engine, sha256 of its code, and its
 * functions with their flags, sorted by name. Empty on a server without
 * FUNCTION (Redis < 7).
 */
export async function functionLibraries(client: Redis): Promise<FunctionLibrary[]> {
  let reply: unknown;
  try {
    reply = await client.callBuffer("FUNCTION", "LIST", "WITHCODE");
  } catch (err) {
    if (/unknown command|unknown subcommand/i.test((err as Error).message)) return [];
    throw err;
  }
  const libs = (reply as unknown[]).map((lib) => {
    const m = respMap(lib);
    const functions = (m.functions as unknown[]).map((f) => {
      const fm = respMap(f);
      return { name: String(fm.name), flags: ((fm.flags as unknown[]) ?? []).map(String).sort() };
    });
    functions.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return {
      name: String(m.library_name),
      engine: String(m.engine),
      codeSha256: createHash("sha256").update(m.library_code as Buffer).digest("hex"),
      functions,
    };
  });
  return libs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export type StreamGroups = RedisStreamGroups;

/** The consumer groups of one stream: name, last-delivered ID, pending entries and consumers, by name. */
export async function groupsOf(client: Redis, key: Buffer): Promise<StreamGroups["groups"]> {
  const reply = (await client.callBuffer("XINFO", "GROUPS", key)) as unknown[];
  return reply
    .map((g) => {
      const m = respMap(g);
      return { name: String(m.name), lastDeliveredId: String(m["last-delivered-id"]), pending: Number(m.pending), consumers: Number(m.consumers) };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Every stream with at least one consumer group, per db, with its groups (SCAN TYPE stream). */
export async function streamGroups(t: RedisTarget, dbs: number[]): Promise<StreamGroups[]> {
  const out: StreamGroups[] = [];
  for (const db of dbs) {
    const client = await connectRedis(t, db);
    try {
      let cursor = "0";
      const streams: Buffer[] = [];
      do {
        const [next, keys] = (await client.callBuffer("SCAN", cursor, "COUNT", "10000", "TYPE", "stream")) as [Buffer, Buffer[]];
        cursor = next.toString();
        streams.push(...keys);
      } while (cursor !== "0");
      for (const key of streams.sort(Buffer.compare)) {
        const groups = await groupsOf(client, key);
        if (groups.length > 0) out.push({ db, ...encodeKey(key), groups });
      }
    } finally {
      client.disconnect();
    }
  }
  return out;
}
