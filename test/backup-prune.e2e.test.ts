/**
 * Bounded retention inside `backup`: a successful backup prunes with the
 * configured policy; a failed one (before or after staging) never does.
 * Uses one real throwaway Redis; the older sets are constructed.
 */
import { createServer } from "node:net";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis } from "../probes/redis.js";
import { startRedis, type RedisServer } from "../pipeline/throwaway/servers.js";
import { runCli } from "./cli.js";
import { writeDrill, writeLatest, writePartial, writeSet, type BuiltSet } from "./fixtures/sets.js";
import { requireTools, useTempDir } from "./services/index.js";

const tmp = useTempDir("backup-prune");
const H = 3_600_000;
const D = 24 * H;
const ago = (ms: number) => new Date(Date.now() - ms);
const AGGRESSIVE = { keepLast: 1, partialGrace: "1h" };

let redis: RedisServer;
beforeAll(async () => {
  requireTools();
  redis = await startRedis({ tools: {} });
  const c = await connectRedis(redis);
  for (let i = 0; i < 100; i++) await c.set(`key:${i}`, `value ${i}`);
  c.disconnect();
});
afterAll(async () => {
  await redis?.stop();
});

let n = 0;
/** Five older sets (the oldest with a passing drill), an expired partial, latest.json on the newest. */
async function history(): Promise<{ root: string; sets: BuiltSet[] }> {
  const root = join(tmp(), `r${++n}`, "backups");
  mkdirSync(root, { recursive: true });
  const sets: BuiltSet[] = [];
  for (let day = 5; day >= 1; day--) sets.push(await writeSet(root, { time: ago(day * D), services: { redis: 500 } }));
  await writeDrill(sets[0]!, { finishedAt: ago(5 * D - H), services: { redis: true } });
  writePartial(root, ago(3 * D + H));
  writeLatest(root, sets[4]!);
  return { root, sets };
}

function config(root: string, redisSection: Record<string, unknown>): string {
  const path = join(root, "..", `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ output: root, redis: redisSection, retention: AGGRESSIVE }));
  return path;
}

const tree = (root: string) => readdirSync(root).sort();

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, "127.0.0.1", res));
  const port = (s.address() as { port: number }).port;
  await new Promise((res) => s.close(res));
  return port;
}

describe("backup prunes after a successful promote, and only then", () => {
  it("a backup that fails (Redis on a closed port) leaves every old set and partial in place", async () => {
    const { root } = await history();
    const before = tree(root);
    const cfg = config(root, { host: "127.0.0.1", port: await closedPort() });
    const r = await runCli(["backup", "--config", cfg, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { message: expect.stringMatching(/ECONNREFUSED/) } });
    expect(tree(root)).toEqual(before);
  });

  it("a backup that fails after staging (snapshot timeout) leaves every old set and partial in place", async () => {
    const { root } = await history();
    const before = tree(root);
    const c = await connectRedis(redis);
    try {
      await c.config("SET", "rdb-key-save-delay", "30000"); // 30ms a key: ~3s for the snapshot
      const cfg = config(root, { host: redis.host, port: redis.port, password: "env:PRUNE_TEST_REDIS_PW", bgsaveTimeout: "1s" });
      const r = await runCli(["backup", "--config", cfg], { env: { PRUNE_TEST_REDIS_PW: redis.password.reveal() } });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/redis snapshot: not complete within 1s \(redis\.bgsaveTimeout\)/);
      expect(r.stderr).not.toMatch(/prune: removed|prune after backup/);
    } finally {
      await c.config("SET", "rdb-key-save-delay", "0");
      c.disconnect();
    }
    expect(tree(root)).toEqual(before);
  });

  it("a successful backup prunes: keepLast 1 leaves the new set and the newest drilled one; the expired partial goes", async () => {
    const { root, sets } = await history();
    const cfg = config(root, { host: redis.host, port: redis.port, password: "env:PRUNE_TEST_REDIS_PW", bgsaveTimeout: "60s" });
    const r = await runCli(["backup", "--config", cfg, "--json"], { env: { PRUNE_TEST_REDIS_PW: redis.password.reveal() } });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.prune, JSON.stringify(doc.prune)).toMatchObject({ ok: true, kept: 2 });
    const removed: string[] = doc.prune.removed;
    expect(removed.filter((x) => !x.startsWith(".partial-")).sort()).toEqual(sets.slice(1).map((s) => s.id).sort());
    expect(removed.filter((x) => x.startsWith(".partial-"))).toHaveLength(1);
    expect(tree(root)).toEqual([sets[0]!.id, doc.id, "latest.json"].sort());
  });
});
