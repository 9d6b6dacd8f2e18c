import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../pipeline/config.js";
import {
  ReplayRunner,
  drillFinish,
  drillGlobals,
  fetchAnswer,
  minioBackup,
  minioProbe,
  redisPrepare,
  sealSet,
  serveSnapshots,
  setPlan,
  verifyReplayed,
  type GlueAnswer,
  type PostgresSnapshotFacts,
  type StepRecord,
} from "../pipeline/dagger-glue.js";
import type { DrillSummary } from "../pipeline/drill-summary.js";
import { loadManifest } from "../pipeline/manifest.js";
import { planFormatChecks, planMinio, planPostgres, planPostgresRestore, planRedis, planSchemaDump, postgresLayout, REDIS_RDB } from "../pipeline/plan.js";
import { silentProgress } from "../pipeline/progress.js";
import { HostRunner, secretBagFromConfig } from "../pipeline/runners/host.js";
import { MC_ENV_SHIM } from "../pipeline/runners/dagger.js";
import { SANDBOX_SANITY_QUERIES, sandboxConfig } from "../pipeline/sandbox.js";
import { Secret } from "../pipeline/secret.js";
import type { Step } from "../pipeline/step.js";
import { setIdFor } from "../pipeline/store/ids.js";
import { freePort } from "../pipeline/throwaway/process.js";
import { startMinio, startPostgres, startRedis } from "../pipeline/throwaway/servers.js";
import { resolveTool } from "../pipeline/tools.js";
import { verifySet } from "../pipeline/verify.js";
import { useServers, useTempDir } from "./services/index.js";

/**
 * The glue phases of the Dagger runner against real servers, with HostRunner
 * standing in for the tool containers (same Steps, same argv). What an
 * engine adds on top — images, mounts, bindings — is covered by
 * dagger.graphql.test.ts; here the phases must compose into a set the host's
 * own verify accepts and a drill that passes.
 */

const servers = useServers();
const tmp = useTempDir("glue");
const execFileAsync = promisify(execFile);

const asRecord = (r: { id: string; service: Step["service"]; argv: string[]; exitCode: number; durationMs: number; stdout?: string }): StepRecord => ({ ...r });

