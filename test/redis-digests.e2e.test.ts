import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, digestKey, digestKeys } from "../probes/redis.js";
import { seedRedis } from "../pipeline/seed.js";
import { startRedis, type RedisServer } from "../pipeline/throwaway/servers.js";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis({ tools: {} });
  await seedRedis(redis);
});
afterAll(async () => {
  await redis?.stop();
});

describe("pipelined key digests", () => {
  it("digestKeys (two round trips per page) gives exactly digestKey's result for every key of every type, and for a missing key", async () => {
    for (const db of [0, 1]) {
      const c = await connectRedis(redis, db);
      try {
        const keys = ((await c.callBuffer("KEYS", "*")) as Buffer[]).concat([Buffer.from("no-such-key")]);
        expect(keys.length).toBeGreaterThan(1);
        const one: Awaited<ReturnType<typeof digestKey>>[] = [];
        for (const k of keys) one.push(await digestKey(c, k));
        // A small page size makes several pages, so page boundaries are exercised.
        const piped = await digestKeys(c, keys, 7);
        // TTLs count down between the two reads: same type and digest, TTL a little lower or equal.
        expect(piped.map((d) => [d.type, d.digest])).toEqual(one.map((d) => [d.type, d.digest]));
        piped.forEach((d, i) => {
          const before = one[i]!.ttlMs;
          if (before < 0) expect(d.ttlMs).toBe(before);
          else expect(before - d.ttlMs).toBeGreaterThanOrEqual(0), expect(before - d.ttlMs).toBeLessThan(10_000);
        });
        expect(new Set(one.map((d) => d.type)).size).toBeGreaterThan(db === 0 ? 4 : 1);
      } finally {
        c.disconnect();
      }
    }
  });
});
