import { mkdir, rm, stat, statfs, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Redis } from "ioredis";
import { connectPostgres, probePostgres, quoteIdent } from "../probes/postgres.js";
import { endpointLabel, getBucketConfig, hasDefaultRetention, listBucketNames, minioClient, runCanary } from "../probes/minio.js";
import { listObjectPages } from "../probes/s3-list.js";
import { connectRedis, parseInfo, redisTarget } from "../probes/redis.js";
import { checkPgDumpVersion } from "./backup/postgres.js";
import type { Config, ServiceName } from "./config.js";
import { UserError } from "./errors.js";
import { humanBytes } from "./report.js";
import { majorOf, resolveTool, toolVersion, type HostTool } from "./tools.js";
import { compressionArgs, METHODS_SINCE_MAJOR, parseCompression } from "./backup/compression.js";

/**
 * Preflight: will tonight's backup work at all? Every configured service is
 * reachable and authenticated, its client tool is present and new enough,
 * the backup user may do what the backup does, the output root is writable
 * and has room for the set. Every check runs; none stops the others.
 */
export type PreflightCheck = {
  service: ServiceName | "output";
  check: string;
  ok: boolean;
  /** What was found (version, counts), or what is wrong. */
  detail: string;
  /** What to do about a failure. */
  fix?: string;
  /** A passed check with something to watch (e.g. room for one set but not for two). */
  warning?: string;
  /** The failure is the config's (a missing password): `backup` exits 2 for it. */
  badInput?: boolean;
};

export type PreflightReport = { ok: boolean; checks: PreflightCheck[]; estimateBytes: number; freeBytes?: number };

export type PreflightOptions = {
  /** Run the bucket canary (write, read back, delete). The backup skips it here: it runs its own. */
  canary?: boolean;
  /** Free space needed beyond the estimate: a fraction of it plus a fixed floor. */
  margin?: { fraction: number; bytes: number };
};

const pass = (service: PreflightCheck["service"], check: string, detail: string): PreflightCheck => ({ service, check, ok: true, detail });
const fail = (service: PreflightCheck["service"], check: string, detail: string, fix: string): PreflightCheck => ({ service, check, ok: false, detail, fix });

function reason(err: unknown): string {
  return (err as Error).message ?? String(err);
}

function toolCheck(service: ServiceName, tool: HostTool, cfg: Config): PreflightCheck {
  try {
    return pass(service, `tool ${tool}`, resolveTool(tool, cfg.tools));
  } catch (err) {
    return fail(service, `tool ${tool}`, reason(err), "install it (scripts/ensure-tools.sh) or set its path under tools");
  }
}

/**
 * postgres.compression against the PostgreSQL tools: pg_dump must write the
 * method, and pg_restore read it back (a set this host could not restore is
 * refused before it is made). A refusal is bad input: backup exits 2.
 */
export function compressionCheck(spec: string, pgDump: string, pgRestore?: string): PreflightCheck {
  const refused = (detail: string, tool: string): PreflightCheck => ({
    ...fail("postgres", "compression", detail, `set postgres.compression to none or gzip[:1-9], or use ${tool} ${METHODS_SINCE_MAJOR} or newer`),
    badInput: true,
  });
  let argv: string[];
  try {
    argv = compressionArgs(spec, { version: pgDump, major: majorOf(pgDump) });
  } catch (err) {
    return refused(reason(err), "pg_dump");
  }
  const { method } = parseCompression(spec);
  if ((method === "lz4" || method === "zstd") && pgRestore !== undefined && majorOf(pgRestore) < METHODS_SINCE_MAJOR) {
    return refused(`postgres.compression: ${method} needs pg_restore ${METHODS_SINCE_MAJOR} or newer to read the dump back, and pg_restore ${pgRestore} is in use`, "pg_restore");
  }
  return pass("postgres", "compression", `${spec} (pg_dump ${pgDump}${argv.length ? `: ${argv.join(" ")}` : ": its default, gzip"})`);
}

