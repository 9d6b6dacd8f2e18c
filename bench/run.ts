/**
 * npm run bench [-- --scale 60 --keys 1000000 --objects 2000 --object-mib 400 --rounds 2]
 *
 * Seeds about 1 GiB of PostgreSQL (pgbench -i -s 60 plus a bytea/jsonb table),
 * about 1 M Redis keys and about 2,000 objects (~400 MiB, a few large), then in
 * the same run times, against the raw tools on the same data:
 *   backup        vs pg_dump -Fd -j2 + redis-cli --rdb + mc mirror       target <= 1.10x, peak RSS <= 256 MiB
 *   restore-drill vs pg_restore -j2 + redis-server loading the RDB + mc mirror back   target <= 1.15x
 *   restore       vs pg_restore -j2 + redis-cli --pipe of RESTORE commands + mc mirror back
 *                                                                         target <= 1.20x, Redis >= 100k keys/s
 * Rounds alternate raw and ours; the best of each is compared. Results go to
 * stdout and output/bench/results.json. Not a test: numbers, not assertions.
 */
import { execFile, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { connectRedis } from "../probes/redis.js";
import { REDIS_RDB } from "../pipeline/plan.js";
import { humanBytes } from "../pipeline/report.js";
import { startRedis } from "../pipeline/throwaway/servers.js";
import { startSandboxServers, stopSandboxServers, type SandboxServers } from "../pipeline/sandbox.js";
import { resolveTool } from "../pipeline/tools.js";
import { seed } from "./seed.js";
import { makeTempDir } from "../pipeline/throwaway/process.js";

const execFileAsync = promisify(execFile);
const { values: opt } = parseArgs({
  options: {
    scale: { type: "string", default: "60" },
    keys: { type: "string", default: "1000000" },
    objects: { type: "string", default: "2000" },
    "object-mib": { type: "string", default: "400" },
    rounds: { type: "string", default: "2" },
  },
});
const SCALE = Number(opt.scale);
const KEYS = Number(opt.keys);
const OBJECTS = Number(opt.objects);
const OBJECT_BYTES = Number(opt["object-mib"]) * 1024 * 1024;
const ROUNDS = Number(opt.rounds);
const REPO = resolve(new URL("..", import.meta.url).pathname);
const OUT = join(REPO, "output/bench");
const say = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

async function run(bin: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<void> {
  try {
    await execFileAsync(bin, args, { env: { ...process.env, ...env }, cwd, maxBuffer: 256 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`${bin} ${args.join(" ")}: ${(err as { stderr?: string }).stderr?.slice(-500) ?? (err as Error).message}`);
  }
}

/** Run the CLI; returns wall time, exit code, stderr and the node process's peak RSS (VmHWM). */
function cli(args: string[], env: Record<string, string>): Promise<{ ms: number; code: number | null; stderr: string; stdout: string; peakRss: number }> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(REPO, "bin/backup-drill.js"), ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    let peakRss = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
      } catch {
        // exited
      }
    }, 50);
    child.on("close", (code) => {
      clearInterval(poll);
      done({ ms: performance.now() - t0, code, stderr, stdout, peakRss });
    });
  });
}

// ---------------------------------------------------------------------------
// Raw tools
// ---------------------------------------------------------------------------

type Conn = { pgHost: string; pgPort: number; pgEnv: NodeJS.ProcessEnv; redisArgs: string[]; redisEnv: NodeJS.ProcessEnv; mcEnv: NodeJS.ProcessEnv };

function conn(s: SandboxServers, mcConfigDir: string): Conn {
  const url = new URL(s.minio.endpoint);
  url.username = encodeURIComponent(s.minio.accessKey.reveal());
  url.password = encodeURIComponent(s.minio.secretKey.reveal());
  return {
    pgHost: s.postgres.host,
    pgPort: s.postgres.port,
    pgEnv: { PGPASSWORD: s.postgres.password.reveal() },
    redisArgs: ["-h", s.redis.host, "-p", String(s.redis.port)],
    redisEnv: { REDISCLI_AUTH: s.redis.password.reveal() },
    mcEnv: { MC_HOST_b: url.toString().replace(/\/$/, ""), MC_CONFIG_DIR: mcConfigDir },
  };
}

async function rawBackup(c: Conn, dir: string, databases: string[], buckets: string[]): Promise<Record<string, number>> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t: Record<string, number> = {};
  t.postgres = (await timed(async () => {
    for (const db of databases) await run(resolveTool("pg_dump"), ["-Fd", "-j2", "-h", c.pgHost, "-p", String(c.pgPort), "-U", "postgres", "-f", join(dir, db), db], c.pgEnv);
  })).ms;
  t.redis = (await timed(() => run(resolveTool("redis-cli"), [...c.redisArgs, "--no-auth-warning", "--rdb", join(dir, "dump.rdb")], c.redisEnv))).ms;
  t.minio = (await timed(async () => {
    for (const b of buckets) await run(resolveTool("mc"), ["mirror", "--quiet", `b/${b}`, join(dir, "minio", b)], c.mcEnv);
  })).ms;
  return t;
}

