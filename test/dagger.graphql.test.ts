import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connection, dag, type DirectoryID, type ServiceID } from "@dagger.io/dagger";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PostgresSource, RedisSource, MinioSource } from "../pipeline/config.js";
import type { DrillFinishInput, MinioProbe, PostgresSnapshotFacts, SetPlan } from "../pipeline/dagger-glue.js";
import type { PreparedRedis } from "../pipeline/backup/redis.js";
import { MC_IMAGE, planFormatChecks, planMinio, planPostgres, planPostgresRestore, planRedis, planSchemaDump } from "../pipeline/plan.js";
import { HostRunner, type SecretBag } from "../pipeline/runners/host.js";
import { CACHE_BUSTER_ENV } from "../pipeline/runners/dagger.js";
import { silentProgress } from "../pipeline/progress.js";
import { Secret } from "../pipeline/secret.js";
import type { Step } from "../pipeline/step.js";
import { GOLANG_IMAGE, MC_MODULE, MC_VERSION, MINIO_MODULE, MINIO_VERSION, NODE_IMAGE } from "../pipeline/versions.js";
import { BackupDrill } from "../src/index.js";
import { FakeEngine, fieldsNamed, lastExec, type Field, type Recorded } from "./fake-dagger.js";

/**
 * The GraphQL the SDK sends for `backup` and `restoreDrill`, recorded by a
 * fake session endpoint that answers with made-up IDs and the glue outputs
 * scripted below. Checks principle 1 (the tool steps' argv are the host
 * runner's argv for the same Steps), images, secrets (only ever secret IDs),
 * the cache buster, and drill targets as services.
 */

const PG_PASSWORD = "pg-Pa55word-only-in-setSecret";
const REDIS_PASSWORD = "redis-Pa55word-only-in-setSecret";
const MINIO_ACCESS = "minio-access-only-in-setSecret";
const MINIO_SECRET = "minio-Secret/Key+only-in-setSecret";
const PLAINTEXTS = [PG_PASSWORD, REDIS_PASSWORD, MINIO_ACCESS, MINIO_SECRET];
const TOOLS = new Set(["pg_dump", "pg_dumpall", "pg_restore", "psql", "redis-cli", "redis-check-rdb", "mc"]);

// ---- the facts the glue "probes" (scripted) -------------------------------------------------

const SNAPSHOTS: PostgresSnapshotFacts = {
  serverVersion: "16.4",
  serverVersionNum: 160004,
  serverMajor: 16,
  systemIdentifier: "7412345678901234567",
  databases: [
    { name: "app", snapshot: "00000003-0000001B-1", tables: [{ schema: "public", name: "customers", rows: 500, bytes: 81920 }], sizeBytes: 8_000_000 },
    { name: "odd name", snapshot: "00000004-0000001C-1", tables: [], sizeBytes: 7_000_000 },
  ],
};
const REDIS: PreparedRedis = {
  version: "7.2.4",
  runId: "abc",
  role: "master",
  keyspace: [{ db: 0, keys: 3, expires: 1 }],
  bgsave: { lastsaveBefore: 1, lastsaveAfter: 2, status: "ok", waitedMs: 40, joinedRunning: false },
  sample: [],
};
const MINIO: MinioProbe = {
  endpoint: "http://minio:9000",
  buckets: [
    { name: "assets", mirror: true, objects: 3 },
    { name: "awkward", mirror: false, objects: 2 },
  ],
};
const SET_PLAN: SetPlan = {
  id: "2026-11-25T16-39-20Z",
  manifestSha256: "a".repeat(64),
  postgres: { serverVersion: "16.4", databases: [{ name: "app", dir: "postgres/app" }, { name: "odd name", dir: "postgres/odd%20name" }], globals: "postgres/globals.sql" },
  redis: { version: "7.2.4", rdb: "redis/dump.rdb" },
  minio: { buckets: ["assets"] },
};

