/** The backup-drill CLI as the bench runs it: wall time, exit code, output and the process's own peak RSS. */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { SandboxServers } from "../pipeline/sandbox.js";

export const REPO = resolve(new URL("..", import.meta.url).pathname);

export type CliRun = { ms: number; code: number | null; stderr: string; stdout: string; peakRss: number };

/**
 * Run the CLI. Peak RSS is the node process's VmHWM (a high-water mark, so
 * polling it misses nothing but the last 50 ms); the tools and throwaway
 * servers it starts are other processes and not counted.
 */
export function cli(args: string[], env: Record<string, string>): Promise<CliRun> {
  return new Promise((done) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(REPO, "bin/backup-drill.js"), ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    let peakRss = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
      if (process.env.BENCH_VERBOSE) process.stderr.write(d);
    });
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

/** Run the CLI and parse its --json document; a non-zero exit is an error naming the command. */
export async function cliJson<T>(args: string[], env: Record<string, string>): Promise<CliRun & { json: T }> {
  const r = await cli([...args, "--json", ...(process.env.BENCH_VERBOSE ? [] : ["--quiet"])], env);
  if (r.code !== 0) throw new Error(`backup-drill ${args[0]} exited ${r.code}: ${r.stderr.slice(-2000)}${r.stdout.slice(0, 2000)}`);
  return { ...r, json: JSON.parse(r.stdout) as T };
}

/**
 * A config at our defaults (no jobs, compression or sample size given)
 * for the services named, and the environment its secret references read.
 */
export function writeConfig(s: SandboxServers, file: string, output: string, services: ("postgres" | "redis" | "minio")[]): Record<string, string> {
  const cfg: Record<string, unknown> = { output };
  if (services.includes("postgres")) cfg.postgres = { host: s.postgres.host, port: s.postgres.port, password: "env:BENCH_PG" };
  if (services.includes("redis")) cfg.redis = { host: s.redis.host, port: s.redis.port, password: "env:BENCH_REDIS" };
  if (services.includes("minio")) cfg.minio = { endpoint: s.minio.endpoint, accessKey: "env:BENCH_MINIO_AK", secretKey: "env:BENCH_MINIO_SK" };
  writeFileSync(file, JSON.stringify(cfg));
  return secretsEnv(s, "BENCH");
}

/** Restore targets file for `restore --target-config`. */
export function writeTargets(s: SandboxServers, file: string): Record<string, string> {
  writeFileSync(
    file,
    JSON.stringify({
      postgres: { host: s.postgres.host, port: s.postgres.port, password: "env:TGT_PG" },
      redis: { host: s.redis.host, port: s.redis.port, password: "env:TGT_REDIS" },
      minio: { endpoint: s.minio.endpoint, accessKey: "env:TGT_MINIO_AK", secretKey: "env:TGT_MINIO_SK" },
    }),
  );
  return secretsEnv(s, "TGT");
}

function secretsEnv(s: SandboxServers, prefix: string): Record<string, string> {
  return {
    [`${prefix}_PG`]: s.postgres.password.reveal(),
    [`${prefix}_REDIS`]: s.redis.password.reveal(),
    [`${prefix}_MINIO_AK`]: s.minio.accessKey.reveal(),
    [`${prefix}_MINIO_SK`]: s.minio.secretKey.reveal(),
  };
}
