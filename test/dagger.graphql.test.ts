import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connection, dag, type Directory, type DirectoryID, type FileID, type ServiceID } from "@dagger.io/dagger";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig, loadTargetConfig } from "../pipeline/config.js";
import { BackupDrill } from "../src/index.js";
import { ALIAS, APP, BACKUPS, CACHE_BUSTER, CLI, CONFIG, GO_IMAGE, MC_MODULE, MINIO_MODULE, NODE_IMAGE, OFFSITE, RUNNER_ENV, SECRET_VAR, TARGETS } from "../src/toolbox.js";
import { FakeEngine, fieldsNamed, lastExec, type Field, type Recorded } from "./fake-dagger.js";

/**
 * The GraphQL the SDK sends for each function, recorded by a fake session
 * endpoint (DAGGER_SESSION_PORT/TOKEN) that answers with made-up IDs and the
 * scripted leaves below. What an engine would be asked to do: the images
 * the toolbox is built from, its cached layers, the services bound under
 * their aliases, secrets only as secret IDs, the cache buster, and the exact
 * CLI command with the config it reads — the same CLI a host runs.
 */

const PG_PASSWORD = "pg-Pa55word-only-in-setSecret";
const REDIS_PASSWORD = "redis-Pa55word-only-in-setSecret";
const MINIO_ACCESS = "minio-access-only-in-setSecret";
const MINIO_SECRET = "minio-Secret/Key+only-in-setSecret";
const PLAINTEXTS = [PG_PASSWORD, REDIS_PASSWORD, MINIO_ACCESS, MINIO_SECRET];
const SET_ID = "2026-11-25T16-39-20Z";

/** What the scripted engine answers for the CLI run (the last withExec of backup-drill). */
const cli = { exitCode: 0, stdout: "", stderr: "" };
const files: Record<string, string> = {};

function answer(chain: Field[], leaf: Field): unknown {
  const argv = lastExec(chain) ?? [];
  if (leaf.name === "endpoint") return `host-tunnel:${String(chain.find((f) => f.name === "hostService")?.args.port ?? 1)}`;
  if (leaf.name === "stdout" && argv[0] === "psql") return "160004\n";
  if (leaf.name === "stdout" && argv[0] === "redis-cli") return "# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n";
  if (argv[0] === CLI[0] && argv[1] === CLI[1]) {
    if (leaf.name === "exitCode") return cli.exitCode;
    if (leaf.name === "stdout") return cli.stdout;
    if (leaf.name === "stderr") return cli.stderr;
  }
  if (leaf.name === "contents") {
    const path = String(chain.at(-2)?.args.path ?? chain.find((f) => f.name === "hostFile")?.args.path);
    if (path in files) return files[path];
  }
  if (leaf.name === "entries") return Object.keys(files).filter((p) => !p.includes("/") || p.endsWith("manifest.json")).map((p) => p.split("/")[0]);
  throw new Error(`unscripted leaf ${leaf.name} after ${chain.map((f) => f.name).join(".")}`);
}

const engine = new FakeEngine(answer);
const saved = { port: process.env.DAGGER_SESSION_PORT, token: process.env.DAGGER_SESSION_TOKEN };

beforeAll(async () => {
  const port = await engine.start();
  process.env.DAGGER_SESSION_PORT = String(port);
  process.env.DAGGER_SESSION_TOKEN = engine.token;
  for (const [id, port] of [["host-pg", 5433], ["host-redis", 6380], ["host-minio", 9001], ["host-pg2", 5434], ["host-redis2", 6381]] as const) {
    engine.seed(id, [{ name: "hostService", args: { port } }]);
  }
  engine.seed("backups-dir", [{ name: "hostDirectory", args: { path: "output/backups" } }]);
  engine.seed("config-file", [{ name: "hostFile", args: { path: "backup-drill.config.json" } }]);
});

afterAll(async () => {
  await engine.stop();
  if (saved.port === undefined) delete process.env.DAGGER_SESSION_PORT;
  else process.env.DAGGER_SESSION_PORT = saved.port;
  if (saved.token === undefined) delete process.env.DAGGER_SESSION_TOKEN;
  else process.env.DAGGER_SESSION_TOKEN = saved.token;
});