async function postgresChecks(cfg: Config, out: PreflightCheck[]): Promise<number> {
  const src = cfg.postgres!;
  const where = `${src.host}:${src.port}`;
  let server;
  try {
    server = await probePostgres(src);
    out.push(pass("postgres", "connect", `PostgreSQL ${server.serverVersion} at ${where} as ${src.user}`));
  } catch (err) {
    const msg = reason(err);
    if (err instanceof UserError) {
      out.push({ ...fail("postgres", "connect", msg.replace(/^postgres [^:]+: /, ""), `set postgres.password (or --pg-password env:NAME) for role "${src.user}"`), badInput: true });
      return 0;
    }
    const fix = /password authentication|no password|authentication failed/i.test(msg)
      ? `check the password for role "${src.user}" (postgres.password${src.password ? ` = ${src.password.ref}` : ""})`
      : `is PostgreSQL running and reachable at ${where}?`;
    out.push(fail("postgres", "connect", msg.replace(/^postgres [^:]+: /, ""), fix));
    return 0;
  }
  const versions: { pg_dump?: string; pg_restore?: string } = {};
  for (const tool of ["pg_dump", "pg_restore"] as const) {
    const found = toolCheck("postgres", tool, cfg);
    if (!found.ok) {
      out.push(found);
      continue;
    }
    try {
      const v = await toolVersion(found.detail);
      checkPgDumpVersion(v, server.serverVersion);
      out.push(pass("postgres", `tool ${tool}`, `${tool} ${v} (server ${server.serverVersion})`));
      versions[tool] = v;
    } catch (err) {
      out.push(fail("postgres", `tool ${tool}`, reason(err).replace(/^pg_dump/, tool), `install ${tool} ${server.serverMajor} or newer, or set tools.${tool}`));
    }
  }
  if (versions.pg_dump) out.push(compressionCheck(src.compression, versions.pg_dump, versions.pg_restore));
  const databases = src.databases ?? server.databases;
  let estimate = 0;
  const admin = await connectPostgres(src, "postgres");
  try {
    const role = await admin.query<{ rolsuper: boolean; read_all: boolean }>(
      "SELECT rolsuper, pg_has_role(current_user, 'pg_read_all_data', 'MEMBER') AS read_all FROM pg_roles WHERE rolname = current_user",
    );
    const { rolsuper, read_all } = role.rows[0]!;
    if (src.globals && !rolsuper) {
      out.push(fail("postgres", "globals", `role "${src.user}" is not a superuser: pg_dumpall --globals-only cannot read role passwords`, "use a superuser, or set postgres.globals to false"));
    }
    for (const db of databases) {
      if (!server.databases.includes(db)) {
        out.push(fail("postgres", `database ${db}`, `database "${db}" does not exist at ${where}`, "fix postgres.databases"));
        continue;
      }
      const c = await connectPostgres(src, db).catch((err: unknown) => err as Error);
      if (c instanceof Error) {
        out.push(fail("postgres", `database ${db}`, reason(c), `GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(src.user)}`));
        continue;
      }
      try {
        estimate += Number((await c.query<{ n: string }>("SELECT pg_database_size(current_database())::bigint AS n")).rows[0]!.n);
        if (rolsuper || read_all) {
          out.push(pass("postgres", `read ${db}`, rolsuper ? "superuser" : "member of pg_read_all_data"));
          continue;
        }
        const denied = await c.query<{ name: string }>(`
          SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'S', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
            AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))
          ORDER BY 1 LIMIT 6`);
        if (denied.rows.length === 0) out.push(pass("postgres", `read ${db}`, "every table and sequence is readable"));
        else {
          const names = denied.rows.slice(0, 5).map((r) => r.name).join(", ") + (denied.rows.length > 5 ? " and more" : "");
          out.push(fail("postgres", `read ${db}`, `role "${src.user}" cannot read ${names} in ${db}`, `GRANT pg_read_all_data TO ${quoteIdent(src.user)} (or SELECT on those tables)`));
        }
      } finally {
        await c.end().catch(() => {});
      }
    }
  } finally {
    await admin.end().catch(() => {});
  }
  return estimate;
}

/**
 * Is `command` allowed for this connection? Sent with an argument the
 * command rejects as a syntax error after the ACL check: NOPERM means
 * denied, any other error means allowed — and nothing was executed.
 */
async function allowedByAcl(client: Redis, command: string, harmlessArgs: string[]): Promise<boolean> {
  try {
    await client.call(command, ...harmlessArgs);
    return true;
  } catch (err) {
    return !/NOPERM/i.test(reason(err));
  }
}

