/**
 * The hermetic toolbox: one container holding every tool backup-drill runs
 * (PostgreSQL's of one major, Redis's of one major.minor, Node, mc, minio)
 * and the project's own CLI. Under Dagger the unchanged CLI runs in it: the
 * same HostRunner, lock, staging, seal, drill and checks as on a host.
 *
 * Everything Dagger shows (types, defaults) lives in src/: the engine's
 * introspector reads this folder only. Only names the module library bundles
 * are imported as values (dag, ReturnType, object, func); the rest are types.
 */
import { randomUUID } from "node:crypto";
import { dag, ReturnType, type Container, type Directory, type Secret, type Service } from "@dagger.io/dagger";

/** Every image shares one Debian release: binaries copied between them share its libc. */
export const DEBIAN = "bookworm";
export const NODE_IMAGE = "node:20-bookworm-slim";
/** minio's go.mod asks for go 1.24; this builds both pinned modules without a toolchain download. */
export const GO_IMAGE = "golang:1.24.8-bookworm";
/** Tools when the data does not say (no PostgreSQL or Redis in the stack, the sandbox). */
export const DEFAULT_POSTGRES_MAJOR = 17;
export const DEFAULT_REDIS_VERSION = "7.4";
/** Same pins as scripts/ensure-tools.sh and pipeline/versions.ts (test/dagger.module.test.ts checks). */
export const MC_MODULE = "github.com/minio/mc@v0.0.0-20250313080218-cf909e1063a9";
export const MINIO_MODULE = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c";

/** Where things are inside the toolbox. */
export const APP = "/app";
export const CLI = ["node", `${APP}/bin/backup-drill.js`];
export const BACKUPS = "/output/backups";
export const CONFIG = "/run/backup-drill/config.json";
export const TARGETS = "/run/backup-drill/targets.json";
/** A plain variable with a fresh value per call: no call ever returns a cached (stale) result. */
export const CACHE_BUSTER = "BACKUP_DRILL_CALL";
/** The CLI records this in manifest.runner and the drill summary. */
export const RUNNER_ENV = "BACKUP_DRILL_RUNNER";

/** Aliases the servers are bound under; the generated config names them as hosts. */
export const ALIAS = { pg: "pg", redis: "redis", minio: "minio", targetPg: "target-pg", targetRedis: "target-redis", targetMinio: "target-minio" } as const;

/**
 * Secret variables the generated config refers to (env:NAME). None of them is
 * an environment override the CLI reads (BACKUP_DRILL_*), so a value never
 * lands where a reference is expected.
 */
export const SECRET_VAR = {
  pgPassword: "SECRET_PG_PASSWORD",
  redisPassword: "SECRET_REDIS_PASSWORD",
  minioAccessKey: "SECRET_MINIO_ACCESS_KEY",
  minioSecretKey: "SECRET_MINIO_SECRET_KEY",
  targetPgPassword: "SECRET_TARGET_PG_PASSWORD",
  targetRedisPassword: "SECRET_TARGET_REDIS_PASSWORD",
  targetMinioAccessKey: "SECRET_TARGET_MINIO_ACCESS_KEY",
  targetMinioSecretKey: "SECRET_TARGET_MINIO_SECRET_KEY",
  offsiteAccessKey: "SECRET_OFFSITE_ACCESS_KEY",
  offsiteSecretKey: "SECRET_OFFSITE_SECRET_KEY",
  offsiteIdentity: "SECRET_OFFSITE_IDENTITY",
} as const;

/** The name of the offsite destination the module's arguments describe. */
export const OFFSITE = "offsite";

export type Images = { node: string; go: string };
/** The versions the tools must match: PostgreSQL major, Redis "major.minor". */
export type ToolVersions = { postgresMajor: number; redisVersion: string };

export function postgresImage(major: number): string {
  return `postgres:${major}-${DEBIAN}`;
}

export function redisImage(version: string): string {
  const [major, minor] = version.split(".");
  return `redis:${major}.${minor ?? "0"}-${DEBIAN}`;
}