function glueAnswer(phase: string, args: string[]): unknown {
  switch (phase) {
    case "fetch":
      return { ok: true, value: SNAPSHOTS };
    case "redis-prepare":
      return { ok: true, value: REDIS };
    case "minio-probe":
      return { ok: true, value: MINIO };
    case "minio-backup":
      return { ok: true, value: { facts: { endpoint: MINIO.endpoint, buckets: [] }, steps: [], files: [] } };
    case "seal":
      return { ok: true, value: { id: "2026-11-25T16-39-20Z", manifestSha256: "b".repeat(64), files: 12, bytes: 1234 } };
    case "set-plan":
      return { ok: true, value: SET_PLAN };
    case "verify":
      return { ok: true, value: { id: SET_PLAN.id, dir: "/backups/x", ok: verifyOk, filesChecked: 1, bytesChecked: 1, formatChecks: [], findings: verifyOk ? [] : [{ path: "redis/dump.rdb", verdict: "checksum-mismatch", detail: "x" }], counts: {} } };
    case "drill-globals":
      return { ok: true, value: { applied: true, ms: 7 } };
    case "drill-finish":
      return { ok: true, value: { ok: true, setId: SET_PLAN.id, args } };
    default:
      throw new Error(`unscripted glue phase ${phase}`);
  }
}
let verifyOk = true;

function answer(chain: Field[], leaf: Field): unknown {
  if (leaf.name === "endpoint") {
    const host = chain.find((f) => f.name === "hostService");
    return `host-tunnel:${String(host?.args.port ?? 1)}`;
  }
  if (leaf.name === "stdout") {
    const argv = lastExec(chain) ?? [];
    const i = argv.indexOf("internal");
    if (i >= 0) return JSON.stringify(glueAnswer(argv[i + 1]!, argv));
    if (argv[0] === "pg_dump" && argv[1] === "--version") return "pg_dump (PostgreSQL) 16.4 (Debian 16.4-1.pgdg120+1)\n";
    if (argv[0] === "pg_dump" && argv[1] === "--schema-only") return `-- schema of ${argv[argv.length - 1]}\n`;
    if (argv[1] === "freshness") return JSON.stringify({ status: "OK", exitCode: 0 });
    throw new Error(`unscripted stdout for ${JSON.stringify(argv)}`);
  }
  throw new Error(`unscripted leaf ${leaf.name}`);
}

// ---- helpers over the recording --------------------------------------------------------------

const engine = new FakeEngine(answer);
const saved = { port: process.env.DAGGER_SESSION_PORT, token: process.env.DAGGER_SESSION_TOKEN };

beforeAll(async () => {
  const port = await engine.start();
  process.env.DAGGER_SESSION_PORT = String(port);
  process.env.DAGGER_SESSION_TOKEN = engine.token;
  for (const [id, port] of [["host-pg", 5432], ["host-redis", 6379], ["host-minio", 9000]] as const) {
    engine.seed(id, [{ name: "hostService", args: { port } }]);
  }
  engine.seed("backups-dir", [{ name: "hostDirectory", args: { path: "output/backups" } }]);
});

afterAll(async () => {
  await engine.stop();
  if (saved.port === undefined) delete process.env.DAGGER_SESSION_PORT;
  else process.env.DAGGER_SESSION_PORT = saved.port;
  if (saved.token === undefined) delete process.env.DAGGER_SESSION_TOKEN;
  else process.env.DAGGER_SESSION_TOKEN = saved.token;
});

/** Queries recorded while `fn` ran. */
async function record(fn: () => Promise<void>): Promise<Recorded[]> {
  const from = engine.queries.length;
  await connection(fn);
  return engine.queries.slice(from);
}

/** Tool steps the runner ran: one `sync` per step, whose exec is a tool. */
function toolRuns(qs: Recorded[]): Recorded[] {
  return qs.filter((q) => q.chain.at(-1)!.name === "sync" && TOOLS.has(lastExec(q.chain)?.[0] ?? "") && !(lastExec(q.chain)![1] === "--version"));
}

function envOf(chain: Field[], name: string): string | undefined {
  return fieldsNamed(chain, "withEnvVariable").find((f) => f.args.name === name)?.args.value as string | undefined;
}

function secretVar(chain: Field[], name: string): Field[] | undefined {
  const f = fieldsNamed(chain, "withSecretVariable").find((x) => x.args.name === name);
  return f ? engine.origin(f.args.secret) : undefined;
}

