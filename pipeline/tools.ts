import { execFile } from "node:child_process";
import { accessSync, constants, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import type { ToolPaths } from "./config.js";
import { OperationError } from "./errors.js";

const execFileAsync = promisify(execFile);

/** Every external binary backup-drill may run on a host. */
export type HostTool =
  | "pg_dump"
  | "pg_dumpall"
  | "pg_restore"
  | "psql"
  | "pgbench"
  | "initdb"
  | "postgres"
  | "redis-cli"
  | "redis-server"
  | "redis-check-rdb"
  | "mc"
  | "minio"
  | "versitygw"
  | "age"
  | "age-keygen";

const CONFIG_KEY: Partial<Record<HostTool, keyof ToolPaths>> = {
  pg_dump: "pg_dump",
  pg_dumpall: "pg_dumpall",
  pg_restore: "pg_restore",
  psql: "psql",
  "redis-cli": "redis_cli",
  "redis-server": "redis_server",
  "redis-check-rdb": "redis_check_rdb",
  mc: "mc",
  minio: "minio",
};

const POSTGRES_SERVER_TOOLS = new Set<HostTool>(["initdb", "postgres"]);
const POSTGRES_TOOLS = new Set<HostTool>(["pg_dump", "pg_dumpall", "pg_restore", "psql", "pgbench", "initdb", "postgres"]);

const INSTALL_HINT: Record<HostTool, string> = {
  pg_dump: "install the PostgreSQL client (apt install postgresql-client) or set tools.pg_dump",
  pg_dumpall: "install the PostgreSQL client (apt install postgresql-client) or set tools.pg_dumpall",
  pg_restore: "install the PostgreSQL client (apt install postgresql-client) or set tools.pg_restore",
  psql: "install the PostgreSQL client (apt install postgresql-client) or set tools.psql",
  pgbench: "install postgresql-contrib / the PostgreSQL server package",
  initdb: "install the PostgreSQL server (apt install postgresql) or set tools.postgres_bin",
  postgres: "install the PostgreSQL server (apt install postgresql) or set tools.postgres_bin",
  "redis-cli": "install redis-tools or set tools.redis_cli",
  "redis-server": "install redis-server or set tools.redis_server",
  "redis-check-rdb": "install redis-tools or set tools.redis_check_rdb",
  mc: "run scripts/ensure-tools.sh or set tools.mc",
  minio: "run scripts/ensure-tools.sh or set tools.minio",
  versitygw: "run scripts/ensure-tools.sh (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)",
  age: "run scripts/ensure-tools.sh (go install filippo.io/age/cmd/...@v1.3.2) or apt install age",
  "age-keygen": "run scripts/ensure-tools.sh (go install filippo.io/age/cmd/...@v1.3.2) or apt install age",
};

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Debian keeps server binaries in /usr/lib/postgresql/<major>/bin, newest first. */
function debianPostgresDirs(): string[] {
  try {
    return readdirSync("/usr/lib/postgresql")
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => Number(b) - Number(a))
      .map((d) => `/usr/lib/postgresql/${d}/bin`);
  } catch {
    return [];
  }
}

function candidates(tool: HostTool, paths: ToolPaths, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  const key = CONFIG_KEY[tool];
  if (key && paths[key]) return [paths[key]!];
  if (POSTGRES_SERVER_TOOLS.has(tool) && paths.postgres_bin) return [join(paths.postgres_bin, tool)];
  for (const dir of (env.PATH ?? "").split(delimiter)) if (dir) out.push(join(dir, tool));
  if (POSTGRES_TOOLS.has(tool)) for (const dir of debianPostgresDirs()) out.push(join(dir, tool));
  if (tool === "mc" || tool === "minio" || tool === "versitygw" || tool === "age" || tool === "age-keygen") {
    out.push(join(env.GOBIN ?? join(env.GOPATH ?? join(homedir(), "go"), "bin"), tool), join("/usr/local/bin", tool));
  }
  return out;
}

/** The absolute path of a tool, or an OperationError saying how to install it. */
export function resolveTool(tool: HostTool, paths: ToolPaths = {}, env: NodeJS.ProcessEnv = process.env): string {
  for (const c of candidates(tool, paths, env)) if (isExecutable(c)) return c;
  throw new OperationError(`${tool} not found: ${INSTALL_HINT[tool]}`);
}

/** The first "major.minor[.patch]" a tool prints for --version. */
export async function toolVersion(path: string): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(path, ["--version"], { timeout: 15_000 }));
  } catch (err) {
    throw new OperationError(`${path} --version failed: ${(err as Error).message}`, { cause: err });
  }
  const m = /(\d+\.\d+(?:\.\d+)?)/.exec(stdout);
  if (!m) throw new OperationError(`${path} --version printed no version: ${stdout.trim().slice(0, 200)}`);
  return m[1]!;
}

export function majorOf(version: string): number {
  return Number(version.split(".")[0]);
}
