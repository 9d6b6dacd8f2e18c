/**
 * npm run bench [-- --scale] [--pg-scale 60 --keys 1000000 --objects 2000 --object-mib 400 --rounds 2]
 *
 * Seeds the bench data of issue 12 (pgbench -s 60 plus 50,000 incompressible
 * 4 KiB bytea rows, 1 M Redis keys, 2,000 objects / ~400 MiB), then times in
 * one run, on the same servers, backup-drill against the shell script a user
 * would otherwise write (bench/raw.ts):
 *   pg_dump compression table     none, gzip:1, gzip:3, gzip:6 (pg_dump's default): time and size
 *   backup (our defaults)         vs the raw tools at their defaults, one after another   target <= 0.6x, set <= 1.3x their size
 *   backup                        vs the raw tools at equal settings, side by side       target <= 1.05x
 *   verify                        GB/s of set data, formats included                     target >= 1 GB/s
 *   restore-drill (every check)   vs pg_restore + an RDB load + mc mirror back           target <= 1.3x; per-phase profile
 *   restore                       vs pg_restore + redis-cli --pipe of RESTOREs + mc mirror back
 *   incremental object backup     after 1 % of the objects changed, vs a full one        target <= 10 %
 *   peak RSS                      backup, verify, drill                                   target <= 256 MiB
 * With --scale, the same object and key backups, verify and drills at 100,000
 * objects and 10 M keys: time per object and per key against the small run
 * (target within 1.5x) and peak RSS. Rounds alternate ours and raw; the best
 * of each is compared. Prints a report; details in output/bench/results.json.
 * Not a test: numbers, not assertions.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { minioClient } from "../probes/minio.js";
import { humanBytes } from "../pipeline/report.js";
import { startRedis } from "../pipeline/throwaway/servers.js";
import { startSandboxServers, stopSandboxServers, type SandboxServers } from "../pipeline/sandbox.js";
import { makeTempDir } from "../pipeline/throwaway/process.js";
import { loadManifest, type Manifest } from "../pipeline/manifest.js";
import type { DrillSummary } from "../pipeline/drill-summary.js";
import { cli, cliJson, REPO, writeConfig, writeTargets } from "./cli.js";
import { compressionTable, conn, duBytes, rawBackup, rawRestore, restoreCommands, run, timed } from "./raw.js";
import { seed } from "./seed.js";
import { seedScale } from "./scale-seed.js";

const { values: opt } = parseArgs({
  options: {
    scale: { type: "boolean", default: false },
    "pg-scale": { type: "string", default: "60" },
    keys: { type: "string", default: "1000000" },
    objects: { type: "string", default: "2000" },
    "object-mib": { type: "string", default: "400" },
    rounds: { type: "string", default: "2" },
    "scale-keys": { type: "string", default: "10000000" },
    "scale-objects": { type: "string", default: "100000" },
  },
});
const DIMS = { scale: Number(opt["pg-scale"]), keys: Number(opt.keys), objects: Number(opt.objects), objectBytes: Number(opt["object-mib"]) * 1024 * 1024 };
const ROUNDS = Number(opt.rounds);
const OUT = join(REPO, "output/bench");
const say = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const fmt = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
const x = (r: number) => `${r.toFixed(2)}x`;
const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)} %`;
const DATABASES = ["bench", "postgres"];
const BUCKET = "bench-objects";

type BackupOut = { id: string; dir: string; serviceMs: Partial<Record<"postgres" | "redis" | "minio", number>> };

/** The sets' root and config for one kind of backup; each full-backup round gets a fresh root (no base set to link from). */
function backupEnv(s: SandboxServers, work: string, name: string, services: ("postgres" | "redis" | "minio")[]) {
  const root = join(work, name);
  const config = join(work, `${name}.json`);
  const env = writeConfig(s, config, root, services);
  return { root, config, env };
}

