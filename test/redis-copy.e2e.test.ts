import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis } from "../probes/redis.js";
import { copyRedisKeys, redisGlobToRegExp } from "../pipeline/restore/redis-copy.js";
import { startRedis, type RedisServer } from "../pipeline/throwaway/servers.js";
import { redisFingerprint, sameRedis } from "./fingerprint.js";

describe("Redis key copy (DUMP / RESTORE over RESP)", () => {
  let src: RedisServer;
  let dst: RedisServer;
  beforeAll(async () => {
    [src, dst] = await Promise.all([startRedis({ tools: {} }), startRedis({ tools: {} })]);
    const c = await connectRedis(src, 0);
    const p = c.pipeline();
    for (let i = 0; i < 6_000; i++) p.set(`k:${i}`, `v${i}`);
    p.hset("h", "a", "1", "b", "2");
    p.set("ttl:key", "x", "PX", 3_600_000);
    p.set(Buffer.from([0xff, 0x00, 0x0a]), Buffer.from([1, 2, 3]));
    await p.exec();
    c.disconnect();
  });
  afterAll(async () => {
    await Promise.all([src?.stop(), dst?.stop()]);
  });

  it("copies every key across pages with values and TTLs, then refuses to overwrite without REPLACE, naming the key", async () => {
    const r = await copyRedisKeys(src, dst, { dbs: [0], replace: false, batch: 1000 });
    expect(r.keys).toBe(6_003);
    expect(sameRedis(await redisFingerprint(dst, 0), await redisFingerprint(src, 0)).differences).toEqual([]);
    await expect(copyRedisKeys(src, dst, { dbs: [0], replace: false, batch: 1000 })).rejects.toThrow(/redis RESTORE of ".*" into db0 failed \(\d+ key\(s\) in all\): BUSYKEY/);
    const again = await copyRedisKeys(src, dst, { dbs: [0], replace: true, batch: 1000 });
    expect(again.keys).toBe(6_003);
  });

  it("copies only keys matching a pattern, with their values", async () => {
    const c = await connectRedis(dst, 3);
    await c.flushdb();
    c.disconnect();
    const s = await connectRedis(src, 3);
    await s.flushdb();
    await s.mset("session:1", "a", "session:2", "b", "other", "c");
    await s.hset("session:h", "user", "7", "ttl", "short");
    await s.pexpire("session:h", 3_600_000);
    s.disconnect();
    const r = await copyRedisKeys(src, dst, { dbs: [3], replace: false, pattern: "session:*" });
    expect(r.keys).toBe(3);
    const matching = Object.fromEntries(Object.entries(await redisFingerprint(src, 3)).filter(([k]) => Buffer.from(k, "base64").toString().startsWith("session:")));
    expect(Object.keys(matching)).toHaveLength(3);
    expect(sameRedis(await redisFingerprint(dst, 3), matching).differences).toEqual([]);
  });

  it("matches keys the way SCAN MATCH does", () => {
    expect(redisGlobToRegExp("session:*").test("session:42")).toBe(true);
    expect(redisGlobToRegExp("user:?").test("user:7")).toBe(true);
    expect(redisGlobToRegExp("user:?").test("user:77")).toBe(false);
    expect(redisGlobToRegExp("h[ae]llo").test("hello")).toBe(true);
    expect(redisGlobToRegExp("h[^e]llo").test("hello")).toBe(false);
    expect(redisGlobToRegExp("a\\*b").test("a*b")).toBe(true);
    expect(redisGlobToRegExp("a.b").test("axb")).toBe(false);
  });
});
