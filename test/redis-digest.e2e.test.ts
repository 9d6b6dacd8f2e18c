/**
 * Golden digests: probes/redis.ts digestKey is what the backup records for
 * every sampled key and what the drill compares a restored key against. Each
 * type, encoding and edge case is pinned to a known digest here, so a digest
 * that stops looking at values (or at order, or at some bytes) fails at once
 * instead of letting a drill pass on different data.
 *
 * The digests follow the recorded format: sha256 of "<type>\n" and then, per
 * part, "<byte length>:<bytes>"; parts are the value as Redis returns it
 * (hash fields and set members sorted by bytes, lists, sorted sets and
 * streams in their order). They are literals: changing the format changes
 * every digest in existing backup sets, and must show up here.
 */
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, digestKey } from "../probes/redis.js";
import { startRedis, type RedisServer } from "../pipeline/throwaway/servers.js";
import { requireTools } from "./services/index.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** 1 MiB that is neither constant nor text. */
const big = Buffer.from(range(1 << 20).map((i) => (i * 31 + (i >> 8)) & 0xff));
const binary = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x80, 0x00, 0x24, 0x2a]);

type Case = { name: string; key: Buffer | string; write: (c: Redis, key: Buffer | string) => Promise<unknown>; encoding: string; type: string; digest: string };

const cases: Case[] = [
  { name: "string (embstr)", key: "s:embstr", write: (c, k) => c.set(k, "hello"), encoding: "embstr", type: "string", digest: "1b903f085dcc04d4328f8fc83dcfa572430d197d12345bfd456d02e26f9111e1" },
  { name: "string (int)", key: "s:int", write: (c, k) => c.set(k, "12345"), encoding: "int", type: "string", digest: "1334bb943d3bfd8d8498da9821733975149e1fb2c50f106ecddb82b147719d64" },
  { name: "string (raw)", key: "s:raw", write: (c, k) => c.set(k, "x".repeat(100)), encoding: "raw", type: "string", digest: "abefc4279565412305d9bd2a6e7597f3f7d1bd442cbc34161234cf232398e072" },
  { name: "string, empty", key: "s:empty", write: (c, k) => c.set(k, ""), encoding: "embstr", type: "string", digest: "a3251272d7c62ad9861777a93b26f4fe4548f4cd5b55bf7d1ba128daabf5dfa6" },
  { name: "string, binary (NUL, 0xff, CR LF)", key: "s:binary", write: (c, k) => c.set(k, binary), encoding: "embstr", type: "string", digest: "c17eea465d1a0e0d1d6710f58e40968f5e54213bb12be61f6e8e2724718710a2" },
  { name: "string, 1 MiB", key: "s:large", write: (c, k) => c.set(k, big), encoding: "raw", type: "string", digest: "5328289729da3cae57934163e7f267ad93ac24eaa971f8a7b56dc5ca1e01ba02" },
  { name: "string under a binary key", key: Buffer.from([0xff, 0x00, 0x0a]), write: (c, k) => c.set(k, "v"), encoding: "embstr", type: "string", digest: "a40c3bea249120e7464a133b75d5d651d53e661f890a1c88f5d2987d542cb845" },
  { name: "list (small)", key: "l:small", write: (c, k) => c.rpush(k, "a", "b", "", binary), encoding: "quicklist", type: "list", digest: "7274494e6acd0f5cfd8429aa7fa94ea22fcb4f0c2ac7c4ca64c8f061385e0fcc" },
  { name: "list, 5000 elements", key: "l:large", write: (c, k) => c.rpush(k, ...range(5000).map((i) => `e${i}`)), encoding: "quicklist", type: "list", digest: "918a433a04a7dfd268b6ddc7df0573823ba80a5b601a52a6ec2372c20e0acfe8" },
  { name: "set (intset)", key: "set:int", write: (c, k) => c.sadd(k, "10", "1", "3", "2"), encoding: "intset", type: "set", digest: "8ecc869bd0fa3356c65a1b0deefc3fd2a1547f684d74d8d80fcab35e7105f6c4" },
  { name: "set (hashtable)", key: "set:ht", write: (c, k) => c.sadd(k, ...range(200).map((i) => `m${i}`), binary), encoding: "hashtable", type: "set", digest: "40fb09b48e38eacb5149d84236905a12f57309d7fda4b34ffe675d10602ba45a" },
  { name: "sorted set (listpack), negative and fractional scores", key: "z:lp", write: (c, k) => c.zadd(k, "1", "a", "2.5", "b", "-3", "c", "0.1", "d"), encoding: "listpack", type: "zset", digest: "85063cf4604a77ddd50b2312ad639778be4cf72b1ac5f6a11ce3bb0a4c95b34e" },
  {
    name: "sorted set (skiplist), ties and infinities",
    key: "z:sl",
    write: (c, k) => c.zadd(k, "+inf", "top", "-inf", "bottom", ...range(200).flatMap((i) => [String(i % 7), `m${i}`])),
    encoding: "skiplist",
    type: "zset",
    digest: "5d35a7ba5b01a1eaaead71ba0716517611eefdbb4b66a5f3cfc16378b5239950",
  },
  { name: "hash (listpack), an empty value", key: "h:lp", write: (c, k) => c.hset(k, "f2", "", "f1", "v1", "bin", binary), encoding: "listpack", type: "hash", digest: "236deb00df3e5a8b194dc48908c4d159c0e6772e77f8a52112f3271293c92cfd" },
  { name: "hash (hashtable), a long value", key: "h:ht", write: (c, k) => c.hset(k, ...range(200).flatMap((i) => [`f${i}`, `v${i}`]), "long", "y".repeat(100)), encoding: "hashtable", type: "hash", digest: "0abc25a80cd280c85eb597d1aab71c99d0b3e0d7dd79b09d965e228017858a6e" },
  {
    name: "stream, two entries",
    key: "x:stream",
    write: async (c, k) => {
      await c.xadd(k, "1-1", "a", "1", "b", "2");
      await c.xadd(k, "2-0", "c", "");
    },
    encoding: "stream",
    type: "stream",
    digest: "c8147a1a678c6bba3d9342cc5e46cec22cb4645c94769a22a5fcdf0a6814aaf5",
  },
];