/** The scripted answers every test starts from (describe-level beforeAll hooks run before beforeEach). */
function resetScript(): void {
  Object.assign(cli, { exitCode: 0, stdout: "", stderr: "" });
  for (const k of Object.keys(files)) delete files[k];
  files["package.json"] = JSON.stringify({ version: "9.9.9" });
  files["backup-drill.config.json"] = JSON.stringify({ redis: { sampleSize: 5 }, retention: { keepLast: 3 }, postgres: { sanityQueries: [] } });
  files["latest.json"] = JSON.stringify({ id: SET_ID });
  files[`${SET_ID}/manifest.json`] = JSON.stringify({ services: { postgres: { serverVersion: "15.8" }, redis: { version: "7.0.15" } } });
}
resetScript();
beforeEach(resetScript);

/** Queries recorded while `fn` ran. */
async function record(fn: () => Promise<void>): Promise<Recorded[]> {
  const from = engine.queries.length;
  await connection(fn);
  return engine.queries.slice(from);
}

const backups = () => dag.loadDirectoryFromID("backups-dir" as DirectoryID);
const configFile = () => dag.loadFileFromID("config-file" as FileID);
const service = (id: string) => dag.loadServiceFromID(id as ServiceID);

/** The CLI run: the query for the exit code of the withExec that runs backup-drill. */
function cliRun(qs: Recorded[]): Field[] {
  const runs = qs.filter((q) => q.chain.at(-1)!.name === "exitCode" && lastExec(q.chain)?.[1] === CLI[1]);
  expect(runs).toHaveLength(1);
  return runs[0]!.chain;
}

const named = (chain: Field[], field: string, key: string, value: string) => fieldsNamed(chain, field).find((f) => f.args[key] === value);
const envOf = (chain: Field[], name: string) => named(chain, "withEnvVariable", "name", name)?.args.value as string | undefined;
const fromImages = (chain: Field[]) => fieldsNamed(chain, "from").map((f) => f.args.address as string);
const originOf = (id: unknown) => engine.origin(id) ?? [];

/** The file a withNewFile wrote at `path` in the chain. */
function newFile(chain: Field[], path: string): string {
  const f = named(chain, "withNewFile", "path", path);
  expect(f, `withNewFile ${path}`).toBeDefined();
  return f!.args.contents as string;
}

/** The chain that produced the file a withFile put at `path`. */
function fileOrigin(chain: Field[], path: string): Field[] {
  return originOf(named(chain, "withFile", "path", path)?.args.source);
}