async function main(): Promise<void> {
  const work = makeTempDir("bench");
  mkdirSync(OUT, { recursive: true });
  const mcDir = join(work, "mc");
  const results: Record<string, unknown> = { params: { ...DIMS, rounds: ROUNDS, scale: opt.scale } };
  const report: string[] = [];
  const source = await startSandboxServers({});
  try {
    const t0 = performance.now();
    await seed(source, { ...DIMS, say });
    say(`seeded in ${fmt(performance.now() - t0)}`);
    const c = conn(source, mcDir);

    // --- backup: ours at its defaults, the raw tools at theirs and at ours ---------------------
    let ours = { ms: Infinity, peakRss: 0, id: "", dir: "", bytes: 0, jobs: 0, compression: "" };
    let rawDefaults: Record<string, number> = { wall: Infinity };
    let rawEqual: Record<string, number> = { wall: Infinity };
    let rawDefaultBytes = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const b = backupEnv(source, work, `full-${round}`, ["postgres", "redis", "minio"]);
      const r = await cliJson<BackupOut>(["backup", "--config", b.config], b.env);
      const m = await manifestOf(r.json.dir);
      const pg = m.services.postgres as { jobs?: number; compression?: string };
      say(`backup round ${round}: backup-drill ${fmt(r.ms)} (jobs ${pg.jobs}, ${pg.compression}), peak RSS ${humanBytes(r.peakRss)}`);
      if (r.ms < ours.ms) ours = { ...ours, ms: r.ms, id: r.json.id, dir: r.json.dir, bytes: m.totals.bytes, jobs: pg.jobs!, compression: pg.compression! };
      ours.peakRss = Math.max(ours.peakRss, r.peakRss);

      const rawDir = join(work, "raw-backup");
      const d = await rawBackup(c, rawDir, { databases: DATABASES, buckets: [BUCKET] }, { sideBySide: false });
      rawDefaultBytes = await duBytes(rawDir);
      say(`backup round ${round}: raw tools at their defaults ${fmt(d.wall!)} (${parts(d)}), ${humanBytes(rawDefaultBytes)}`);
      if (d.wall! < rawDefaults.wall!) rawDefaults = d;
      const e = await rawBackup(c, rawDir, { databases: DATABASES, buckets: [BUCKET] }, { jobs: ours.jobs, compression: ours.compression, sideBySide: true });
      say(`backup round ${round}: raw tools at equal settings ${fmt(e.wall!)} (${parts(e)})`);
      if (e.wall! < rawEqual.wall!) rawEqual = e;
      rmSync(rawDir, { recursive: true, force: true });
    }
    results.backup = { ours, rawDefaults, rawEqual, rawDefaultBytes };
    report.push(
      `backup:       ours ${fmt(ours.ms)} (jobs ${ours.jobs}, ${ours.compression}) vs raw tools at their defaults ${fmt(rawDefaults.wall!)} = ${x(ours.ms / rawDefaults.wall!)} (target <= 0.60x); set ${humanBytes(ours.bytes)} vs ${humanBytes(rawDefaultBytes)} = ${x(ours.bytes / rawDefaultBytes)} (target <= 1.30x)`,
      `              vs raw tools at equal settings, side by side ${fmt(rawEqual.wall!)} = ${x(ours.ms / rawEqual.wall!)} (target <= 1.05x)`,
    );

    // --- compression: the table behind the default ---------------------------------------------
    const table = await compressionTable(c, "bench", join(work, "ztable"), ours.jobs, ["none", "gzip:1", "gzip:3", "gzip:6"]);
    results.compression = table;
    const gzip6 = table.find((t) => t.compression === "gzip:6")!;
    report.push(`compression:  pg_dump -Fd -j${ours.jobs} of the bench database (${table.map((t) => `${t.compression} ${fmt(t.ms)} ${humanBytes(t.bytes)}`).join("; ")})`);
    for (const t of table) say(`compression ${t.compression}: ${fmt(t.ms)} ${humanBytes(t.bytes)} (time ${x(t.ms / gzip6.ms)}, size ${x(t.bytes / gzip6.bytes)} of gzip:6)`);

    // --- verify ------------------------------------------------------------------------------
    const fullCfg = backupEnv(source, work, "verify", ["postgres", "redis", "minio"]);
    const v = await cliJson<{ ok: boolean }>(["verify", "--output", join(ours.dir, ".."), "--set", ours.id, "--config", fullCfg.config], fullCfg.env);
    const hashAll = await timed(() => run("sh", ["-c", `find "$0" -type f -print0 | xargs -0 -P ${ours.jobs} -n 64 openssl dgst -sha256 > /dev/null`, ours.dir], {}));
    const gbps = ours.bytes / 1e9 / (v.ms / 1000);
    results.verify = { ms: v.ms, bytes: ours.bytes, gbPerSecond: gbps, opensslMs: hashAll.ms, peakRss: v.peakRss };
    say(`verify: ${fmt(v.ms)} for ${humanBytes(ours.bytes)}; openssl dgst -sha256, ${ours.jobs} at a time, ${fmt(hashAll.ms)}`);
    report.push(`verify:       ${fmt(v.ms)} for ${humanBytes(ours.bytes)} = ${gbps.toFixed(2)} GB/s (target >= 1 GB/s); openssl dgst -sha256 of every file, ${ours.jobs} at a time, ${fmt(hashAll.ms)} (${x(v.ms / hashAll.ms)})`);

    // --- restore-drill -----------------------------------------------------------------------
    let drill = { ms: Infinity, peakRss: 0, summary: undefined as DrillSummary | undefined };
    let rawDrill: Record<string, number> = { wall: Infinity };
    for (let round = 1; round <= ROUNDS; round++) {
      const r = await cliJson<DrillSummary>(["restore-drill", "--output", join(ours.dir, ".."), "--set", ours.id, "--config", fullCfg.config], fullCfg.env);
      if (!r.json.ok) throw new Error("bench: the drill failed a good set");
      say(`drill round ${round}: backup-drill ${fmt(r.ms)}, ${r.json.totals.checks} checks, peak RSS ${humanBytes(r.peakRss)}`);
      if (r.ms < drill.ms) drill = { ...drill, ms: r.ms, summary: r.json };
      drill.peakRss = Math.max(drill.peakRss, r.peakRss);
      const raw = await withServers((t) => rawRestore(ours.dir, { databases: DATABASES, buckets: [BUCKET] }, conn(t, mcDir), { jobs: ours.jobs, sideBySide: false, redis: "load-rdb" }));
      say(`drill round ${round}: raw restores ${fmt(raw.wall!)} (${parts(raw)})`);
      if (raw.wall! < rawDrill.wall!) rawDrill = raw;
    }
    const rawDrillSide = await withServers((t) => rawRestore(ours.dir, { databases: DATABASES, buckets: [BUCKET] }, conn(t, mcDir), { jobs: ours.jobs, sideBySide: true, redis: "load-rdb" }));
    results.drill = { ours: { ms: drill.ms, peakRss: drill.peakRss, profile: drillProfile(drill.summary!) }, raw: rawDrill, rawSideBySide: rawDrillSide };
    report.push(
      `restore-drill: ours ${fmt(drill.ms)} with ${drill.summary!.totals.checks} checks vs raw restores ${fmt(rawDrill.wall!)} (${parts(rawDrill)}) = ${x(drill.ms / rawDrill.wall!)} (target <= 1.30x); raw restores side by side ${fmt(rawDrillSide.wall!)} (${x(drill.ms / rawDrillSide.wall!)})`,
      ...profileLines(drill.summary!),
    );

    // --- restore into empty servers ----------------------------------------------------------
    const resp = join(work, "restore.resp");
    const respKeys = await restoreCommands(ours.dir, resp);
    const rawRest = await withServers((t) => rawRestore(ours.dir, { databases: DATABASES, buckets: [BUCKET] }, conn(t, mcDir), { jobs: ours.jobs, sideBySide: false, redis: { pipe: resp } }));
    const rest = await withServers(async (t) => {
      const targets = join(work, "targets.json");
      const tenv = writeTargets(t, targets);
      const r = await cli(["restore", "--output", join(ours.dir, ".."), "--set", ours.id, "--config", fullCfg.config, "--target-config", targets, "--force", "--json"], { ...fullCfg.env, ...tenv });
      if (r.code !== 0) throw new Error(`restore exited ${r.code}: ${r.stderr.slice(-2000)}`);
      return r;
    });
    const keyCopy = await redisKeyCopy(ours, fullCfg);
    results.restore = { ms: rest.ms, peakRss: rest.peakRss, raw: rawRest, redisKeysPerSecondAlone: keyCopy, respKeys };
    report.push(
      `restore:      ours ${fmt(rest.ms)} vs raw ${fmt(rawRest.wall!)} (${parts(rawRest)}; redis-cli --pipe ${Math.round(respKeys / (rawRest.redis! / 1000))} keys/s) = ${x(rest.ms / rawRest.wall!)}; Redis key copy alone ${Math.round(keyCopy)} keys/s`,
    );

    // --- objects and keys alone; incremental after 1 % changed -------------------------------
    const small = await perUnit(source, work, "small", DIMS.objects, DIMS.keys);
    const changed = Math.max(1, Math.round(DIMS.objects / 100));
    await changeObjects(source, changed, DIMS);
    const inc = await cliJson<BackupOut>(["backup", "--config", small.minioConfig.config], small.minioConfig.env);
    const incBucket = (await manifestOf(inc.json.dir)).services.minio!.buckets.find((b) => b.name === BUCKET)!;
    const incPhase = inc.json.serviceMs.minio!;
    results.incremental = { fullMs: small.figures.objectsMs, fullPhaseMs: small.figures.objectsPhaseMs, incrementalMs: inc.ms, incrementalPhaseMs: incPhase, changed, peakRss: inc.peakRss, transfer: incBucket.transfer };
    results.small = small.figures;
    say(`incremental: ${fmt(inc.ms)} after ${changed} of ${DIMS.objects} objects changed (${JSON.stringify(incBucket.transfer)})`);
    report.push(
      `incremental:  object backup after ${changed} of ${DIMS.objects} objects (1 %) changed: the object phase ${fmt(incPhase)} vs a full one's ${fmt(small.figures.objectsPhaseMs)} = ${pct(incPhase, small.figures.objectsPhaseMs)} (target <= 10 %); ` +
        `the whole command (node start, preflight, seal, retention) ${fmt(inc.ms)} vs ${fmt(small.figures.objectsMs)} = ${pct(inc.ms, small.figures.objectsMs)}; ` +
        `linked ${incBucket.transfer?.linked.objects ?? 0}, copied ${incBucket.transfer?.copied.objects ?? 0}, fetched ${incBucket.transfer?.fetched.objects ?? 0}`,
    );
    const smallPeak = Math.max(ours.peakRss, v.peakRss, drill.peakRss, rest.peakRss, inc.peakRss, small.figures.peakRss);
    report.push(`peak RSS:     ${humanBytes(smallPeak)} (backup ${humanBytes(ours.peakRss)}, verify ${humanBytes(v.peakRss)}, drill ${humanBytes(drill.peakRss)}, restore ${humanBytes(rest.peakRss)}) (target <= 256 MiB)`);
    report.push(`per unit:     ${perUnitLine(small.figures)}`);
  } finally {
    await stopSandboxServers(source);
  }

  // --- scale: 100,000 objects and 10 M keys --------------------------------------------------
  if (opt.scale) {
    const big = await startSandboxServers({});
    try {
      const objects = Number(opt["scale-objects"]);
      const keys = Number(opt["scale-keys"]);
      const t0 = performance.now();
      await seedScale(big, { objects, keys, bucket: BUCKET, work, say });
      say(`scale: seeded in ${fmt(performance.now() - t0)}`);
      const scaled = await perUnit(big, work, "scale", objects, keys);
      results.scale = scaled.figures;
      const small = results.small as PerUnit;
      report.push(
        `scale:        ${perUnitLine(scaled.figures)}`,
        `              per object ${x(scaled.figures.msPerObject / small.msPerObject)} and per key ${x(scaled.figures.msPerKey / small.msPerKey)} of the small run (target <= 1.50x); peak RSS ${humanBytes(scaled.figures.peakRss)} (target <= 256 MiB)`,
      );
    } finally {
      await stopSandboxServers(big);
    }
  }
  rmSync(work, { recursive: true, force: true });
  writeFileSync(join(OUT, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${report.join("\n")}\ndetails: ${join(OUT, "results.json")}\n`);
}

type PerUnit = {
  objects: number;
  keys: number;
  /** The backup command's wall time, and its object (Redis) phase alone. */
  objectsMs: number;
  objectsPhaseMs: number;
  keysMs: number;
  keysPhaseMs: number;
  /** Per unit, from the phase times (the fixed cost of a command is not per object). */
  msPerObject: number;
  msPerKey: number;
  peakRss: number;
  rss: Record<string, number>;
  drillMs: Record<string, number>;
};

/**
 * Objects alone and keys alone: a backup of each (time per object, per key),
 * its verify and its drill (peak RSS of every command).
 */
async function perUnit(s: SandboxServers, work: string, name: string, objects: number, keys: number) {
  const minioConfig = backupEnv(s, work, `${name}-objects`, ["minio"]);
  const redisConfig = backupEnv(s, work, `${name}-keys`, ["redis"]);
  const rss: Record<string, number> = {};
  const drillMs: Record<string, number> = {};
  const timesMs: Record<string, number> = {};
  const phaseMs: Record<string, number> = {};
  for (const [kind, b] of [["objects", minioConfig], ["keys", redisConfig]] as const) {
    const backup = await cliJson<BackupOut>(["backup", "--config", b.config], b.env);
    timesMs[kind] = backup.ms;
    phaseMs[kind] = backup.json.serviceMs[kind === "objects" ? "minio" : "redis"]!;
    say(`${name}: backup of the ${kind} alone ${fmt(backup.ms)} (its phase ${fmt(phaseMs[kind]!)}), peak RSS ${humanBytes(backup.peakRss)}`);
    const verify = await cliJson<{ ok: boolean }>(["verify", "--config", b.config, "--set", backup.json.id], b.env);
    const drill = await cliJson<DrillSummary>(["restore-drill", "--config", b.config, "--set", backup.json.id], b.env);
    if (!drill.json.ok) throw new Error(`bench: the ${name} drill of the ${kind} failed a good set`);
    say(`${name}: verify ${fmt(verify.ms)} (peak RSS ${humanBytes(verify.peakRss)}), drill ${fmt(drill.ms)} (peak RSS ${humanBytes(drill.peakRss)})`);
    Object.assign(rss, { [`backup ${kind}`]: backup.peakRss, [`verify ${kind}`]: verify.peakRss, [`drill ${kind}`]: drill.peakRss });
    drillMs[kind] = drill.ms;
  }
  const figures: PerUnit = {
    objects,
    keys,
    objectsMs: timesMs.objects!,
    objectsPhaseMs: phaseMs.objects!,
    keysMs: timesMs.keys!,
    keysPhaseMs: phaseMs.keys!,
    msPerObject: phaseMs.objects! / objects,
    msPerKey: phaseMs.keys! / keys,
    peakRss: Math.max(...Object.values(rss)),
    rss,
    drillMs,
  };
  return { figures, minioConfig };
}

function perUnitLine(f: PerUnit): string {
  return (
    `${f.objects} objects: object phase ${fmt(f.objectsPhaseMs)} (${(f.msPerObject * 1000).toFixed(0)} µs/object; the command ${fmt(f.objectsMs)}), ` +
    `${f.keys} keys: Redis phase ${fmt(f.keysPhaseMs)} (${(f.msPerKey * 1000).toFixed(2)} µs/key; the command ${fmt(f.keysMs)}); ` +
    `drills ${fmt(f.drillMs.objects!)} and ${fmt(f.drillMs.keys!)}; peak RSS ${Object.entries(f.rss).map(([k, v]) => `${k} ${humanBytes(v)}`).join(", ")}`
  );
}

/** Rewrite `n` of the small objects with new bytes of the same size (a changed ETag and sha256). */
async function changeObjects(s: SandboxServers, n: number, dims: { objects: number; objectBytes: number }): Promise<void> {
  const client = minioClient({ endpoint: s.minio.endpoint, accessKey: s.minio.accessKey, secretKey: s.minio.secretKey, region: "us-east-1" });
  const smallBytes = Math.floor((dims.objectBytes * 0.5) / (dims.objects - 8));
  for (let i = 8; i < 8 + n; i++) {
    const body = randomBytes(smallBytes);
    await client.putObject(BUCKET, `small/${i % 50}/obj-${i}.json`, body, body.length, { "Content-Type": "application/json" });
  }
}

/** The key copy of `restore --services redis` alone into an empty Redis: keys per second as the CLI reports them. */
async function redisKeyCopy(set: { id: string; dir: string }, cfg: { config: string; env: Record<string, string> }): Promise<number> {
  const redis = await startRedis({ tools: {} });
  try {
    const r = await cli(
      ["restore", "--output", join(set.dir, ".."), "--config", cfg.config, "--set", set.id, "--services", "redis", "--target-redis-host", redis.host, "--target-redis-port", String(redis.port), "--target-redis-password", "env:TGT_REDIS", "--json"],
      { ...cfg.env, TGT_REDIS: redis.password.reveal() },
    );
    if (r.code !== 0) throw new Error(`redis restore exited ${r.code}: ${r.stderr.slice(-2000)}`);
    const m = /redis: (\d+) keys copied in ([\d.]+)s/.exec(r.stderr);
    return m ? Number(m[1]) / Number(m[2]) : 0;
  } finally {
    await redis.stop();
  }
}

async function withServers<T>(fn: (s: SandboxServers) => Promise<T>): Promise<T> {
  const s = await startSandboxServers({});
  try {
    return await fn(s);
  } finally {
    await stopSandboxServers(s);
  }
}

async function manifestOf(dir: string): Promise<Manifest> {
  return (await loadManifest(dir)).manifest;
}

function parts(t: Record<string, number>): string {
  return Object.entries(t)
    .filter(([k]) => k !== "wall")
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(", ");
}

function drillProfile(s: DrillSummary) {
  return { drill: s.profile, services: Object.fromEntries(Object.entries(s.services).map(([k, v]) => [k, v?.profile])) };
}

/** The drill's per-phase profile, one line per service. */
function profileLines(s: DrillSummary): string[] {
  const lines = [`  profile:    verify ${fmt(s.profile?.verifyMs ?? 0)}, wall ${fmt(s.profile?.wallMs ?? 0)}`];
  for (const [name, svc] of Object.entries(s.services)) {
    const p = svc?.profile;
    if (!p) continue;
    const checks = Object.entries(p.checks)
      .map(([k, c]) => `${k} ${c.count}x ${fmt(c.ms)}`)
      .join(", ");
    lines.push(`    ${name.padEnd(9)} server start ${p.serverStartMs === undefined ? "-" : fmt(p.serverStartMs)}, restore ${fmt(p.restoreMs)}, checks ${fmt(p.checksMs)} (${checks})`);
  }
  return lines;
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});