async function redisChecks(cfg: Config, out: PreflightCheck[]): Promise<number> {
  const src = cfg.redis!;
  const where = `${src.host}:${src.port}`;
  let client: Redis;
  try {
    client = await connectRedis(redisTarget(src));
  } catch (err) {
    const msg = reason(err);
    const fix = /WRONGPASS|NOAUTH|invalid password|auth/i.test(msg)
      ? `check the password (redis.password${src.password ? ` = ${src.password.ref}` : ""}) and redis.username`
      : `is Redis running and reachable at ${where}?`;
    out.push(fail("redis", "connect", msg.replace(/^redis [^:]+:\d+: /, ""), fix));
    return 0;
  }
  try {
    let info: Record<string, string>;
    try {
      info = parseInfo(await client.info());
      out.push(pass("redis", "connect", `Redis ${info.redis_version} at ${where}`));
    } catch (err) {
      out.push(fail("redis", "INFO", reason(err), `allow INFO for the backup user: ACL SETUSER ${src.username ?? "default"} +info`));
      return 0;
    }
    const user = src.username ?? "default";
    // redis-cli --rdb syncs like a replica (SYNC). ACL DRYRUN answers exactly when the user may ask; otherwise PSYNC stands in.
    let sync: boolean;
    try {
      const r = String(await client.call("ACL", "DRYRUN", user, "SYNC"));
      sync = r === "OK";
    } catch {
      sync = await allowedByAcl(client, "PSYNC", ["backup-drill-preflight", "not-a-number"]);
    }
    out.push(sync ? pass("redis", "replication sync", "allowed") : fail("redis", "replication sync", `user "${user}" may not SYNC (redis-cli --rdb needs it)`, `ACL SETUSER ${user} +sync +psync +replconf`));
    out.push(toolCheck("redis", "redis-cli", cfg), toolCheck("redis", "redis-check-rdb", cfg));
    out.push(await redisServerCheck(cfg, info.redis_version ?? "0"));
    return Number(info.used_memory ?? 0);
  } finally {
    client.disconnect();
  }
}

/** major.minor as one comparable number. */
function minorOf(version: string): number {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major * 1000 + minor;
}

/**
 * The backup loads the pulled dump.rdb into a local redis-server to read the
 * drill's expectations from it: that server must read the source's RDB
 * format, i.e. be at least the source's major.minor.
 */
async function redisServerCheck(cfg: Config, sourceVersion: string): Promise<PreflightCheck> {
  const found = toolCheck("redis", "redis-server", cfg);
  if (!found.ok) return found;
  try {
    const v = await toolVersion(found.detail);
    if (minorOf(v) < minorOf(sourceVersion)) {
      return fail("redis", "tool redis-server", `redis-server ${v} cannot load snapshots of Redis ${sourceVersion}`, `install redis-server ${sourceVersion.split(".").slice(0, 2).join(".")} or newer, or set tools.redis_server`);
    }
    return pass("redis", "tool redis-server", `redis-server ${v} (server ${sourceVersion}): reads the snapshot to describe it`);
  } catch (err) {
    return fail("redis", "tool redis-server", reason(err), "install redis-server or set tools.redis_server");
  }
}

async function minioChecks(cfg: Config, out: PreflightCheck[], opts: PreflightOptions): Promise<number> {
  const src = cfg.minio!;
  const client = minioClient(src);
  let available: string[];
  try {
    available = await listBucketNames(client);
    out.push(pass("minio", "connect", `${endpointLabel(src)}: ${available.length} bucket(s)`));
  } catch (err) {
    const msg = `${(err as { code?: string }).code ? `${(err as { code?: string }).code}: ` : ""}${reason(err)}`;
    const fix = /AccessDenied|SignatureDoesNotMatch|InvalidAccessKeyId|credentials/i.test(msg)
      ? `check minio.accessKey and minio.secretKey (${src.secretKey.ref})`
      : `is the S3 endpoint ${endpointLabel(src)} up?`;
    out.push(fail("minio", "connect", msg, fix));
    return 0;
  }
  out.push(toolCheck("minio", "mc", cfg));
  let estimate = 0;
  for (const bucket of src.buckets ?? available) {
    if (!available.includes(bucket)) {
      out.push(fail("minio", `bucket ${bucket}`, `bucket "${bucket}" does not exist`, "fix minio.buckets"));
      continue;
    }
    try {
      // Page by page: a bucket of millions is counted, never held.
      let count = 0;
      let first: string | undefined;
      for await (const page of listObjectPages(client, bucket)) {
        count += page.items.length;
        for (const o of page.items) {
          estimate += o.size;
          if (first === undefined && !o.key.endsWith("/")) first = o.key;
        }
      }
      if (first !== undefined) await client.statObject(bucket, first);
      out.push(pass("minio", `list+get ${bucket}`, `${count} objects`));
    } catch (err) {
      out.push(fail("minio", `list+get ${bucket}`, reason(err), `grant s3:ListBucket and s3:GetObject on ${bucket}`));
      continue;
    }
    if ((opts.canary ?? true) && hasDefaultRetention(await getBucketConfig(client, bucket, "objectLock").catch(() => undefined))) {
      out.push(pass("minio", `canary ${bucket}`, "not run: the bucket's default retention would keep the canary's object"));
    } else if (opts.canary ?? true) {
      const c = await runCanary(client, bucket);
      out.push(c.ok ? pass("minio", `canary ${bucket}`, "put, read back, delete") : fail("minio", `canary ${bucket}`, c.error ?? "failed", `grant s3:PutObject and s3:DeleteObject on ${bucket}, or set minio.canary to false`));
    }
  }
  return estimate;
}