/** A written config as the CLI loads it: as its --config, and as a --target-config. */
function loadWrittenConfig(text: string): ReturnType<typeof loadConfig>;
function loadWrittenConfig(text: string, as: "targets"): ReturnType<typeof loadTargetConfig>;
function loadWrittenConfig(text: string, as: "config" | "targets" = "config") {
  const dir = mkdtempSync(join(tmpdir(), "bd-gql-"));
  try {
    writeFileSync(join(dir, "c.json"), text);
    const env = Object.fromEntries(Object.values(SECRET_VAR).map((n) => [n, `value-of-${n}`]));
    return as === "config" ? loadConfig({ configPath: join(dir, "c.json"), env }) : loadTargetConfig(join(dir, "c.json"), {}, env);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("backup", () => {
  let qs: Recorded[];
  let run: Field[];
  let returned: Field[];

  beforeAll(async () => {
    qs = await record(async () => {
      const dir: Directory = await new BackupDrill().backup(
        backups(),
        configFile(),
        service("host-pg"),
        "backup",
        dag.setSecret("pg-password", PG_PASSWORD),
        ["app", "odd name"],
        true,
        3,
        service("host-redis"),
        "bk",
        dag.setSecret("redis-password", REDIS_PASSWORD),
        service("host-minio"),
        undefined,
        dag.setSecret("minio-access", MINIO_ACCESS),
        dag.setSecret("minio-secret", MINIO_SECRET),
        ["assets"],
        "eu-west-1",
      );
      returned = originOf(await dir.id());
    });
    run = cliRun(qs);
  });

  it("runs the project's CLI, the same command a host runs, and expects any exit code so it can report the CLI's own error", () => {
    expect(lastExec(run)).toEqual([...CLI, "backup", "--config", CONFIG, "--output", BACKUPS]);
    expect(fieldsNamed(run, "withExec").at(-1)!.args.expect).toBe("ANY");
  });

  it("returns the backups root from that very run", () => {
    expect(returned.at(-1)).toEqual({ name: "directory", args: { path: BACKUPS } });
    expect(returned.slice(0, -1)).toEqual(run.slice(0, -1));
  });

  it("hands the existing backups root in at the output root", () => {
    expect(originOf(named(run, "withDirectory", "path", BACKUPS)?.args.source)).toEqual([{ name: "hostDirectory", args: { path: "output/backups" } }]);
  });

  it("the config the CLI reads: the caller's settings with the bound servers as sources, secrets only by reference", () => {
    const text = newFile(run, CONFIG);
    for (const p of PLAINTEXTS) expect(text).not.toContain(p);
    const cfg = loadWrittenConfig(text);
    expect(cfg.postgres).toMatchObject({ host: ALIAS.pg, port: 5433, user: "backup", databases: ["app", "odd name"], globals: true, jobs: 3, sanityQueries: [] });
    expect(cfg.redis).toMatchObject({ host: ALIAS.redis, port: 6380, username: "bk", sampleSize: 5 });
    expect(cfg.minio).toMatchObject({ endpoint: `http://${ALIAS.minio}:9001`, buckets: ["assets"], region: "eu-west-1" });
    expect(cfg.retention).toMatchObject({ keepLast: 3 });
    expect(cfg.postgres!.password!.ref).toBe(`env:${SECRET_VAR.pgPassword}`);
    expect(cfg.minio!.secretKey.ref).toBe(`env:${SECRET_VAR.minioSecretKey}`);
  });

  it("binds each server under the alias the config names", () => {
    for (const [alias, port] of [[ALIAS.pg, 5433], [ALIAS.redis, 6380], [ALIAS.minio, 9001]] as const) {
      expect(originOf(named(run, "withServiceBinding", "alias", alias)?.args.service), alias).toEqual([{ name: "hostService", args: { port } }]);
    }
  });

  it("secrets travel only as secret IDs: a plaintext appears in no query but the setSecret that makes it", () => {
    for (const p of PLAINTEXTS) {
      const hits = qs.filter((q) => q.query.includes(p));
      expect(hits.length, p).toBeGreaterThan(0);
      for (const h of hits) expect(h.chain.map((f) => f.name), p).toEqual(["setSecret", "id"]);
    }
    const vars = Object.fromEntries(fieldsNamed(run, "withSecretVariable").map((f) => [f.args.name as string, originOf(f.args.secret)[0]!.args.name]));
    expect(vars).toEqual({
      [SECRET_VAR.pgPassword]: "pg-password",
      [SECRET_VAR.redisPassword]: "redis-password",
      [SECRET_VAR.minioAccessKey]: "minio-access",
      [SECRET_VAR.minioSecretKey]: "minio-secret",
    });
  });

  it("tools follow the data: the toolbox is postgres:<probed major> with redis:<probed major.minor>'s binaries", () => {
    expect(fromImages(run)[0]).toBe("postgres:16-bookworm");
    expect(fromImages(fileOrigin(run, "/usr/local/bin/redis-server"))).toEqual(["redis:7.2-bookworm"]);
    expect(fromImages(fileOrigin(run, "/usr/local/bin/redis-cli"))).toEqual(["redis:7.2-bookworm"]);
    expect(named(run, "withSymlink", "linkName", "/usr/local/bin/redis-check-rdb")?.args.target).toBe("redis-server");
    expect(fromImages(fileOrigin(run, "/usr/local/bin/node"))).toEqual([NODE_IMAGE]);
  });

  it("the versions were probed from the bound servers, with the passwords as secret variables", () => {
    const psql = qs.find((q) => lastExec(q.chain)?.[0] === "psql")!.chain;
    expect(lastExec(psql)).toEqual(["psql", "--no-psqlrc", "--tuples-only", "--no-align", "--host", ALIAS.pg, "--port", "5433", "--username", "backup", "--dbname", "postgres", "--command", "SHOW server_version_num"]);
    expect(originOf(named(psql, "withSecretVariable", "name", "PGPASSWORD")?.args.secret)[0]!.name).toBe("setSecret");
    const cli = qs.find((q) => lastExec(q.chain)?.[0] === "redis-cli")!.chain;
    expect(lastExec(cli)).toEqual(["redis-cli", "-h", ALIAS.redis, "-p", "6380", "--user", "bk", "--no-auth-warning", "INFO", "server"]);
    expect(originOf(named(cli, "withSecretVariable", "name", "REDISCLI_AUTH")?.args.secret)[0]!.name).toBe("setSecret");
  });

  it("mc and minio come from the pinned go install, side by side on the cached Go builder", () => {
    for (const [bin, module] of [["mc", MC_MODULE], ["minio", MINIO_MODULE]]) {
      const origin = fileOrigin(run, `/usr/local/bin/${bin}`);
      expect(fromImages(origin)).toEqual([GO_IMAGE]);
      expect(lastExec(origin)).toEqual(["go", "install", module]);
      expect(origin.at(-1)).toEqual({ name: "file", args: { path: `/out/${bin}` } });
      expect(fieldsNamed(origin, "withMountedCache").map((f) => f.args.path)).toEqual(["/go/pkg/mod", "/root/.cache/go-build"]);
    }
  });

  it("npm ci sees only package.json and the lock (its layer stays cached), then the sources are added", () => {
    const deps = originOf(named(run, "withDirectory", "path", `${APP}/node_modules`)?.args.source);
    expect(fromImages(deps)).toEqual([NODE_IMAGE]);
    expect(fieldsNamed(deps, "withFile").map((f) => f.args.path)).toEqual([`${APP}/package.json`, `${APP}/package-lock.json`]);
    expect(lastExec(deps)).toEqual(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"]);
    const sources = named(run, "withDirectory", "path", APP)!;
    expect(sources.args.include).toEqual(["bin/**", "pipeline/**", "probes/**", "package.json", "tsconfig.json"]);
    expect(originOf(sources.args.source).map((f) => f.name)).toEqual(["currentModule", "source"]);
  });

  it("the CLI knows it runs under Dagger (manifest.runner) and every call is new (cache buster)", () => {
    expect(envOf(run, RUNNER_ENV)).toBe("dagger");
    expect(envOf(run, CACHE_BUSTER)).toMatch(/^[0-9a-f-]{36}$/);
    for (const probe of ["psql", "redis-cli"]) expect(envOf(qs.find((q) => lastExec(q.chain)?.[0] === probe)!.chain, CACHE_BUSTER)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("two calls never share a cache buster", async () => {
    const again = cliRun(await record(async () => void (await new BackupDrill().backup(undefined, undefined, service("host-pg")))));
    expect(envOf(again, CACHE_BUSTER)).not.toBe(envOf(run, CACHE_BUSTER));
  });
});

describe("offsite: push and the --from / --remote forms", () => {
  const RECIPIENT = "age1" + "q".repeat(58);
  const IDENTITY = "AGE-SECRET-KEY-1ONLYINSETSECRET";

  it("push writes the destination into the config (keys and nothing else by reference) and runs push --to it", async () => {
    files["backup-drill.config.json"] = JSON.stringify({ offsite: { destinations: { host: { endpoint: "http://x", bucket: "b", accessKey: "env:HOST_ONLY", secretKey: "env:HOST_ONLY" } } }, retention: { keepLast: 2 } });
    let returned: Field[] = [];
    const qs = await record(async () => {
      const dir = await new BackupDrill().push(backups(), "https://s3.example.com", "copies", dag.setSecret("o-ak", MINIO_ACCESS), dag.setSecret("o-sk", MINIO_SECRET), SET_ID, configFile(), "prod", "eu-west-1", false, [RECIPIENT]);
      returned = originOf(await dir.id());
    });
    const run = cliRun(qs);
    expect(lastExec(run)).toEqual([...CLI, "push", "--config", CONFIG, "--output", BACKUPS, "--to", OFFSITE, "--set", SET_ID]);
    expect(returned.at(-1)).toEqual({ name: "directory", args: { path: BACKUPS } });
    const cfg = loadWrittenConfig(newFile(run, CONFIG));
    expect(cfg.offsite!.destinations.map((d) => d.name)).toEqual([OFFSITE]);
    expect(JSON.parse(newFile(run, CONFIG)).offsite.destinations[OFFSITE]).toEqual({
      endpoint: "https://s3.example.com", bucket: "copies", prefix: "prod", region: "eu-west-1", pathStyle: false,
      accessKey: `env:${SECRET_VAR.offsiteAccessKey}`, secretKey: `env:${SECRET_VAR.offsiteSecretKey}`, encrypt: { recipients: [RECIPIENT] },
    });
    expect(cfg.retention).toMatchObject({ keepLast: 2 });
    expect(fieldsNamed(run, "withSecretVariable").map((f) => f.args.name).sort()).toEqual([SECRET_VAR.offsiteAccessKey, SECRET_VAR.offsiteSecretKey].sort());
    for (const p of [MINIO_ACCESS, MINIO_SECRET]) for (const q of qs.filter((x) => x.query.includes(p))) expect(q.chain.map((f) => f.name)).toEqual(["setSecret", "id"]);
  });

  it("restore-drill --from-offsite pulls with the identity as a secret variable, on the newest tools unless told", async () => {
    const run = cliRun(
      await record(async () => {
        await (await new BackupDrill().restoreDrill(backups(), undefined, undefined, true, "http://copies:7070", "copies", dag.setSecret("o-ak", MINIO_ACCESS), dag.setSecret("o-sk", MINIO_SECRET), undefined, undefined, undefined, dag.setSecret("o-id", IDENTITY), 15)).id();
      }),
    );
    expect(lastExec(run)).toEqual([...CLI, "restore-drill", "--output", BACKUPS, "--config", CONFIG, "--from", OFFSITE, "--identity", `env:${SECRET_VAR.offsiteIdentity}`]);
    expect(fromImages(run)[0]).toBe("postgres:15-bookworm");
    expect(fromImages(fileOrigin(run, "/usr/local/bin/redis-server"))).toEqual(["redis:7.4-bookworm"]);
    expect(originOf(named(run, "withSecretVariable", "name", SECRET_VAR.offsiteIdentity)?.args.secret)).toEqual([{ name: "setSecret", args: { name: "o-id", plaintext: IDENTITY } }]);
    expect(newFile(run, CONFIG)).not.toContain(IDENTITY);
  });

  it("a failed disaster drill (exit 3 from --from-offsite) fails the call: the pulled copy and its summary are gone", async () => {
    Object.assign(cli, { exitCode: 3, stdout: "FAILED — 40/41 checks passed" });
    let error: Error | undefined;
    await record(async () => {
      await new BackupDrill()
        .restoreDrill(undefined, undefined, undefined, true, "http://copies:7070", "copies", dag.setSecret("o-ak", MINIO_ACCESS), dag.setSecret("o-sk", MINIO_SECRET))
        .catch((e: Error) => (error = e));
    });
    expect(error?.message).toMatch(/^backup-drill restore-drill exited with code 3:/);
    expect(error?.message).toContain("FAILED — 40/41 checks passed");
  });

  it("verify --remote --read-data checks the copy where it lives", async () => {
    const run = cliRun(
      await record(async () => {
        await new BackupDrill().verify(backups(), undefined, true, true, true, true, "http://copies:7070", "copies", dag.setSecret("o-ak", MINIO_ACCESS), dag.setSecret("o-sk", MINIO_SECRET), undefined, undefined, undefined, dag.setSecret("o-id", IDENTITY));
      }),
    );
    expect(lastExec(run)).toEqual([...CLI, "verify", "--output", BACKUPS, "--json", "--config", CONFIG, "--remote", OFFSITE, "--read-data", "--identity", `env:${SECRET_VAR.offsiteIdentity}`]);
  });

  it("a backup never pushes inside the toolbox: the caller's own destinations name keys it does not have", async () => {
    files["backup-drill.config.json"] = JSON.stringify({ offsite: { destinations: { host: { endpoint: "http://x", bucket: "bbb", accessKey: "env:HOST_ONLY", secretKey: "env:HOST_ONLY" } } } });
    const run = cliRun(await record(async () => void (await new BackupDrill().backup(undefined, configFile(), service("host-pg")))));
    expect(JSON.parse(newFile(run, CONFIG)).offsite).toBeUndefined();
  });

  it("--from-offsite without a destination is refused before anything runs", async () => {
    let error: Error | undefined;
    const qs = await record(async () => {
      await new BackupDrill().restoreDrill(backups(), undefined, undefined, true).catch((e: Error) => (error = e));
    });
    expect(error?.message).toMatch(/--from-offsite needs --offsite-endpoint/);
    expect(qs.filter((q) => lastExec(q.chain)?.[1] === CLI[1])).toEqual([]);
  });
});

describe("failures carry the CLI's own words", () => {
  it("a backup the CLI fails (exit 1) fails the call with the CLI's last lines", async () => {
    Object.assign(cli, { exitCode: 1, stderr: "[ 0.1s] backup 2026-...: postgres\nbackup-drill backup: error: postgres probe: cannot connect: ECONNREFUSED\n" });
    let error: Error | undefined;
    await record(async () => {
      await new BackupDrill().backup(undefined, undefined, service("host-pg")).catch((e: Error) => (error = e));
    });
    expect(error?.message).toMatch(/^backup-drill backup exited with code 1:/);
    expect(error?.message).toContain("backup-drill backup: error: postgres probe: cannot connect: ECONNREFUSED");
  });

  it("verify fails on findings (exit 3), naming them", async () => {
    Object.assign(cli, { exitCode: 3, stdout: "verify 2026-11-25T16-39-20Z: 1 finding\n  checksum-mismatch  redis/dump.rdb\n" });
    let error: Error | undefined;
    await record(async () => {
      await new BackupDrill().verify(backups()).catch((e: Error) => (error = e));
    });
    expect(error?.message).toContain("checksum-mismatch  redis/dump.rdb");
  });
});

describe("restore-drill", () => {
  it("uses the tools of the set's recorded versions and returns the backups root also when a check failed (exit 3)", async () => {
    cli.exitCode = 3;
    let returned: Field[] = [];
    const qs = await record(async () => {
      returned = originOf(await (await new BackupDrill().restoreDrill(backups(), undefined, configFile())).id());
    });
    const run = cliRun(qs);
    expect(lastExec(run)).toEqual([...CLI, "restore-drill", "--output", BACKUPS, "--config", CONFIG]);
    expect(fromImages(run)[0]).toBe("postgres:15-bookworm");
    expect(fromImages(fileOrigin(run, "/usr/local/bin/redis-server"))).toEqual(["redis:7.0-bookworm"]);
    expect(JSON.parse(newFile(run, CONFIG))).toEqual(JSON.parse(files["backup-drill.config.json"]!));
    expect(returned.at(-1)).toEqual({ name: "directory", args: { path: BACKUPS } });
    // The drill's throwaway servers run inside the toolbox, as on a host: no service is bound.
    expect(fieldsNamed(run, "withServiceBinding")).toEqual([]);
  });

  it("a drill that cannot run (exit 1) fails the call", async () => {
    Object.assign(cli, { exitCode: 1, stderr: "backup-drill restore-drill: error: throwaway postgres: initdb failed\n" });
    let error: Error | undefined;
    await record(async () => {
      await new BackupDrill().restoreDrill(backups(), SET_ID).catch((e: Error) => (error = e));
    });
    expect(error?.message).toContain("initdb failed");
  });
});

describe("the other functions run the matching CLI command", () => {
  it("freshness writes freshness.json (stdout), .md and .prom into the returned directory and accepts every Nagios code", async () => {
    cli.exitCode = 2;
    let returned: Field[] = [];
    const run = cliRun(
      await record(async () => {
        returned = originOf(await (await new BackupDrill().freshness(backups(), undefined, true, "2026-12-01T00:00:00Z")).id());
      }),
    );
    expect(lastExec(run)).toEqual([...CLI, "freshness", "--output", BACKUPS, "--json", "--prometheus", "/report/freshness.prom", "--markdown", "/report/freshness.md", "--deep", "--now", "2026-12-01T00:00:00Z"]);
    expect(fieldsNamed(run, "withExec").at(-1)!.args.redirectStdout).toBe("/report/freshness.json");
    expect(returned.at(-1)).toEqual({ name: "directory", args: { path: "/report" } });
  });

  it("restore binds the targets under their aliases and passes every selection flag", async () => {
    cli.exitCode = 2; // a dry run that a real run would refuse still prints its plan
    cli.stdout = "plan: overwrite database app";
    let out = "";
    const run = cliRun(
      await record(async () => {
        out = await new BackupDrill().restore(
          backups(), SET_ID, undefined,
          service("host-pg2"), "admin", dag.setSecret("t-pg", PG_PASSWORD),
          service("host-redis2"), undefined, dag.setSecret("t-redis", REDIS_PASSWORD),
          undefined, "https://s3.example.com", dag.setSecret("t-ak", MINIO_ACCESS), dag.setSecret("t-sk", MINIO_SECRET),
          ["postgres", "redis"], ["app"], ["app=app_restored"], true, [0, 2], "session:*", ["assets"], "images/", true, false, true,
        );
      }),
    );
    expect(out).toBe("plan: overwrite database app");
    expect(lastExec(run)).toEqual([
      ...CLI, "restore", "--output", BACKUPS, "--target-config", TARGETS, "--set", SET_ID,
      "--services", "postgres,redis", "--db", "app", "--rename-db", "app=app_restored", "--redis-db", "0", "--redis-db", "2", "--bucket", "assets",
      "--globals", "--key-pattern", "session:*", "--prefix", "images/", "--dry-run", "--json",
    ]);
    const targets = loadWrittenConfig(newFile(run, TARGETS), "targets");
    expect(targets.postgres).toMatchObject({ host: ALIAS.targetPg, port: 5434, user: "admin" });
    expect(targets.redis).toMatchObject({ host: ALIAS.targetRedis, port: 6381 });
    expect(targets.minio).toMatchObject({ endpoint: "https://s3.example.com" });
    expect(originOf(named(run, "withServiceBinding", "alias", ALIAS.targetPg)?.args.service)).toEqual([{ name: "hostService", args: { port: 5434 } }]);
    expect(named(run, "withServiceBinding", "alias", ALIAS.targetMinio)).toBeUndefined();
    expect(fieldsNamed(run, "withSecretVariable").map((f) => f.args.name).sort()).toEqual(
      [SECRET_VAR.targetPgPassword, SECRET_VAR.targetRedisPassword, SECRET_VAR.targetMinioAccessKey, SECRET_VAR.targetMinioSecretKey].sort(),
    );
  });

  it("a real restore that the CLI refuses (exit 2) fails the call", async () => {
    Object.assign(cli, { exitCode: 2, stderr: "backup-drill restore: refusing to overwrite: postgres database app has 3 user objects\n" });
    let error: Error | undefined;
    await record(async () => {
      await new BackupDrill().restore(backups(), undefined, undefined, service("host-pg2")).catch((e: Error) => (error = e));
    });
    expect(error?.message).toContain("refusing to overwrite");
  });

  it.each([
    ["status", (m: BackupDrill) => m.status(backups(), undefined, true, undefined, true), ["status", "--output", BACKUPS, "--formats", "--json"]],
    ["prune", (m: BackupDrill) => m.prune(backups(), configFile(), true), ["prune", "--output", BACKUPS, "--dry-run", "--config", CONFIG]],
    ["verify", (m: BackupDrill) => m.verify(backups(), SET_ID, false, true), ["verify", "--output", BACKUPS, "--set", SET_ID, "--no-formats", "--json"]],
    ["sandbox", (m: BackupDrill) => m.sandbox(16, "7.2"), ["sandbox", "--output", BACKUPS]],
    ["check", (m: BackupDrill) => m.check(undefined, service("host-pg"), "backup", undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, true), ["check", "--config", CONFIG, "--output", BACKUPS, "--json"]],
  ] as const)("%s", async (_name, call, args) => {
    const run = cliRun(
      await record(async () => {
        const r = await call(new BackupDrill());
        if (typeof r !== "string") await (r as Directory).id();
      }),
    );
    expect(lastExec(run)).toEqual([...CLI, ...args]);
    expect(envOf(run, RUNNER_ENV)).toBe("dagger");
  });

  it("the sandbox builds the toolbox of the versions asked for", async () => {
    const run = cliRun(await record(async () => void (await (await new BackupDrill().sandbox(16, "7.2")).id())));
    expect(fromImages(run)[0]).toBe("postgres:16-bookworm");
    expect(fromImages(fileOrigin(run, "/usr/local/bin/redis-server"))).toEqual(["redis:7.2-bookworm"]);
  });

  it("version reads package.json from the module source", async () => {
    let v = "";
    await record(async () => {
      v = await new BackupDrill().version();
    });
    expect(v).toBe("9.9.9");
  });
});
