/**
 * The shell script a user would otherwise write, timed on the same servers:
 * pg_dump / redis-cli --rdb / mc mirror for a backup, pg_restore / an RDB
 * load / mc mirror back for a restore. At their defaults (one after another,
 * pg_dump's own compression and one job) and at our settings (our jobs and
 * compression, the services side by side as our backup runs them).
 */
import { execFile } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { connectRedis } from "../probes/redis.js";
import { REDIS_RDB } from "../pipeline/plan.js";
import type { SandboxServers } from "../pipeline/sandbox.js";
import { startRedis } from "../pipeline/throwaway/servers.js";
import { resolveTool } from "../pipeline/tools.js";

const execFileAsync = promisify(execFile);

export async function run(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await execFileAsync(bin, args, { env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`${bin} ${args.join(" ")}: ${(err as { stderr?: string }).stderr?.slice(-500) ?? (err as Error).message}`);
  }
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** How the raw tools reach one set of servers. */
export type Conn = { pgArgs: string[]; pgEnv: NodeJS.ProcessEnv; redisArgs: string[]; redisEnv: NodeJS.ProcessEnv; mcEnv: NodeJS.ProcessEnv };

export function conn(s: SandboxServers, mcConfigDir: string): Conn {
  const url = new URL(s.minio.endpoint);
  url.username = encodeURIComponent(s.minio.accessKey.reveal());
  url.password = encodeURIComponent(s.minio.secretKey.reveal());
  return {
    pgArgs: ["-h", s.postgres.host, "-p", String(s.postgres.port), "-U", "postgres"],
    pgEnv: { PGPASSWORD: s.postgres.password.reveal() },
    redisArgs: ["-h", s.redis.host, "-p", String(s.redis.port), "--no-auth-warning"],
    redisEnv: { REDISCLI_AUTH: s.redis.password.reveal() },
    mcEnv: { MC_HOST_b: url.toString().replace(/\/$/, ""), MC_CONFIG_DIR: mcConfigDir },
  };
}

/** What the raw backup is told: pg_dump's settings; omitted, pg_dump's defaults (gzip level 6, one job). */
export type RawSettings = { jobs?: number; compression?: string; sideBySide: boolean };

/** pg_dump -Z for our compression setting ("none", "gzip:N"). */
function pgDumpZ(compression: string): string {
  if (compression === "none") return "0";
  const m = /^gzip(?::(\d))?$/.exec(compression);
  if (!m) throw new Error(`bench: pg_dump 15 has no -Z for ${compression}`);
  return m[1] ?? "6";
}

/** One backup with the raw tools into `dir`; the wall time of each service's part. */
export async function rawBackup(c: Conn, dir: string, what: { databases: string[]; buckets: string[] }, settings: RawSettings): Promise<Record<string, number>> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const pgOpts = [...(settings.jobs ? ["-j", String(settings.jobs)] : []), ...(settings.compression ? ["-Z", pgDumpZ(settings.compression)] : [])];
  const dump = (db: string) => run(resolveTool("pg_dump"), ["-Fd", ...pgOpts, ...c.pgArgs, "-f", join(dir, db), db], c.pgEnv);
  const parts: Record<string, () => Promise<unknown>> = {
    postgres: async () => {
      if (settings.sideBySide) await Promise.all(what.databases.map(dump));
      else for (const db of what.databases) await dump(db);
    },
    redis: () => run(resolveTool("redis-cli"), [...c.redisArgs, "--rdb", join(dir, "dump.rdb")], c.redisEnv),
    minio: async () => {
      for (const b of what.buckets) await run(resolveTool("mc"), ["mirror", "--quiet", `b/${b}`, join(dir, "minio", b)], c.mcEnv);
    },
  };
  return timeParts(parts, settings.sideBySide);
}

/** Restore a set with the raw tools into the given (empty) servers: pg_restore, Redis loading the RDB (or RESTORE commands piped), mc mirror back. */
export async function rawRestore(
  setDir: string,
  what: { databases: string[]; buckets: string[] },
  c: Conn,
  opts: { jobs: number; sideBySide: boolean; redis: "load-rdb" | { pipe: string } },
): Promise<Record<string, number>> {
  const restore = (db: string) =>
    run(resolveTool("pg_restore"), ["-j", String(opts.jobs), "--create", "--clean", "--if-exists", ...c.pgArgs, "-d", "template1", join(setDir, "postgres", db)], c.pgEnv);
  const parts: Record<string, () => Promise<unknown>> = {
    postgres: async () => {
      if (opts.sideBySide) await Promise.all(what.databases.map(restore));
      else for (const db of what.databases) await restore(db);
    },
    redis: async () => {
      if (opts.redis === "load-rdb") await (await startRedis({ tools: {}, rdb: join(setDir, REDIS_RDB) })).stop();
      else await run("sh", ["-c", `"$0" "$@" --pipe < '${opts.redis.pipe}'`, resolveTool("redis-cli"), ...c.redisArgs], c.redisEnv);
    },
    minio: async () => {
      for (const b of what.buckets) {
        await run(resolveTool("mc"), ["mb", "--ignore-existing", `b/${b}`], c.mcEnv);
        await run(resolveTool("mc"), ["mirror", "--quiet", join(setDir, "minio", b), `b/${b}`], c.mcEnv);
      }
    },
  };
  return timeParts(parts, opts.sideBySide);
}

/** Each part's wall time, and "wall": their sum one after another, or the span side by side. */
async function timeParts(parts: Record<string, () => Promise<unknown>>, sideBySide: boolean): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const t0 = performance.now();
  if (sideBySide) {
    await Promise.all(Object.entries(parts).map(async ([k, fn]) => (out[k] = (await timed(fn)).ms)));
  } else {
    for (const [k, fn] of Object.entries(parts)) out[k] = (await timed(fn)).ms;
  }
  out.wall = performance.now() - t0;
  return out;
}

/** pg_dump of one database at each compression: wall time and bytes on disk (for the README's table). */
export async function compressionTable(c: Conn, db: string, dir: string, jobs: number, levels: string[]): Promise<{ compression: string; ms: number; bytes: number }[]> {
  const rows = [];
  mkdirSync(dir, { recursive: true });
  for (const compression of levels) {
    const out = join(dir, `z-${compression.replace(":", "")}`);
    rmSync(out, { recursive: true, force: true });
    const { ms } = await timed(() => run(resolveTool("pg_dump"), ["-Fd", "-j", String(jobs), "-Z", pgDumpZ(compression), ...c.pgArgs, "-f", out, db], c.pgEnv));
    rows.push({ compression, ms, bytes: await duBytes(out) });
    rmSync(out, { recursive: true, force: true });
  }
  return rows;
}

/** Apparent bytes of the files under a directory. */
export async function duBytes(dir: string): Promise<number> {
  const { stdout } = await execFileAsync("du", ["-sb", dir]);
  return Number(stdout.split("\t")[0]);
}

/** RESTORE commands for every key of the set's RDB, as redis-cli --pipe input (built untimed). */
export async function restoreCommands(setDir: string, file: string): Promise<number> {
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