/**
 * mkdir -p reports ENOENT on a read-only filesystem; creating the first
 * missing directory alone gives the real reason (EROFS, EACCES).
 */
async function realMkdirError(root: string): Promise<string> {
  let dir = root;
  while (!(await stat(dirname(dir)).then((s) => s.isDirectory(), () => false)) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    await mkdir(dir);
    return "ENOENT";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? reason(err);
  }
}

async function outputChecks(root: string, estimate: number, opts: PreflightOptions, out: PreflightCheck[]): Promise<number | undefined> {
  try {
    await mkdir(root, { recursive: true });
    const probe = join(root, `.preflight-${process.pid}`);
    await writeFile(probe, "ok");
    await rm(probe);
    out.push(pass("output", "writable", root));
  } catch (err) {
    // An existing root reports its own error (EACCES, EROFS); a missing one the first directory that cannot be made.
    const exists = await stat(root).then((s) => s.isDirectory(), () => false);
    const code = exists ? ((err as NodeJS.ErrnoException).code ?? reason(err)) : await realMkdirError(root).catch(() => (err as NodeJS.ErrnoException).code ?? reason(err));
    out.push(fail("output", "writable", `${root}: ${code}`, "make the output root writable, or choose another with --output"));
    return undefined;
  }
  const s = await statfs(root);
  const free = Number(s.bavail) * Number(s.bsize);
  const margin = opts.margin ?? { fraction: 0.1, bytes: 64 * 1024 * 1024 };
  const need = Math.ceil(estimate * (1 + margin.fraction)) + margin.bytes;
  const two = Math.ceil(2 * estimate * (1 + margin.fraction)) + margin.bytes;
  const roomFor = free >= need ? pass("output", "free disk", `${humanBytes(free)} free, about ${humanBytes(estimate)} needed`) : undefined;
  if (roomFor && free < two) {
    roomFor.warning = `${humanBytes(free)} free at ${root} holds the next set but not the next two (about ${humanBytes(two)}); prune, tighten retention or add space`;
  }
  out.push(
    roomFor
      ? roomFor
      : fail("output", "free disk", `${humanBytes(free)} free at ${root}, the set needs about ${humanBytes(need)} (estimate ${humanBytes(estimate)} + margin)`, "free space, prune old sets, or choose another --output"),
  );
  return free;
}

export async function preflight(cfg: Config, opts: PreflightOptions = {}): Promise<PreflightReport> {
  const checks: PreflightCheck[] = [];
  const per = await Promise.all([
    cfg.postgres ? postgresChecks(cfg, checks).catch((err) => (checks.push(fail("postgres", "probe", reason(err), "see the message")), 0)) : 0,
    cfg.redis ? redisChecks(cfg, checks).catch((err) => (checks.push(fail("redis", "probe", reason(err), "see the message")), 0)) : 0,
    cfg.minio ? minioChecks(cfg, checks, opts).catch((err) => (checks.push(fail("minio", "probe", reason(err), "see the message")), 0)) : 0,
  ]);
  const estimateBytes = per.reduce((a, b) => a + b, 0);
  const freeBytes = await outputChecks(cfg.output, estimateBytes, opts, checks);
  const order: PreflightCheck["service"][] = ["postgres", "redis", "minio", "output"];
  checks.sort((a, b) => order.indexOf(a.service) - order.indexOf(b.service));
  return { ok: checks.every((c) => c.ok), checks, estimateBytes, ...(freeBytes !== undefined ? { freeBytes } : {}) };
}

/** One line per failure: "<service>: <what is wrong> — <what to do>". */
export function failureLines(r: PreflightReport): string[] {
  return r.checks.filter((c) => !c.ok).map((c) => `${c.service}: ${c.detail}${c.fix ? ` — ${c.fix}` : ""}`);
}