function bindingOf(chain: Field[], alias: string): Field[] | undefined {
  const f = fieldsNamed(chain, "withServiceBinding").find((x) => x.args.alias === alias);
  return f ? engine.origin(f.args.service) ?? [{ name: "id", args: { id: f.args.service } }] : undefined;
}

function fromImage(chain: Field[]): string {
  return fieldsNamed(chain, "from")[0]?.args.address as string;
}

/** The argv HostRunner really spawns for each step: recorder scripts stand in for the tools. */
async function hostArgv(steps: Step[], secrets: SecretBag): Promise<string[][]> {
  const dir = mkdtempSync(join(tmpdir(), "bd-argv-"));
  try {
    const log = join(dir, "argv.log");
    const tools: Record<string, string> = {};
    for (const [tool, key] of [["pg_dump", "pg_dump"], ["pg_dumpall", "pg_dumpall"], ["pg_restore", "pg_restore"], ["redis-cli", "redis_cli"], ["redis-check-rdb", "redis_check_rdb"], ["mc", "mc"]]) {
      const path = join(dir, tool!);
      writeFileSync(path, `#!/bin/sh\nprintf '%s\\0' "$(basename "$0")" "$@" >> '${log}'\nprintf '\\036' >> '${log}'\n`);
      chmodSync(path, 0o755);
      tools[key!] = path;
    }
    const runner = new HostRunner({ tools, secrets, progress: silentProgress });
    try {
      for (const s of steps) await runner.run(s, dir);
    } finally {
      runner.dispose();
    }
    return readFileSync(log, "utf8")
      .split("\x1e")
      .filter(Boolean)
      .map((r) => r.split("\0").slice(0, -1));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const hostSecret = new Secret("x", "test");
const pgSrc: PostgresSource = { host: "pg", port: 5432, user: "backup", password: hostSecret, jobs: 3, globals: true, sanityQueries: [] };
const redisSrc: RedisSource = { host: "redis", port: 6379, password: hostSecret, bgsaveTimeoutMs: 1, sampleSize: 5, samplePatterns: [] };
const minioSrc: MinioSource = { endpoint: "http://minio:9000", accessKey: hostSecret, secretKey: hostSecret, region: "us-east-1", canary: true };

/** The Steps plan.ts makes from the scripted facts, with the bound aliases as endpoints. */
function expectedBackupSteps(): Step[] {
  const at = { host: "pg", port: 5432 };
  return [
    ...planPostgres(pgSrc, { serverMajor: 16, databases: [] }, at),
    ...SNAPSHOTS.databases.flatMap((d) => planPostgres({ ...pgSrc, globals: false }, { serverMajor: 16, databases: [d.name], snapshots: { [d.name]: d.snapshot } }, at)),
    ...planRedis(redisSrc, { version: "7.2.4" }, { host: "redis", port: 6379 }),
    ...planMinio(minioSrc, { buckets: ["assets"] }),
  ];
}

const sorted = (xs: string[][]) => xs.map((x) => JSON.stringify(x)).sort();

// ---- backup -----------------------------------------------------------------------------------

describe("dagger call backup: the GraphQL the SDK sends", () => {
  let qs: Recorded[];
  let second: Recorded[];

  beforeAll(async () => {
    const call = async () => {
      const m = new BackupDrill();
      const dir = await m.backup(
        dag.loadServiceFromID("host-pg" as ServiceID),
        "backup",
        dag.setSecret("pg-password", PG_PASSWORD),
        undefined,
        true,
        3,
        undefined,
        dag.loadServiceFromID("host-redis" as ServiceID),
        undefined,
        dag.setSecret("redis-password", REDIS_PASSWORD),
        5,
        [],
        "10m",
        undefined,
        dag.loadServiceFromID("host-minio" as ServiceID),
        dag.setSecret("minio-access", MINIO_ACCESS),
        dag.setSecret("minio-secret", MINIO_SECRET),
      );
      await dir.id(); // what the engine does with a returned object
    };
    qs = await record(call);
    second = await record(call);
  });

  it("runs exactly the tool steps plan.ts makes from the probed facts, each once", () => {
    const ran = toolRuns(qs).map((q) => lastExec(q.chain)!);
    expect(sorted(ran)).toEqual(sorted(expectedBackupSteps().map((s) => s.argv)));
  });

  it("each tool step's withExec args are the argv HostRunner spawns for the same Step", async () => {
    const steps = expectedBackupSteps();
    const host = await hostArgv(steps, {
      "postgres.password": new Secret(PG_PASSWORD, "t"),
      "redis.password": new Secret(REDIS_PASSWORD, "t"),
      "minio.mcHost": new Secret(`http://${MINIO_ACCESS}:x@minio:9000`, "t"),
    });
    expect(host).toHaveLength(steps.length);
    expect(sorted(toolRuns(qs).map((q) => lastExec(q.chain)!))).toEqual(sorted(host));
  });

  it("each step runs in its image: postgres:<server major>, redis:<major.minor>, mc built from the pinned Go module", () => {
    for (const q of toolRuns(qs)) {
      const tool = lastExec(q.chain)![0]!;
      if (tool.startsWith("pg_")) expect(fromImage(q.chain)).toBe("postgres:16");
      else if (tool.startsWith("redis")) expect(fromImage(q.chain)).toBe("redis:7.2");
      else {
        expect(tool).toBe("mc");
        expect(fromImage(q.chain)).toBe(GOLANG_IMAGE);
        const mcFile = fieldsNamed(q.chain, "withFile").find((f) => f.args.path === "/usr/local/bin/mc")!;
        const build = engine.origin(mcFile.args.source)!;
        expect(lastExec(build)).toEqual(["go", "install", `${MC_MODULE}@${MC_VERSION}`]);
        expect(fieldsNamed(build, "withMountedCache").map((f) => f.args.path)).toEqual(["/go/pkg/mod", "/root/.cache/go-build"]);
        // The argv is the Step's; the shim entry point composes MC_HOST_src in the container.
        expect(fieldsNamed(q.chain, "withExec").at(-1)!.args.useEntrypoint).toBe(true);
        expect(envOf(q.chain, "BACKUP_DRILL_MC_ALIAS")).toBe("src");
        expect(envOf(q.chain, "BACKUP_DRILL_MC_ENDPOINT")).toBe("http://minio:9000");
      }
    }
    expect(MC_IMAGE).toContain(MC_VERSION);
  });

  it("pg_dump's version is checked in the image it will run in", () => {
    const probe = qs.find((q) => JSON.stringify(lastExec(q.chain)) === JSON.stringify(["pg_dump", "--version"]))!;
    expect(fromImage(probe.chain)).toBe("postgres:16");
  });

  it("the glue runs as the project's CLI in a Node image built from the module source, npm ci before the sources", () => {
    const glue = qs.filter((q) => q.chain.at(-1)!.name === "sync" && lastExec(q.chain)?.[2] === "internal");
    expect(glue.map((q) => lastExec(q.chain)![3]).sort()).toEqual(["fetch", "minio-backup", "minio-probe", "redis-prepare", "seal"]);
    for (const q of glue) {
      expect(fromImage(q.chain)).toBe(NODE_IMAGE);
      const names = q.chain.map((f) => f.name);
      const npmCi = q.chain.findIndex((f) => f.name === "withExec" && (f.args.args as string[])[1] === "ci");
      const sources = q.chain.findIndex((f) => f.name === "withDirectory" && f.args.path === "/app");
      expect(npmCi).toBeGreaterThan(names.indexOf("withFile"));
      expect(sources).toBeGreaterThan(npmCi);
      expect(engine.origin(q.chain[sources]!.args.source)!.map((f) => f.name)).toEqual(["currentModule", "source"]);
    }
  });

  it("secrets travel only as secret IDs: a plaintext appears in no query but the setSecret that makes it", () => {
    for (const p of PLAINTEXTS) {
      const hits = qs.filter((q) => q.query.includes(p));
      expect(hits.length, p).toBeGreaterThan(0);
      // The SDK resolves the lazy Secret to its ID each time it is an argument: always this one query.
      for (const h of hits) expect(h.chain.map((f) => f.name), p).toEqual(["setSecret", "id"]);
    }
    // ...and every withSecretVariable names a secret by an ID that setSecret issued.
    const vars = qs.flatMap((q) => fieldsNamed(q.chain, "withSecretVariable"));
    expect(vars.length).toBeGreaterThan(0);
    for (const v of vars) expect(engine.origin(v.args.secret)![0]!.name).toBe("setSecret");
  });

  it("secrets reach tools as secret variables bound to those secrets, services by alias", () => {
    for (const q of toolRuns(qs)) {
      const argv = lastExec(q.chain)!;
      if (argv[0] === "pg_dump" || argv[0] === "pg_dumpall") {
        expect(secretVar(q.chain, "PGPASSWORD")![0]!.args.plaintext).toBe(PG_PASSWORD);
        expect(bindingOf(q.chain, "pg")![0]).toEqual({ name: "hostService", args: { port: 5432 } });
        expect(argv).toContain("pg");
      } else if (argv[0] === "redis-cli") {
        expect(secretVar(q.chain, "REDISCLI_AUTH")![0]!.args.plaintext).toBe(REDIS_PASSWORD);
        expect(bindingOf(q.chain, "redis")![0]).toEqual({ name: "hostService", args: { port: 6379 } });
      } else if (argv[0] === "mc") {
        expect(secretVar(q.chain, "BACKUP_DRILL_MC_ACCESS_KEY")![0]!.args.plaintext).toBe(MINIO_ACCESS);
        expect(secretVar(q.chain, "BACKUP_DRILL_MC_SECRET_KEY")![0]!.args.plaintext).toBe(MINIO_SECRET);
        expect(bindingOf(q.chain, "minio")![0]).toEqual({ name: "hostService", args: { port: 9000 } });
      } else {
        // pg_restore --schema-only and redis-check-rdb read the set only: no secret, no service.
        expect(fieldsNamed(q.chain, "withSecretVariable")).toEqual([]);
        expect(fieldsNamed(q.chain, "withServiceBinding")).toEqual([]);
      }
      // The set directory is the working directory.
      expect(fieldsNamed(q.chain, "withMountedDirectory").at(-1)!.args.path).toBe("/set");
      expect(fieldsNamed(q.chain, "withWorkdir").at(-1)!.args.path).toBe("/set");
    }
  });

  it("pg_dump runs with the snapshot the glue service exported, while that service is running", () => {
    const starts = qs.filter((q) => q.chain.at(-1)!.name === "start" && fieldsNamed(q.chain, "asService").length);
    const holder = starts.find((q) => (fieldsNamed(q.chain, "asService")[0]!.args.args as string[]).includes("pg-snapshots"))!;
    expect(holder).toBeDefined();
    const stop = qs.find((q) => q.chain.at(-1)!.name === "stop" && JSON.stringify(q.chain.slice(0, -1)) === JSON.stringify(holder.chain.slice(0, -1)))!;
    expect(stop).toBeDefined();
    const dumps = toolRuns(qs).filter((q) => lastExec(q.chain)![0] === "pg_dump");
    expect(dumps.map((q) => lastExec(q.chain)!.find((a) => a.startsWith("--snapshot=")))).toEqual(SNAPSHOTS.databases.map((d) => `--snapshot=${d.snapshot}`));
    for (const d of dumps) {
      expect(d.at).toBeGreaterThan(holder.at);
      expect(d.at).toBeLessThan(stop.at);
    }
  });

  it("every container of a call carries the same cache buster, and the next call another", () => {
    const runsOf = (rs: Recorded[]) => rs.filter((q) => q.chain.at(-1)!.name === "sync" && lastExec(q.chain));
    const values = new Set(runsOf(qs).map((q) => envOf(q.chain, CACHE_BUSTER_ENV)));
    expect(values.size).toBe(1);
    const [v] = values;
    expect(v).toMatch(/^[0-9a-f-]{36}$/);
    const next = new Set(runsOf(second).map((q) => envOf(q.chain, CACHE_BUSTER_ENV)));
    expect(next.size).toBe(1);
    expect(next.has(v)).toBe(false);
  });

  it("seals in the glue and returns the backups root (set + latest.json) for export", () => {
    const seal = qs.find((q) => q.chain.at(-1)!.name === "sync" && lastExec(q.chain)?.[3] === "seal")!;
    expect(lastExec(seal.chain)).toEqual(["node", "/app/bin/backup-drill.js", "internal", "seal", "--output", ".", "--input", "/run/backup-drill/input.json"]);
    const last = qs.at(-1)!;
    expect(last.chain.slice(-2)).toEqual([{ name: "directory", args: { path: "/backups" } }, { name: "id", args: {} }]);
    expect(lastExec(last.chain)![3]).toBe("seal");
  });
});

// ---- restore drill ----------------------------------------------------------------------------

describe("dagger call restore-drill: the GraphQL the SDK sends", () => {
  let qs: Recorded[];
  const at = { host: "drill-pg", port: 5432, user: "postgres" };

  function expectedDrillSteps(): Step[] {
    return [
      ...SET_PLAN.postgres!.databases.map((db) => planPostgresRestore(db, 16, at, { jobs: 2, clean: true, noOwner: false })),
      ...SET_PLAN.postgres!.databases.map((db) => planSchemaDump(db.name, 16, at)),
    ];
  }

  beforeAll(async () => {
    verifyOk = true;
    qs = await record(async () => {
      const dir = await new BackupDrill().restoreDrill(dag.loadDirectoryFromID("backups-dir" as DirectoryID));
      await dir.id();
    });
  });

  it("runs the format checks, then pg_restore and the schema dumps that plan.ts makes — the argv HostRunner would spawn", async () => {
    const format = planFormatChecks(SET_PLAN.postgres, SET_PLAN.redis);
    const steps = [...format, ...expectedDrillSteps()];
    const ran = toolRuns(qs).map((q) => lastExec(q.chain)!);
    expect(sorted(ran)).toEqual(sorted(steps.map((s) => s.argv)));
    const host = await hostArgv(steps, { "postgres.target.password": new Secret("x", "t") });
    expect(sorted(ran)).toEqual(sorted(host));
    // Format checks first, restores after (a corrupt set is never restored).
    const firstRestore = toolRuns(qs).findIndex((q) => lastExec(q.chain)![0] === "pg_restore" && lastExec(q.chain)![1] === "--exit-on-error");
    expect(toolRuns(qs).slice(0, firstRestore).map((q) => lastExec(q.chain)!.slice(0, 2))).toEqual(format.map((s) => s.argv.slice(0, 2)));
  });

  it("drill targets are throwaway services (asService with the entry point), bound by alias, started and stopped", () => {
    const finish = qs.find((q) => q.chain.at(-1)!.name === "sync" && lastExec(q.chain)?.[3] === "drill-finish")!;
    const pg = bindingOf(finish.chain, "drill-pg")!;
    const redis = bindingOf(finish.chain, "drill-redis")!;
    const minio = bindingOf(finish.chain, "drill-minio")!;
    for (const svc of [pg, redis, minio]) {
      const as = fieldsNamed(svc, "asService");
      expect(as).toHaveLength(1);
      expect(as[0]!.args.useEntrypoint).toBe(true);
      expect(envOf(svc, CACHE_BUSTER_ENV)).toMatch(/^[0-9a-f-]{36}$/);
      const started = qs.find((q) => q.chain.at(-1)!.name === "start" && JSON.stringify(q.chain.slice(0, -1)) === JSON.stringify(svc));
      const stopped = qs.find((q) => q.chain.at(-1)!.name === "stop" && JSON.stringify(q.chain.slice(0, -1)) === JSON.stringify(svc));
      expect(started && stopped).toBeTruthy();
      expect(started!.at).toBeLessThan(finish.at);
      expect(stopped!.at).toBeGreaterThan(finish.at);
    }
    expect(fromImage(pg)).toBe("postgres:16");
    expect(secretVar(pg, "POSTGRES_PASSWORD")![0]!.name).toBe("setSecret");
    expect(fromImage(redis)).toBe("redis:7.2");
    const rdb = fieldsNamed(redis, "withFile").find((f) => f.args.path === "/data/dump.rdb")!;
    expect(engine.origin(rdb.args.source)).toEqual([
      { name: "hostDirectory", args: { path: "output/backups" } },
      { name: "directory", args: { path: SET_PLAN.id } },
      { name: "file", args: { path: "redis/dump.rdb" } },
    ]);
    expect(fieldsNamed(redis, "withMountedSecret")[0]!.args.path).toBe("/run/secrets/redis.conf");
    expect(fieldsNamed(redis, "asService")[0]!.args.args).toEqual(["redis-server", "/run/secrets/redis.conf"]);
    const minioBin = fieldsNamed(minio, "withFile").find((f) => f.args.path === "/usr/local/bin/minio")!;
    expect(lastExec(engine.origin(minioBin.args.source)!)).toEqual(["go", "install", `${MINIO_MODULE}@${MINIO_VERSION}`]);
  });

  it("pg_restore and pg_dump reach the drill target by alias with its generated password as a secret variable", () => {
    const finish = qs.find((q) => lastExec(q.chain)?.[3] === "drill-finish")!;
    const pgTarget = bindingOf(finish.chain, "drill-pg")!;
    const targetPw = secretVar(pgTarget, "POSTGRES_PASSWORD")!;
    for (const q of toolRuns(qs).filter((r) => lastExec(r.chain)!.includes("drill-pg"))) {
      expect(bindingOf(q.chain, "drill-pg")).toEqual(pgTarget);
      expect(secretVar(q.chain, "PGPASSWORD")).toEqual(targetPw);
    }
  });

  it("generated passwords too cross only in setSecret", () => {
    const made = qs.filter((q) => q.chain[0]!.name === "setSecret");
    expect(made.length).toBeGreaterThanOrEqual(4);
    for (const m of made) {
      const plaintext = String(m.chain[0]!.args.plaintext);
      const password = /requirepass "([^"]+)"/.exec(plaintext)?.[1] ?? plaintext;
      expect(qs.filter((q) => q.chain[0]!.name !== "setSecret" && q.query.includes(password))).toEqual([]);
    }
  });

  it("hands the glue what the targets did: globals applied, every step record, and writes the summary into the set", () => {
    const finish = qs.find((q) => q.chain.at(-1)!.name === "sync" && lastExec(q.chain)?.[3] === "drill-finish")!;
    const input = JSON.parse(fieldsNamed(finish.chain, "withNewFile").find((f) => f.args.path === "/run/backup-drill/input.json")!.args.contents as string) as DrillFinishInput;
    expect(input.postgres?.globalsApplied).toBe(true);
    expect(input.steps.map((s) => s.argv)).toEqual(expectedDrillSteps().map((s) => s.argv));
    expect(input.steps.filter((s) => s.argv[1] === "--schema-only").map((s) => s.stdout)).toEqual(["-- schema of dbname='app'\n", "-- schema of dbname='odd name'\n"]);
    const targets = JSON.parse(fieldsNamed(finish.chain, "withNewFile").find((f) => f.args.path === "/run/backup-drill/targets.json")!.args.contents as string);
    expect(JSON.stringify(targets)).not.toMatch(/Pa55|plaintext/);
    expect(targets.postgres.password).toBe("env:DRILL_PG_PASSWORD");
    expect(qs.at(-1)!.chain.slice(-2)).toEqual([{ name: "directory", args: { path: "/backups" } }, { name: "id", args: {} }]);
  });

  it("a set that fails verification is not restored: no target is started", async () => {
    verifyOk = false;
    let err: unknown;
    const failed = await record(async () => {
      try {
        await new BackupDrill().restoreDrill(dag.loadDirectoryFromID("backups-dir" as DirectoryID));
      } catch (e) {
        err = e;
      }
    });
    verifyOk = true;
    expect(String(err)).toMatch(/failed verification, nothing restored: redis\/dump\.rdb \(checksum-mismatch\)/);
    expect(failed.filter((q) => q.chain.at(-1)!.name === "start")).toEqual([]);
    expect(toolRuns(failed).map((q) => lastExec(q.chain)![0])).toEqual(["pg_restore", "pg_restore", "redis-check-rdb"]);
  });
});
