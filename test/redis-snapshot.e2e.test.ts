/**
 * Redis under live writes: the expectations the drill checks are read from
 * the very dump.rdb in the set, so a backup taken while clients write
 * thousands of keys per second still drills clean; a set holding another
 * snapshot than the one its expectations describe still fails.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { connectRedis, parseInfo } from "../probes/redis.js";
import { backupSet } from "../pipeline/backup.js";
import type { Config } from "../pipeline/config.js";
import { hashFile } from "../pipeline/hash.js";
import { ManifestSchema, writeManifest } from "../pipeline/manifest.js";
import { silentProgress } from "../pipeline/progress.js";
import { seedRedis } from "../pipeline/seed.js";
import { startRedis, type RedisServer } from "../pipeline/throwaway/servers.js";
import { runCli } from "./cli.js";
import { requireTools, useTempDir } from "./services/index.js";

const tmp = useTempDir("redis-snapshot");

/** How many backup + drill rounds under the writer (BACKUP_DRILL_WRITER_RUNS=10 for the full proof). */
const RUNS = Number(process.env.BACKUP_DRILL_WRITER_RUNS ?? 2);
const WRITES_PER_SECOND = 5_000;

/**
 * A client writing about `rate` commands per second in pipelined ticks of
 * 10 ms: new keys (the keyspace grows), overwrites of seeded keys the sample
 * holds (session:*), and deletes.
 */
let n = 0; // across writers: every run writes new keys

function startWriter(client: Redis, rate: number): { stop(): Promise<{ writes: number; seconds: number }> } {
  const started = Date.now();
  let writes = 0;
  let inFlight: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    const p = client.pipeline();
    const per = Math.round(rate / 100);
    for (let i = 0; i < per; i++, n++) {
      if (n % 20 === 0) p.del(`w:${(n * 7919) % 400_000}`);
      else if (n % 7 === 0) p.set(`session:${n % 300}`, `rewritten-${n}`);
      else p.set(`w:${(n * 104_729) % 2_000_000}`, `v${n}`);
    }
    inFlight = p.exec().then((r) => (writes += r?.length ?? 0));
  }, 10);
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
      return { writes, seconds: (Date.now() - started) / 1000 };
    },
  };
}

async function forks(client: Redis): Promise<number> {
  return Number(parseInfo(await client.info("stats")).total_forks);
}