describe("digestKey golden digests", () => {
  let redis: RedisServer;
  let c: Redis;
  beforeAll(async () => {
    requireTools();
    redis = await startRedis({ tools: {} });
    c = await connectRedis(redis, 0);
  });
  afterAll(async () => {
    c?.disconnect();
    await redis?.stop();
  });

  it.each(cases)("$name", async ({ key, write, encoding, type, digest }) => {
    await write(c, key);
    expect(String(await c.object("ENCODING", key))).toBe(encoding); // the case covers the encoding it names
    expect(await digestKey(c, Buffer.from(key))).toEqual({ type, digest, ttlMs: -1 });
  });

  const golden = (name: string) => cases.find((x) => x.name === name)!.digest;

  it("a TTL changes the reported TTL, never the digest", async () => {
    await c.set("ttl:s", "hello", "PX", 3_600_000);
    const d = await digestKey(c, Buffer.from("ttl:s"));
    expect(d).toMatchObject({ type: "string", digest: golden("string (embstr)") });
    expect(d.ttlMs).toBeGreaterThan(3_500_000);
    expect(d.ttlMs).toBeLessThanOrEqual(3_600_000);
  });

  it("a missing key is type none, TTL -2, with the digest of nothing", async () => {
    expect(await digestKey(c, Buffer.from("no such key"))).toEqual({ type: "none", digest: "fcf33dfbe13c2354bf0e1b063f9fb422747a46cee00b7420bceff2b81457b345", ttlMs: -2 });
  });

  it("the same content has the same digest in every encoding (a restore may load it into another one)", async () => {
    const writes = async (db: Redis) => {
      await db.hset("h", "f2", "", "f1", "v1", "bin", binary);
      await db.sadd("set", "10", "1", "3", "2");
      await db.zadd("z", "1", "a", "2.5", "b", "-3", "c", "0.1", "d");
    };
    const other = await connectRedis(redis, 1);
    try {
      await c.config("SET", "hash-max-listpack-entries", "0", "set-max-intset-entries", "0", "zset-max-listpack-entries", "0");
      await writes(other);
      expect([await other.object("ENCODING", "h"), await other.object("ENCODING", "set"), await other.object("ENCODING", "z")]).toEqual(["hashtable", "hashtable", "skiplist"]);
      expect((await digestKey(other, Buffer.from("h"))).digest).toBe(golden("hash (listpack), an empty value"));
      expect((await digestKey(other, Buffer.from("set"))).digest).toBe(golden("set (intset)"));
      expect((await digestKey(other, Buffer.from("z"))).digest).toBe(golden("sorted set (listpack), negative and fractional scores"));
    } finally {
      await c.config("SET", "hash-max-listpack-entries", "128", "set-max-intset-entries", "512", "zset-max-listpack-entries", "128");
      other.disconnect();
    }
  });

  it("hash fields and set members in another order have the same digest; a list in another order does not", async () => {
    await c.hset("h:reordered", "bin", binary, "f1", "v1", "f2", "");
    await c.sadd("set:reordered", "3", "2", "10", "1");
    await c.rpush("l:reordered", binary, "", "b", "a");
    expect((await digestKey(c, Buffer.from("h:reordered"))).digest).toBe(golden("hash (listpack), an empty value"));
    expect((await digestKey(c, Buffer.from("set:reordered"))).digest).toBe(golden("set (intset)"));
    expect((await digestKey(c, Buffer.from("l:reordered"))).digest).not.toBe(golden("list (small)"));
  });
});
