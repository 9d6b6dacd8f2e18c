import { execFile } from "node:child_process";
import { chownSync, copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { ToolPaths } from "../config.js";
import { OperationError } from "../errors.js";
import { Secret } from "../secret.js";
import { resolveTool } from "../tools.js";
import { connectPostgres } from "../../probes/postgres.js";
import { connectRedis, parseInfo } from "../../probes/redis.js";
import { runSupervised } from "../runners/children.js";
import { freePort, makeTempDir, removeTempDir, spawnServer, type ServerProcess } from "./process.js";
import { randomBytes } from "node:crypto";

const execFileAsync = promisify(execFile);

export function randomPassword(): Secret {
  return new Secret(randomBytes(18).toString("base64url"), "generated");
}

/** PostgreSQL refuses to run as root: as root, run it as the postgres user. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new OperationError("running as root, but there is no postgres user to run PostgreSQL as");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

async function withPortRetry<T>(start: (port: number) => Promise<T>): Promise<T> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      last = err;
      if (!/address already in use|EADDRINUSE|bind/i.test((err as Error).message)) throw err;
    }
  }
  throw last;
}

export type PostgresServer = ServerProcess & { user: string; password: Secret; version: string };

export type PostgresServerOptions = {
  tools: ToolPaths;
  password?: Secret;
  /** Trade durability for speed (test fixtures only): fsync off. */
  fast?: boolean;
};

export async function startPostgres(opts: PostgresServerOptions): Promise<PostgresServer> {
  const initdb = resolveTool("initdb", opts.tools);
  const postgres = resolveTool("postgres", opts.tools);
  const password = opts.password ?? randomPassword();
  const owner = postgresUser();
  return withPortRetry(async (port) => {
    const dir = makeTempDir("pg", owner ? { ...owner, name: "postgres" } : undefined);
    const data = join(dir, "data");
    const pwfile = join(dir, "pwfile");
    try {
      mkdirSync(data, { mode: 0o700 });
      writeFileSync(pwfile, `${password.reveal()}\n`, { mode: 0o600 });
      if (owner) for (const p of [dir, data, pwfile]) chownSync(p, owner.uid, owner.gid);
      await runSupervised(
        initdb,
        ["-D", data, "--username=postgres", `--pwfile=${pwfile}`, "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
        { cwd: dir, ...(owner ?? {}), timeoutMs: 120_000 },
      );
    } catch (err) {
      removeTempDir(dir);
      throw new OperationError(`throwaway postgres: initdb failed: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
    } finally {
      rmSync(pwfile, { force: true });
    }
    const { stdout } = await execFileAsync(postgres, ["--version"]);
    const version = /(\d+\.\d+)/.exec(stdout)?.[1] ?? "unknown";
    const settings = [
      `listen_addresses=127.0.0.1`,
      `port=${port}`,
      // TCP only: a Unix socket path under a long TMPDIR exceeds the 107-byte limit and the server refuses to start.
      "unix_socket_directories=",
      ...(opts.fast ? ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] : []),
    ];
    const target = { host: "127.0.0.1", port, user: "postgres", password };
    const server = await spawnServer({
      name: `throwaway postgres :${port}`,
      bin: postgres,
      args: ["-D", data, ...settings.flatMap((s) => ["-c", s])],
      dir,
      port,
      ...(owner ?? {}),
      stopSignal: "SIGINT", // fast shutdown
      ready: async () => {
        const c = await connectPostgres(target, "postgres");
        await c.end();
        return true;
      },
    });
    return { ...server, user: "postgres", password, version };
  });
}

export type RedisServer = ServerProcess & { password: Secret; version: string };

export type RedisServerOptions = {
  tools: ToolPaths;
  password?: Secret;
  /** An RDB to load at start (copied into the server's directory). */
  rdb?: string;
  /**
   * Link the RDB instead of copying it: for a server that only reads it
   * (it never saves: `save ""`, and a save would replace the link, not the file).
   */
  linkRdb?: boolean;
  /** Extra redis.conf lines. */
  config?: string[];
};

export async function startRedis(opts: RedisServerOptions): Promise<RedisServer> {
  const bin = resolveTool("redis-server", opts.tools);
  const password = opts.password ?? randomPassword();
  const { stdout } = await execFileAsync(bin, ["--version"]);
  const version = /v=(\d+\.\d+\.\d+)/.exec(stdout)?.[1] ?? "unknown";
  return withPortRetry(async (port) => {
    const dir = makeTempDir("redis");
    if (opts.rdb && opts.linkRdb) symlinkSync(resolve(opts.rdb), join(dir, "dump.rdb"));
    else if (opts.rdb) copyFileSync(opts.rdb, join(dir, "dump.rdb"));
    // The config, password included, goes in on stdin: never on a command line.
    const conf = [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      "dbfilename dump.rdb",
      `requirepass "${password.reveal()}"`,
      'save ""',
      "appendonly no",
      "daemonize no",
      "repl-diskless-sync-delay 0",
      ...(opts.config ?? []),
    ].join("\n");
    const target = { host: "127.0.0.1", port, password };
    const server = await spawnServer({
      name: `throwaway redis :${port}`,
      bin,
      args: ["-"],
      stdin: `${conf}\n`,
      dir,
      port,
      stopSignal: "SIGTERM",
      ready: async () => {
        const c = await connectRedis(target);
        try {
          const info = parseInfo(await c.info("persistence"));
          return info.loading === "0";
        } finally {
          c.disconnect();
        }
      },
      readyTimeoutMs: 300_000, // loading a large RDB takes a while
    });
    return { ...server, password, version };
  });
}

export type MinioServer = ServerProcess & { endpoint: string; accessKey: Secret; secretKey: Secret };

export async function startMinio(opts: { tools: ToolPaths; accessKey?: Secret; secretKey?: Secret }): Promise<MinioServer> {
  const bin = resolveTool("minio", opts.tools);
  const accessKey = opts.accessKey ?? new Secret(`drill${randomBytes(4).toString("hex")}`, "generated");
  const secretKey = opts.secretKey ?? randomPassword();
  return withPortRetry(async (port) => {
    const consolePort = await freePort();
    const dir = makeTempDir("minio");
    const endpoint = `http://127.0.0.1:${port}`;
    const server = await spawnServer({
      name: `throwaway minio :${port}`,
      bin,
      args: ["server", join(dir, "data"), "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${consolePort}`, "--quiet"],
      dir,
      port,
      env: {
        ...process.env,
        MINIO_ROOT_USER: accessKey.reveal(),
        MINIO_ROOT_PASSWORD: secretKey.reveal(),
        MINIO_BROWSER: "off",
        MINIO_UPDATE: "off",
      },
      stopSignal: "SIGTERM",
      ready: async () => (await fetch(`${endpoint}/minio/health/ready`)).ok,
    });
    return { ...server, endpoint, accessKey, secretKey };
  });
}
