import type { ServiceName } from "./config.js";

/** Binaries a Step may run. argv[0] is always one of these names; each runner resolves it. */
export type ToolName = "pg_dump" | "pg_dumpall" | "pg_restore" | "psql" | "redis-cli" | "redis-check-rdb" | "mc";

/** Named secrets a Step may ask for; the runner supplies each as an environment variable. */
export type SecretName =
  | "postgres.password"
  | "redis.password"
  | "minio.mcHost"
  /** Credentials of a restore or drill target. */
  | "postgres.target.password"
  | "redis.target.password"
  | "minio.target.mcHost";

/**
 * One external tool call. Built by pure functions in plan.ts; executed by
 * runners/host.ts (on a host, or inside the Dagger toolbox container: the
 * same runner in both places). Paths in argv are relative to the set
 * directory, which is the working directory.
 */
export type Step = {
  /** Unique within a run, e.g. "postgres/dump/app". */
  id: string;
  service: ServiceName;
  argv: [ToolName, ...string[]];
  /** Plain environment (never a secret). */
  env: Record<string, string>;
  /** Environment variable name -> secret name. */
  secretEnv: Record<string, SecretName>;
  /** Files or directories the step creates, relative to the set directory. */
  outputs: string[];
  /** The step's result is its stdout (e.g. pg_dump --schema-only): the runner returns it whole. */
  captureStdout?: boolean;
  /** The server the step talks to, for messages: "postgres at db:5432". */
  waitsFor?: string;
  /** The step may sit idle while the server works (pg_restore's index builds): timeouts.restoreStall applies. */
  waitsOnServerWork?: boolean;
};

/** Where a step reaches a service: the configured address (under Dagger, the alias the service is bound under). */
export type Endpoint = { host: string; port: number };