/**
 * The toolbox for one PostgreSQL major and one Redis major.minor. The layers
 * that do not depend on them (npm ci, the Go builds) are shared and cached:
 * `npm ci` sees only package.json and the lock, mc and minio build side by
 * side with the module and build caches mounted.
 */
export function toolbox(images: Images, versions: ToolVersions): Container {
  const source = dag.currentModule().source();
  const node = dag.container().from(images.node);
  const dependencies = node
    .withMountedCache("/root/.npm", dag.cacheVolume("backup-drill-npm"))
    .withWorkdir(APP)
    .withFile(`${APP}/package.json`, source.file("package.json"))
    .withFile(`${APP}/package-lock.json`, source.file("package-lock.json"))
    .withExec(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"])
    .directory(`${APP}/node_modules`);
  const go = dag
    .container()
    .from(images.go)
    .withMountedCache("/go/pkg/mod", dag.cacheVolume("backup-drill-go-mod"))
    .withMountedCache("/root/.cache/go-build", dag.cacheVolume("backup-drill-go-build"))
    .withEnvVariable("CGO_ENABLED", "0")
    .withEnvVariable("GOFLAGS", "-trimpath")
    .withEnvVariable("GOBIN", "/out");
  const redis = dag.container().from(redisImage(versions.redisVersion));
  return (
    dag
      .container()
      .from(postgresImage(versions.postgresMajor))
      .withFile("/usr/local/bin/node", node.file("/usr/local/bin/node"))
      .withFile("/usr/local/bin/redis-server", redis.file("/usr/local/bin/redis-server"))
      .withFile("/usr/local/bin/redis-cli", redis.file("/usr/local/bin/redis-cli"))
      // redis-server acts as redis-check-rdb when called by that name (as in the Redis image).
      .withSymlink("redis-server", "/usr/local/bin/redis-check-rdb")
      .withFile("/usr/local/bin/mc", go.withExec(["go", "install", MC_MODULE]).file("/out/mc"))
      .withFile("/usr/local/bin/minio", go.withExec(["go", "install", MINIO_MODULE]).file("/out/minio"))
      .withDirectory(`${APP}/node_modules`, dependencies)
      .withDirectory(APP, source, { include: ["bin/**", "pipeline/**", "probes/**", "package.json", "tsconfig.json"] })
      .withEnvVariable(RUNNER_ENV, "dagger")
      .withWorkdir("/work")
  );
}

/** One server the CLI reaches: bound under `alias` (unless reached by URL), its secrets as secret variables. */
export type Binding = { alias: string; service?: Service; secrets: Record<string, Secret | undefined> };

/** The port a bound service listens on (its first exposed port). */
export async function servicePort(service: Service): Promise<number> {
  const endpoint = await service.endpoint();
  const m = /:(\d+)$/.exec(endpoint);
  if (!m) throw new Error(`cannot tell the port of service endpoint "${endpoint}"`);
  return Number(m[1]);
}

export type CliRun = {
  /** The CLI's arguments after `backup-drill`. */
  args: string[];
  /** The backups root, mounted at BACKUPS (an empty one when absent). */
  backups?: Directory;
  /** Files to write before the run (the generated config, a targets file). */
  files?: Record<string, string>;
  bindings?: Binding[];
  /** Exit codes that still return the container (e.g. 3 for a drill whose checks failed). */
  accept?: number[];
  /** Where stdout goes (a file in the container), instead of the call's log. */
  stdoutTo?: string;
};

/**
 * Run the project's CLI in the toolbox. A code outside `accept` fails the
 * call with the CLI's own last lines (its one-line error, its findings).
 */
export async function runCli(box: Container, run: CliRun): Promise<Container> {
  let ctr = box.withDirectory(BACKUPS, run.backups ?? dag.directory());
  for (const [path, text] of Object.entries(run.files ?? {})) ctr = ctr.withNewFile(path, text, { permissions: 0o644 });
  for (const b of run.bindings ?? []) {
    if (b.service) ctr = ctr.withServiceBinding(b.alias, b.service);
    for (const [name, secret] of Object.entries(b.secrets)) if (secret) ctr = ctr.withSecretVariable(name, secret);
  }
  const ran = ctr
    .withEnvVariable(CACHE_BUSTER, randomUUID())
    .withExec([...CLI, ...run.args], { expect: ReturnType.Any, ...(run.stdoutTo ? { redirectStdout: run.stdoutTo } : {}) });
  const code = await ran.exitCode();
  if (code !== 0 && !(run.accept ?? []).includes(code)) {
    const [out, err] = await Promise.all([run.stdoutTo ? "" : ran.stdout(), ran.stderr()]);
    const tail = `${out}\n${err}`.trim().split("\n").slice(-15).join("\n");
    throw new Error(`backup-drill ${run.args[0]} exited with code ${code}:\n${tail}`);
  }
  return ran;
}

/** The tool versions a set was made with, from the manifest of the set (or of latest.json's set). */
export async function setToolVersions(backups: Directory, set?: string): Promise<ToolVersions> {
  const defaults = { postgresMajor: DEFAULT_POSTGRES_MAJOR, redisVersion: DEFAULT_REDIS_VERSION };
  let id = set;
  if (id === undefined) {
    const names = await backups.entries();
    if (!names.includes("latest.json")) return defaults; // the CLI says what is missing
    id = (JSON.parse(await backups.file("latest.json").contents()) as { id: string }).id;
  }
  let manifest: { services?: { postgres?: { serverVersion?: string }; redis?: { version?: string } } };
  try {
    manifest = JSON.parse(await backups.file(`${id}/manifest.json`).contents());
  } catch {
    return defaults; // missing or unreadable: verify in the toolbox reports it exactly
  }
  const pg = manifest.services?.postgres?.serverVersion;
  return {
    postgresMajor: pg ? Number(pg.split(".")[0]) : DEFAULT_POSTGRES_MAJOR,
    redisVersion: manifest.services?.redis?.version ?? DEFAULT_REDIS_VERSION,
  };
}

/** The major of a PostgreSQL service, asked with psql from the newest image we pin. */
export async function probePostgresMajor(pg: Service, port: number, user: string, password?: Secret): Promise<number> {
  let ctr = dag.container().from(postgresImage(DEFAULT_POSTGRES_MAJOR)).withServiceBinding(ALIAS.pg, pg);
  if (password) ctr = ctr.withSecretVariable("PGPASSWORD", password);
  const out = await ctr
    .withEnvVariable(CACHE_BUSTER, randomUUID())
    .withExec(["psql", "--no-psqlrc", "--tuples-only", "--no-align", "--host", ALIAS.pg, "--port", String(port), "--username", user, "--dbname", "postgres", "--command", "SHOW server_version_num"])
    .stdout();
  const num = Number(out.trim());
  if (!Number.isInteger(num) || num < 90000) throw new Error(`postgres: unexpected server_version_num "${out.trim()}"`);
  return Math.floor(num / 10000);
}

/** The "major.minor" of a Redis service, from INFO server. */
export async function probeRedisVersion(redis: Service, port: number, username?: string, password?: Secret): Promise<string> {
  let ctr = dag.container().from(redisImage(DEFAULT_REDIS_VERSION)).withServiceBinding(ALIAS.redis, redis);
  if (password) ctr = ctr.withSecretVariable("REDISCLI_AUTH", password);
  const out = await ctr
    .withEnvVariable(CACHE_BUSTER, randomUUID())
    .withExec(["redis-cli", "-h", ALIAS.redis, "-p", String(port), ...(username ? ["--user", username] : []), "--no-auth-warning", "INFO", "server"])
    .stdout();
  const m = /redis_version:(\d+)\.(\d+)/.exec(out);
  if (!m) throw new Error(`redis: INFO server gave no redis_version`);
  return `${m[1]}.${m[2]}`;
}