/** Restore a set with the raw tools into the given (empty) servers. */
async function rawRestore(setDir: string, databases: string[], buckets: string[], c: Conn, redisMode: "load-rdb" | "pipe", respFile?: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  out.postgres = (await timed(async () => {
    for (const db of databases) {
      await run(resolveTool("pg_restore"), ["-j2", "--create", "--clean", "--if-exists", "-h", c.pgHost, "-p", String(c.pgPort), "-U", "postgres", "-d", "template1", join(setDir, "postgres", db)], c.pgEnv);
    }
  })).ms;
  if (redisMode === "load-rdb") {
    const r = await timed(() => startRedis({ tools: {}, rdb: join(setDir, REDIS_RDB) }));
    out.redis = r.ms;
    await r.value.stop();
  } else {
    out.redis = (await timed(() => run("sh", ["-c", `${resolveTool("redis-cli")} ${c.redisArgs.join(" ")} --no-auth-warning --pipe < ${respFile}`], c.redisEnv))).ms;
  }
  out.minio = (await timed(async () => {
    for (const b of buckets) {
      await run(resolveTool("mc"), ["mb", "--ignore-existing", `b/${b}`], c.mcEnv);
      await run(resolveTool("mc"), ["mirror", "--quiet", join(setDir, "minio", b), `b/${b}`], c.mcEnv);
    }
  })).ms;
  return out;
}

/** RESTORE commands for every key of the set's RDB, as redis-cli --pipe input (built untimed). */
async function restoreCommands(setDir: string, file: string): Promise<number> {
  const loaded = await startRedis({ tools: {}, rdb: join(setDir, REDIS_RDB) });
  const out = createWriteStream(file);
  const bulk = (b: Buffer | string) => {
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b);
    return Buffer.concat([Buffer.from(`$${buf.length}\r\n`), buf, Buffer.from("\r\n")]);
  };
  let n = 0;
  try {
    const c = await connectRedis(loaded, 0);
    let cursor = "0";
    do {
      const [next, keys] = (await c.callBuffer("SCAN", cursor, "COUNT", "1000")) as [Buffer, Buffer[]];
      cursor = next.toString();
      const p = c.pipeline();
      for (const k of keys) {
        p.callBuffer("DUMP", k);
        p.pttl(k);
      }
      const res = (await p.exec()) ?? [];
      const chunks: Buffer[] = [];
      keys.forEach((k, i) => {
        const payload = res[2 * i]![1] as Buffer;
        const ttl = Math.max(0, Number(res[2 * i + 1]![1]));
        chunks.push(Buffer.from("*4\r\n"), bulk("RESTORE"), bulk(k), bulk(String(ttl)), bulk(payload));
        n++;
      });
      if (!out.write(Buffer.concat(chunks))) await new Promise<void>((r) => out.once("drain", () => r()));
    } while (cursor !== "0");
    c.disconnect();
  } finally {
    await new Promise<void>((r) => out.end(() => r()));
    await loaded.stop();
  }
  return n;
}

function configFor(s: SandboxServers, output: string, file: string): Record<string, string> {
  writeFileSync(
    file,
    JSON.stringify({
      output,
      postgres: { host: s.postgres.host, port: s.postgres.port, password: "env:BENCH_PG", jobs: 2 },
      redis: { host: s.redis.host, port: s.redis.port, password: "env:BENCH_REDIS", sampleSize: 1000 },
      minio: { endpoint: s.minio.endpoint, accessKey: "env:BENCH_MINIO_AK", secretKey: "env:BENCH_MINIO_SK" },
    }),
  );
  return {
    BENCH_PG: s.postgres.password.reveal(),
    BENCH_REDIS: s.redis.password.reveal(),
    BENCH_MINIO_AK: s.minio.accessKey.reveal(),
    BENCH_MINIO_SK: s.minio.secretKey.reveal(),
  };
}

function targetsFile(s: SandboxServers, file: string): Record<string, string> {
  writeFileSync(
    file,
    JSON.stringify({
      postgres: { host: s.postgres.host, port: s.postgres.port, password: "env:TGT_PG" },
      redis: { host: s.redis.host, port: s.redis.port, password: "env:TGT_REDIS" },
      minio: { endpoint: s.minio.endpoint, accessKey: "env:TGT_MINIO_AK", secretKey: "env:TGT_MINIO_SK" },
    }),
  );
  return { TGT_PG: s.postgres.password.reveal(), TGT_REDIS: s.redis.password.reveal(), TGT_MINIO_AK: s.minio.accessKey.reveal(), TGT_MINIO_SK: s.minio.secretKey.reveal() };
}