describe("Dagger glue phases compose into a set the host verifies and drills", () => {
  let cfg: Config;
  let root: string;
  let id: string;
  let summary: DrillSummary;

  beforeAll(async () => {
    const s = servers();
    root = join(tmp(), "backups");
    cfg = sandboxConfig(s, root, {});
    const host = new HostRunner({ tools: {}, secrets: secretBagFromConfig(cfg), progress: silentProgress });
    const startedAt = new Date();
    id = setIdFor(startedAt);
    const staged = join(root, `.partial-${id}`);
    mkdirSync(staged, { recursive: true });
    const steps: StepRecord[] = [];
    try {
      // PostgreSQL: the snapshot service over HTTP, pg_dump --snapshot while it holds them.
      const port = await freePort();
      const held = await serveSnapshots(cfg, port, silentProgress, "127.0.0.1");
      let snap: PostgresSnapshotFacts;
      try {
        const answer = JSON.parse(await fetchAnswer(`http://127.0.0.1:${port}/`)) as GlueAnswer<PostgresSnapshotFacts>;
        if (!answer.ok) throw new Error(answer.message);
        snap = answer.value;
        const at = { host: cfg.postgres!.host, port: cfg.postgres!.port };
        const plan = [
          ...planPostgres(cfg.postgres!, { serverMajor: snap.serverMajor, databases: [] }, at),
          ...snap.databases.flatMap((d) => planPostgres({ ...cfg.postgres!, globals: false }, { serverMajor: snap.serverMajor, databases: [d.name], snapshots: { [d.name]: d.snapshot } }, at)),
        ];
        for (const step of plan) steps.push(asRecord(await host.run(step, staged)));
      } finally {
        await held.close();
      }
      // Redis: prepare, then the rdb steps.
      const prepared = await redisPrepare(cfg, silentProgress);
      for (const step of planRedis(cfg.redis!, { version: prepared.version }, { host: cfg.redis!.host, port: cfg.redis!.port })) steps.push(asRecord(await host.run(step, staged)));
      // MinIO: probe, mirror what may be mirrored, then backupMinio with the mirror replayed.
      const probe = await minioProbe(cfg, silentProgress);
      expect(probe.buckets.map((b) => b.name)).toEqual(["assets", "logs"]);
      expect(probe.buckets.find((b) => b.name === "logs")!.mirror).toBe(true);
      const minioSteps: StepRecord[] = [];
      for (const b of probe.buckets.filter((x) => x.mirror)) for (const step of planMinio(cfg.minio!, { buckets: [b.name] })) minioSteps.push(asRecord(await host.run(step, staged)));
      const minio = await minioBackup(cfg, staged, minioSteps, silentProgress);
      steps.push(...minioSteps);

      const layoutOf = (d: PostgresSnapshotFacts["databases"][number]) => postgresLayout(d.name);
      const sealed = await sealSet(
        root,
        {
          id,
          startedAt: startedAt.toISOString(),
          finishedAt: new Date().toISOString(),
          services: {
            postgres: {
              serverVersion: snap.serverVersion,
              serverVersionNum: snap.serverVersionNum,
              systemIdentifier: snap.systemIdentifier,
              pgDumpVersion: "16",
              globals: "postgres/globals.sql",
              databases: snap.databases.map((d) => ({ name: d.name, dir: layoutOf(d).dir, schemaFile: layoutOf(d).schemaFile, sizeBytes: d.sizeBytes, tables: d.tables })),
            },
            redis: { ...prepared, rdb: REDIS_RDB, rdbCheck: "ok" },
            minio: minio.facts,
          },
          steps,
        },
        new Date(),
      );
      expect(sealed.id).toBe(id);
    } finally {
      host.dispose();
    }

    // The drill, phase by phase, into throwaway targets.
    const plan = await setPlan(root, undefined);
    const formatRecords: StepRecord[] = [];
    const checker = new HostRunner({ tools: {}, secrets: {}, progress: silentProgress });
    for (const step of planFormatChecks(plan.postgres, plan.redis)) formatRecords.push(asRecord(await checker.run(step, join(root, id))));
    checker.dispose();
    const verified = await verifyReplayed(root, plan.id, formatRecords, silentProgress);
    expect(verified.findings).toEqual([]);
    expect(verified.formatChecks.every((c) => c.ok)).toBe(true);

    const [pg, redis, minioSrv] = await Promise.all([startPostgres({ tools: {} }), startRedis({ tools: {}, rdb: join(root, id, REDIS_RDB) }), startMinio({ tools: {} })]);
    try {
      const target = { host: pg.host, port: pg.port, user: pg.user, password: pg.password };
      const globals = await drillGlobals(root, id, target, silentProgress);
      expect(globals.applied).toBe(true);
      const runner = new HostRunner({ tools: {}, secrets: { "postgres.target.password": pg.password }, progress: silentProgress });
      const records: StepRecord[] = [];
      const major = Number(plan.postgres!.serverVersion.split(".")[0]);
      for (const db of plan.postgres!.databases) records.push(asRecord(await runner.run(planPostgresRestore(db, major, target, { jobs: 2, clean: true, noOwner: !globals.applied }), join(root, id))));
      for (const db of plan.postgres!.databases) records.push(asRecord(await runner.run(planSchemaDump(db.name, major, target), join(root, id))));
      runner.dispose();
      summary = await drillFinish(
        root,
        id,
        {
          postgres: target,
          redis: { host: redis.host, port: redis.port, password: redis.password },
          minio: { endpoint: minioSrv.endpoint, accessKey: minioSrv.accessKey, secretKey: minioSrv.secretKey, region: "us-east-1" },
        },
        { startedAt: new Date().toISOString(), steps: records, jobs: 2, sanityQueries: SANDBOX_SANITY_QUERIES, postgres: { globalsApplied: true, globalsMs: globals.ms, version: "local" }, startErrors: {}, redis: { startMs: 1, version: "local" }, minio: { version: "local" } },
        silentProgress,
        () => new Date(),
      );
    } finally {
      await Promise.all([pg.stop(), redis.stop(), minioSrv.stop()]);
    }
  });

  it("sealSet writes a set the host's verify accepts, marked as made by the dagger runner", async () => {
    const report = await verifySet(id, join(root, id), { tools: {}, progress: silentProgress });
    expect(report.findings).toEqual([]);
    expect(report.ok).toBe(true);
    const { manifest } = await loadManifest(join(root, id));
    expect(manifest.runner).toBe("dagger");
    expect(manifest.services.minio!.buckets.map((b) => b.name)).toEqual(["assets", "logs"]);
    expect(manifest.steps.filter((s) => s.argv[0] === "mc").map((s) => s.argv.at(-2))).toContain("src/logs");
    expect(JSON.parse(readFileSync(join(root, "latest.json"), "utf8")).id).toBe(id);
  });

  it("row counts recorded by the snapshot service match what pg_dump dumped (the drill restores exactly them)", () => {
    const rowChecks = summary.services.postgres!.checks.filter((c) => c.check === "row-count");
    expect(rowChecks.length).toBeGreaterThan(5);
    expect(rowChecks.filter((c) => !c.ok)).toEqual([]);
  });

  it("the drill passes every check, and its summary says runner dagger", () => {
    expect(summary.services.postgres!.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.services.redis!.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.services.minio!.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(summary.runner).toBe("dagger");
    expect(summary.services.postgres!.checks.some((c) => c.check === "schema-roundtrip" && c.ok)).toBe(true);
    expect(summary.services.postgres!.checks.filter((c) => c.check === "sanity-query")).toHaveLength(SANDBOX_SANITY_QUERIES.length);
  });
});

describe("ReplayRunner: the glue never runs a tool, and never accepts another command line", () => {
  const step: Step = { id: "redis/check-rdb", service: "redis", image: "redis:7.2", argv: ["redis-check-rdb", "redis/dump.rdb"], env: {}, secretEnv: {}, outputs: [] };

  it("hands back the recorded outcome of the same step", async () => {
    const r = new ReplayRunner([{ id: step.id, service: "redis", argv: [...step.argv], exitCode: 0, durationMs: 42 }], silentProgress);
    await expect(r.run(step, "/nonexistent")).resolves.toMatchObject({ id: step.id, exitCode: 0, durationMs: 42 });
    r.dispose();
  });

  it("refuses a step the Dagger runner did not run, or ran with another argv", async () => {
    const r = new ReplayRunner([{ id: step.id, service: "redis", argv: ["redis-check-rdb", "other.rdb"], exitCode: 0, durationMs: 1 }], silentProgress);
    await expect(r.run(step, "/")).rejects.toThrow(/ran \["redis-check-rdb","other\.rdb"\], the plan says/);
    await expect(r.run({ ...step, id: "redis/rdb" }, "/")).rejects.toThrow(/did not run this step/);
    expect(() => r.binary("mc")).toThrow(/its own image/);
    r.dispose();
  });

  it("a failed step fails as it would on the host, with known secrets scrubbed from the tool's message", async () => {
    const secret = new Secret("hunter2-secret", "t");
    const r = new ReplayRunner([{ id: step.id, service: "redis", argv: [...step.argv], exitCode: 1, durationMs: 1, error: "auth hunter2-secret refused" }], silentProgress, { "redis.password": secret });
    await expect(r.run(step, "/")).rejects.toThrow(/redis\/check-rdb: redis-check-rdb exited with code 1: auth \[redacted\] refused/);
    r.dispose();
  });
});

describe("the mc shim composes MC_HOST_<alias> inside the container", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "bd-shim-"));
    writeFileSync(join(dir, "shim"), MC_ENV_SHIM, { mode: 0o755 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const env = (endpoint: string, access: string, secret: string) => ({
    PATH: process.env.PATH!,
    HOME: dir,
    MC_CONFIG_DIR: join(dir, "mc"),
    BACKUP_DRILL_MC_ALIAS: "src",
    BACKUP_DRILL_MC_ENDPOINT: endpoint,
    BACKUP_DRILL_MC_ACCESS_KEY: access,
    BACKUP_DRILL_MC_SECRET_KEY: secret,
  });

  it("sets MC_HOST_src with the keys as mc reads them (raw), drops the key variables, and execs the argv unchanged", async () => {
    const { stdout } = await execFileAsync(join(dir, "shim"), ["env"], { env: env("http://minio:9000", "AK", "s/e+c:r=t") });
    const vars = Object.fromEntries(stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    expect(vars.MC_HOST_src).toBe("http://AK:s/e+c:r=t@minio:9000");
    // mc's own parser: ^(https?://)(.*?):(.*?)@(.*?)$
    expect(/^(https?:\/\/)(.*?):(.*?)@(.*?)$/.exec(vars.MC_HOST_src!)!.slice(2)).toEqual(["AK", "s/e+c:r=t", "minio:9000"]);
    expect(vars.BACKUP_DRILL_MC_SECRET_KEY).toBeUndefined();
    expect(vars.BACKUP_DRILL_MC_ACCESS_KEY).toBeUndefined();
  });

  it("refuses keys that MC_HOST cannot carry instead of letting mc misread them", async () => {
    await expect(execFileAsync(join(dir, "shim"), ["env"], { env: env("http://minio:9000", "A:K", "sk") })).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("access key contains ':'") });
    await expect(execFileAsync(join(dir, "shim"), ["env"], { env: env("http://minio:9000", "AK", "s@k") })).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("secret key contains '@'") });
  });

  it("real mc reaches real MinIO through it", async () => {
    const s = servers();
    const mc = resolveTool("mc");
    const { stdout } = await execFileAsync(join(dir, "shim"), [mc, "ls", "--no-color", "src/logs/2026/11/01/"], {
      env: env(s.minio.endpoint, s.minio.accessKey.reveal(), s.minio.secretKey.reveal()),
    });
    expect(stdout).toMatch(/app-0\.log/);
  });
});
