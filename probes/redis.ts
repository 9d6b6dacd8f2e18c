import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import type { RedisSource } from "../pipeline/config.js";
import { OperationError } from "../pipeline/errors.js";
import type { RedisSample } from "../pipeline/manifest.js";
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

export type BgsaveRecord = {
  lastsaveBefore: number;
  lastsaveAfter: number;
  status: string;
  waitedMs: number;
  joinedRunning: boolean;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * BGSAVE and wait until it has really completed: no save in progress,
 * LASTSAVE later than before we asked, and rdb_last_bgsave_status:ok. A
 * BGSAVE that is already running is joined. Bounded by `timeoutMs`.
 */
export async function bgsaveAndWait(client: Redis, timeoutMs: number, onWait?: (ms: number) => void): Promise<BgsaveRecord> {
  const t0 = Date.now();
  const lastsaveBefore = Number(await client.lastsave());
  // LASTSAVE has one-second resolution: make sure "advanced" is observable.
  for (;;) {
    const [seconds] = (await client.time()) as unknown as [string, string];
    if (Number(seconds) > lastsaveBefore) break;
    await sleep(200);
  }
  let joinedRunning = false;
  let scheduled = false;
  try {
    const reply = String(await client.call("BGSAVE", "SCHEDULE"));
    scheduled = /scheduled/i.test(reply);
  } catch (err) {
    if (/already in progress/i.test((err as Error).message)) joinedRunning = true;
    else throw new OperationError(`redis BGSAVE refused: ${(err as Error).message}`, { cause: err });
  }
  let seenRunning = joinedRunning;
  let delay = 50;
  let lastReport = t0;
  for (;;) {
    const info = parseInfo(await client.info("persistence"));
    const inProgress = info.rdb_bgsave_in_progress === "1";
    const status = info.rdb_last_bgsave_status ?? "unknown";
    const lastsave = Number(await client.lastsave());
    if (inProgress) seenRunning = true;
    if (!inProgress && (seenRunning || !scheduled)) {
      if (lastsave > lastsaveBefore && status === "ok") {
        return { lastsaveBefore, lastsaveAfter: lastsave, status, waitedMs: Date.now() - t0, joinedRunning };
      }
      if (status !== "ok") {
        throw new OperationError(`redis BGSAVE failed (rdb_last_bgsave_status:${status}); see the Redis server log`);
      }
    }
    if (Date.now() - t0 > timeoutMs) {
      throw new OperationError(`redis BGSAVE did not complete within ${Math.round(timeoutMs / 1000)}s`);
    }
    if (onWait && Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      onWait(Date.now() - t0);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 500);
  }
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

/**
 * Type, content digest and PTTL of one key. Order-free types (hash, set) are
 * sorted first; lists, sorted sets and streams keep their order. Returns
 * type "none" when the key does not exist.
 */
export async function digestKey(client: Redis, key: Buffer): Promise<KeyDigest> {
  const type = String(await client.type(key));
  const ttlMs = Number(await client.pttl(key));
  let parts: Buffer[];
  switch (type) {
    case "none":
      return { type, digest: digestParts(type, []), ttlMs };
    case "string":
      parts = flatten(await client.callBuffer("GET", key));
      break;
    case "list":
      parts = flatten(await client.callBuffer("LRANGE", key, "0", "-1"));
      break;
    case "set":
      parts = flatten(await client.callBuffer("SMEMBERS", key)).sort(Buffer.compare);
      break;
    case "zset":
      parts = flatten(await client.callBuffer("ZRANGE", key, "0", "-1", "WITHSCORES"));
      break;
    case "hash":
      parts = sortedPairs(flatten(await client.callBuffer("HGETALL", key)));
      break;
    case "stream":
      parts = flatten(await client.callBuffer("XRANGE", key, "-", "+"));
      break;
    default:
      // Module types: the serialized value is the best content witness there is.
      parts = flatten(await client.callBuffer("DUMP", key));
  }
  return { type, digest: digestParts(type, parts), ttlMs };
}

const VALUE_COMMAND: Record<string, (key: Buffer) => [string, ...(string | Buffer)[]]> = {
  string: (k) => ["GET", k],
  list: (k) => ["LRANGE", k, "0", "-1"],
  set: (k) => ["SMEMBERS", k],
  zset: (k) => ["ZRANGE", k, "0", "-1", "WITHSCORES"],
  hash: (k) => ["HGETALL", k],
  stream: (k) => ["XRANGE", k, "-", "+"],
};

/**
 * digestKey for many keys, pipelined: two round trips per batch of `batch`
 * keys (TYPE + PTTL, then the values) instead of three per key, so a slow
 * link costs round trips per page, not per key. Same digests as digestKey.
 */
export async function digestKeys(client: Redis, keys: Buffer[], batch = 500, onProgress?: (done: number) => void): Promise<KeyDigest[]> {
  const out: KeyDigest[] = [];
  for (let i = 0; i < keys.length; i += batch) {
    const page = keys.slice(i, i + batch);
    const meta = client.pipeline();
    for (const k of page) meta.type(k).pttl(k);
    const metaReplies = (await meta.exec()) ?? [];
    const types: string[] = [];
    const ttls: number[] = [];
    page.forEach((_, j) => {
      const [terr, type] = metaReplies[2 * j] ?? [new Error("no reply"), null];
      const [perr, ttl] = metaReplies[2 * j + 1] ?? [new Error("no reply"), null];
      if (terr) throw terr;
      if (perr) throw perr;
      types.push(String(type));
      ttls.push(Number(ttl));
    });
    const values = client.pipeline();
    page.forEach((k, j) => {
      const type = types[j]!;
      if (type === "none") return;
      const [cmd, ...args] = (VALUE_COMMAND[type] ?? ((key: Buffer) => ["DUMP", key] as [string, Buffer]))(k);
      values.callBuffer(cmd, ...args);
    });
    const valueReplies = values.length > 0 ? ((await values.exec()) ?? []) : [];
    let v = 0;
    page.forEach((_, j) => {
      const type = types[j]!;
      if (type === "none") {
        out.push({ type, digest: digestParts(type, []), ttlMs: ttls[j]! });
        return;
      }
      const [err, reply] = valueReplies[v++] ?? [new Error("no reply"), null];
      if (err) throw err;
      let parts = flatten(reply);
      if (type === "set") parts = parts.sort(Buffer.compare);
      else if (type === "hash") parts = sortedPairs(parts);
      out.push({ type, digest: digestParts(type, parts), ttlMs: ttls[j]! });
    });
    onProgress?.(Math.min(i + batch, keys.length));
  }
  return out;
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

/**
 * Record `size` keys spread over the dbs in proportion to their key counts,
 * plus every key matching `patterns`, with type, digest and TTL.
 */
export async function sampleKeys(
  t: RedisTarget,
  keyspace: KeyspaceEntry[],
  size: number,
  patterns: string[],
): Promise<RedisSample[]> {
  const total = keyspace.reduce((a, k) => a + k.keys, 0);
  const out: RedisSample[] = [];
  for (const entry of keyspace) {
    if (entry.keys === 0) continue;
    const share = total === 0 ? 0 : Math.max(1, Math.round((size * entry.keys) / total));
    const client = await connectRedis(t, entry.db);
    try {
      const chosen = new Map<string, Buffer>();
      if (size > 0) for (const k of await randomKeys(client, Math.min(share, size), entry.keys)) chosen.set(k.toString("hex"), k);
      for (const p of patterns) for (const k of await scanAll(client, p, Number.POSITIVE_INFINITY)) chosen.set(k.toString("hex"), k);
      const keys = [...chosen.values()].sort(Buffer.compare);
      const digests = await digestKeys(client, keys);
      keys.forEach((key, i) => {
        const d = digests[i]!;
        if (d.type === "none") return; // expired or deleted since it was picked
        out.push({ db: entry.db, ...encodeKey(key), type: d.type, digest: d.digest, ttlMs: d.ttlMs });
      });
    } finally {
      client.disconnect();
    }
  }
  return out;
}