const sum = (t: Record<string, number>) => Object.values(t).reduce((a, b) => a + b, 0);
const fmt = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

async function main(): Promise<void> {
  const work = makeTempDir("bench");
  mkdirSync(OUT, { recursive: true });
  const output = join(work, "backups");
  const mcDir = join(work, "mc");
  const source = await startSandboxServers({});
  const results: Record<string, unknown> = { params: { scale: SCALE, keys: KEYS, objects: OBJECTS, objectBytes: OBJECT_BYTES, rounds: ROUNDS } };
  try {
    const t0 = performance.now();
    await seed(source, { scale: SCALE, keys: KEYS, objects: OBJECTS, objectBytes: OBJECT_BYTES, say });
    say(`seeded in ${fmt(performance.now() - t0)}`);
    const c = conn(source, mcDir);
    const env = configFor(source, output, join(work, "config.json"));
    const databases = ["bench", "postgres"];
    const buckets = ["bench-objects"];

    // --- backup ---------------------------------------------------------
    let rawBest = Infinity;
    let rawParts: Record<string, number> = {};
    let oursBest = Infinity;
    let peakRss = 0;
    let setId = "";
    for (let round = 1; round <= ROUNDS; round++) {
      const raw = await rawBackup(c, join(work, "raw-backup"), databases, buckets);
      say(`backup round ${round}: raw tools ${fmt(sum(raw))} (${Object.entries(raw).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")})`);
      if (sum(raw) < rawBest) [rawBest, rawParts] = [sum(raw), raw];
      const ours = await cli(["backup", "--config", join(work, "config.json"), "--json", "--quiet"], env);
      if (ours.code !== 0) throw new Error(`backup failed: ${ours.stderr}`);
      setId = JSON.parse(ours.stdout).id;
      say(`backup round ${round}: backup-drill ${fmt(ours.ms)}, peak RSS ${humanBytes(ours.peakRss)}`);
      oursBest = Math.min(oursBest, ours.ms);
      peakRss = Math.max(peakRss, ours.peakRss);
    }
    rmSync(join(work, "raw-backup"), { recursive: true, force: true });
    results.backup = { rawMs: rawBest, rawParts, oursMs: oursBest, ratio: oursBest / rawBest, peakRssBytes: peakRss, targets: { ratio: 1.1, peakRssBytes: 256 * 1024 * 1024 } };
    const setDir = join(output, setId);

    // --- restore drill ----------------------------------------------------
    let drillRaw = Infinity;
    let drillRawParts: Record<string, number> = {};
    let drillOurs = Infinity;
    let drillRto: Record<string, number> = {};
    for (let round = 1; round <= ROUNDS; round++) {
      const t = await startSandboxServers({});
      try {
        const raw = await rawRestore(setDir, databases, buckets, conn(t, mcDir), "load-rdb");
        say(`drill round ${round}: raw restore ${fmt(sum(raw))} (${Object.entries(raw).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")})`);
        if (sum(raw) < drillRaw) [drillRaw, drillRawParts] = [sum(raw), raw];
      } finally {
        await stopSandboxServers(t);
      }
      const ours = await cli(["restore-drill", "--config", join(work, "config.json"), "--set", setId, "--json", "--quiet"], env);
      if (ours.code !== 0) throw new Error(`drill failed (${ours.code}): ${ours.stderr}${ours.stdout.slice(0, 2000)}`);
      const summary = JSON.parse(ours.stdout);
      say(`drill round ${round}: backup-drill ${fmt(ours.ms)} (RTO postgres ${fmt(summary.services.postgres.restoreMs)}, redis ${fmt(summary.services.redis.restoreMs)}, minio ${fmt(summary.services.minio.restoreMs)})`);
      if (ours.ms < drillOurs) {
        drillOurs = ours.ms;
        drillRto = { postgres: summary.services.postgres.restoreMs, redis: summary.services.redis.restoreMs, minio: summary.services.minio.restoreMs };
      }
    }
    results.drill = { rawMs: drillRaw, rawParts: drillRawParts, oursMs: drillOurs, ratio: drillOurs / drillRaw, rtoMs: drillRto, target: 1.15 };

    // --- restore into real (empty) servers --------------------------------
    const resp = join(work, "restore.resp");
    const respKeys = await restoreCommands(setDir, resp);
    let restoreRaw = Infinity;
    let restoreRawParts: Record<string, number> = {};
    let restoreOurs = Infinity;
    let keysPerSecond = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const t = await startSandboxServers({});
      try {
        const raw = await rawRestore(setDir, databases, buckets, conn(t, mcDir), "pipe", resp);
        say(`restore round ${round}: raw ${fmt(sum(raw))} (${Object.entries(raw).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}; redis-cli --pipe ${Math.round(respKeys / (raw.redis! / 1000))} keys/s)`);
        if (sum(raw) < restoreRaw) [restoreRaw, restoreRawParts] = [sum(raw), raw];
      } finally {
        await stopSandboxServers(t);
      }
      const u = await startSandboxServers({});
      try {
        // The bench database is the only one the target lacks; "postgres" exists (empty) there.
        const tenv = targetsFile(u, join(work, "targets.json"));
        const ours = await cli(["restore", "--config", join(work, "config.json"), "--set", setId, "--target-config", join(work, "targets.json"), "--force", "--json"], { ...env, ...tenv });
        if (ours.code !== 0) throw new Error(`restore failed (${ours.code}): ${ours.stderr.slice(-3000)}`);
        const m = /redis: (\d+) keys copied in ([\d.]+)s/.exec(ours.stderr);
        const kps = m ? Number(m[1]) / Number(m[2]) : 0;
        say(`restore round ${round}: backup-drill ${fmt(ours.ms)} (redis key copy ${Math.round(kps)} keys/s)`);
        if (ours.ms < restoreOurs) [restoreOurs, keysPerSecond] = [ours.ms, kps];
      } finally {
        await stopSandboxServers(u);
      }
    }
    // The key copy alone (the other services restore side by side in a full restore and share the 2 cores).
    let keysPerSecondAlone = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const redis = await startRedis({ tools: {} });
      try {
        const ours = await cli(
          ["restore", "--config", join(work, "config.json"), "--set", setId, "--services", "redis", "--target-redis-host", redis.host, "--target-redis-port", String(redis.port), "--target-redis-password", "env:TGT_REDIS", "--json"],
          { ...env, TGT_REDIS: redis.password.reveal() },
        );
        if (ours.code !== 0) throw new Error(`redis restore failed (${ours.code}): ${ours.stderr.slice(-2000)}`);
        const m = /redis: (\d+) keys copied in ([\d.]+)s/.exec(ours.stderr);
        const kps = m ? Number(m[1]) / Number(m[2]) : 0;
        say(`restore round ${round}: redis alone, key copy ${Math.round(kps)} keys/s`);
        keysPerSecondAlone = Math.max(keysPerSecondAlone, kps);
      } finally {
        await redis.stop();
      }
    }
    results.restore = { rawMs: restoreRaw, rawParts: restoreRawParts, oursMs: restoreOurs, ratio: restoreOurs / restoreRaw, redisKeysPerSecond: keysPerSecond, redisKeysPerSecondAlone: keysPerSecondAlone, targets: { ratio: 1.2, redisKeysPerSecond: 100_000 } };
  } finally {
    await stopSandboxServers(source);
    rmSync(work, { recursive: true, force: true });
  }
  writeFileSync(join(OUT, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  const b = results.backup as { rawMs: number; oursMs: number; ratio: number; peakRssBytes: number };
  const d = results.drill as { rawMs: number; oursMs: number; ratio: number; rtoMs: Record<string, number> };
  const r = results.restore as { rawMs: number; oursMs: number; ratio: number; redisKeysPerSecond: number; redisKeysPerSecondAlone: number };
  process.stdout.write(
    [
      `backup:        ours ${fmt(b.oursMs)} vs raw tools ${fmt(b.rawMs)} = ${b.ratio.toFixed(2)}x (target <= 1.10x); peak RSS ${humanBytes(b.peakRssBytes)} (target <= 256 MiB)`,
      `restore-drill: ours ${fmt(d.oursMs)} vs raw restore ${fmt(d.rawMs)} = ${d.ratio.toFixed(2)}x (target <= 1.15x); RTO postgres ${fmt(d.rtoMs.postgres!)}, redis ${fmt(d.rtoMs.redis!)}, minio ${fmt(d.rtoMs.minio!)}`,
      `restore:       ours ${fmt(r.oursMs)} vs raw ${fmt(r.rawMs)} = ${r.ratio.toFixed(2)}x (target <= 1.20x); Redis key copy ${Math.round(r.redisKeysPerSecondAlone)} keys/s alone, ${Math.round(r.redisKeysPerSecond)} keys/s beside the other restores (target >= 100000)`,
      `details: ${join(OUT, "results.json")}`,
    ].join("\n") + "\n",
  );
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