describe("Redis: one snapshot per backup, expectations read from it", () => {
  let source: RedisServer;
  let admin: Redis;
  let writerClient: Redis;
  let output: string;
  let config: string;
  let env: Record<string, string>;
  const sets: string[] = [];

  beforeAll(async () => {
    requireTools();
    // Redis's own default: a replica's (redis-cli --rdb's) snapshot is taken 5 s after it asks.
    source = await startRedis({ tools: {}, config: ["repl-diskless-sync-delay 5"] });
    await seedRedis(source);
    admin = await connectRedis(source);
    writerClient = await connectRedis(source);
    output = join(tmp(), "out");
    config = join(tmp(), "redis-only.json");
    writeFileSync(config, JSON.stringify({ output, redis: { host: source.host, port: source.port, password: "env:WRITER_TEST_REDIS_PW" } }));
    env = { WRITER_TEST_REDIS_PW: source.password.reveal() };
  });
  afterAll(async () => {
    admin?.disconnect();
    writerClient?.disconnect();
    await source?.stop();
  });

  it(`under a writer aiming at ${WRITES_PER_SECOND} writes/s (at least 3,000 measured), ${RUNS} consecutive backup + restore-drill runs all pass, each with one fork of the source`, async () => {
    const report: string[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const forksBefore = await forks(admin);
      const writer = startWriter(writerClient, WRITES_PER_SECOND);
      const t0 = Date.now();
      const backup = await runCli(["backup", "--config", config, "--json", "--quiet"], { env });
      const load = await writer.stop();
      const backupMs = Date.now() - t0;
      expect(backup.code, backup.stderr).toBe(0);
      const rate = load.writes / load.seconds;
      expect(rate, "the writer kept up its rate during the backup").toBeGreaterThan(3_000);
      const forksAfter = await forks(admin);
      const id = JSON.parse(backup.stdout).id as string;
      sets.push(id);

      const t1 = Date.now();
      const drill = await runCli(["restore-drill", "--config", config, "--set", id, "--json", "--quiet"], { env });
      expect(drill.code, drill.stdout + drill.stderr).toBe(0);
      const summary = JSON.parse(drill.stdout);
      expect(summary.ok).toBe(true);

      expect(forksAfter, "one snapshot (the SYNC's fork), no BGSAVE").toBe(forksBefore + 1);
      const m = ManifestSchema.parse(JSON.parse(readFileSync(join(output, id, "manifest.json"), "utf8")));
      const r = m.services.redis!;
      expect(r.bgsave).toBeUndefined();
      expect(r.snapshot?.describedWith).toMatch(/^redis-server \d+\.\d+/);
      expect(r.live!.drift.some((d) => d.keys !== 0), "the keyspace moved between the request and the snapshot: the writer was writing").toBe(true);
      const keys = r.keyspace.reduce((a, k) => a + k.keys, 0);
      report.push(
        `run ${run}: ${Math.round(rate)} writes/s during backup (${backupMs} ms), snapshot ${keys} keys, live drift ${r.live!.drift.map((d) => `db${d.db} ${d.keys >= 0 ? "+" : ""}${d.keys}`).join(" ")}, ` +
          `${r.sample.length} sampled, drill ${summary.totals.passed}/${summary.totals.checks} passed (${Date.now() - t1} ms)`,
      );
    }
    console.log(`redis under writes:\n${report.join("\n")}`);
  });

  it("a set whose dump.rdb is another snapshot (checksums resealed, so verify passes) still fails the drill", async () => {
    expect(sets.length).toBeGreaterThanOrEqual(2);
    const [first, last] = [sets[0]!, sets[sets.length - 1]!];
    const root = join(tmp(), "swapped");
    mkdirSync(root, { recursive: true });
    const dir = join(root, first);
    cpSync(join(output, first), dir, { recursive: true });
    cpSync(join(output, last, "redis/dump.rdb"), join(dir, "redis/dump.rdb"));
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
    for (const f of manifest.files) Object.assign(f, await hashFile(join(dir, f.path)));
    await writeManifest(dir, manifest);
    writeFileSync(join(root, "latest.json"), JSON.stringify({ id: first, path: dir, completedAt: manifest.finishedAt, manifestSha256: "0".repeat(64) }));

    const verify = await runCli(["verify", "--output", root, "--set", first]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const drill = await runCli(["restore-drill", "--config", config, "--output", root, "--set", first, "--quiet"], { env });
    expect(drill.code, drill.stdout + drill.stderr).toBe(3);
    expect(drill.stdout).toMatch(/FAIL redis (keyspace db0|key-values db0)/);
  });

  it("samples every db with at least min(its keys, 100) keys on top of the configured total", async () => {
    const small = await startRedis({ tools: {} });
    try {
      const fill = async (db: number, n: number) => {
        const c = await connectRedis(small, db);
        const p = c.pipeline();
        for (let i = 0; i < n; i++) p.set(`k:${db}:${i}`, `v${i}`);
        await p.exec();
        c.disconnect();
      };
      await fill(0, 20_000);
      await fill(5, 503);
      await fill(6, 17);
      const cfg: Config = {
        source: "test",
        output: join(tmp(), "floor"),
        tools: {},
        redis: { host: small.host, port: small.port, password: small.password, bgsaveTimeoutMs: 60_000, sampleSize: 1000, samplePatterns: [] },
      };
      const r = await backupSet(cfg, { progress: silentProgress });
      const perDb = (db: number) => r.manifest.services.redis!.sample.filter((s) => s.db === db).length;
      expect(perDb(5)).toBeGreaterThanOrEqual(100);
      expect(perDb(6)).toBe(17);
      expect(perDb(0)).toBeGreaterThanOrEqual(950); // the proportional share of the configured 1,000
    } finally {
      await small.stop();
    }
  });
});
