import { createHash } from "node:crypto";
import pg from "pg";
import type { PostgresSource } from "../pipeline/config.js";
import { OperationError, UserError } from "../pipeline/errors.js";
import type { LargeObjectFacts, TableFacts } from "../pipeline/manifest.js";
import { clientTimeouts } from "../pipeline/timeouts.js";

/** What backup records about a PostgreSQL server before dumping it. */
export type PostgresServerFacts = {
  serverVersion: string;
  serverVersionNum: number;
  serverMajor: number;
  systemIdentifier: string;
  /** Every database that accepts connections and is not a template. */
  databases: string[];
};

export type TableCount = TableFacts;

export type PgTarget = Pick<PostgresSource, "host" | "port" | "user" | "password">;

/** The server asked for a password and the client had none (pg: SASL "client password must be a string"; libpq: "no password supplied"). */
export function isMissingPassword(message: string): boolean {
  return /client password must be a string|no password supplied|password authentication .* no password/i.test(message);
}

/**
 * A connected client, or an OperationError naming the server and the reason
 * (a UserError when the server wants a password and none is configured).
 * Connecting is bounded by timeouts.connect and every query by timeouts.pgQuery.
 */
export async function connectPostgres(target: PgTarget, database: string): Promise<pg.Client> {
  const timeouts = clientTimeouts();
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password?.reveal(),
    database,
    connectionTimeoutMillis: timeouts.connectMs,
    query_timeout: timeouts.pgQueryMs,
    keepAlive: true,
    application_name: "backup-drill",
  });
  client.on("error", () => {}); // a dropped connection surfaces on the next query
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    const where = `postgres ${target.host}:${target.port}/${database}`;
    if (!target.password && isMissingPassword((err as Error).message)) {
      throw new UserError(`${where}: the server asks for a password and no password is configured (postgres.password, e.g. "env:PGPASSWORD")`, { cause: err });
    }
    throw new OperationError(`${where}: cannot connect: ${(err as Error).message}`, { cause: err });
  }
  return client;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export async function probePostgres(src: PgTarget): Promise<PostgresServerFacts> {
  const client = await connectPostgres(src, "postgres");
  try {
    const v = await client.query<{ server_version: string; num: string }>(
      "SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS num",
    );
    const num = Number(v.rows[0]!.num);
    let systemIdentifier = "unknown";
    try {
      const s = await client.query<{ id: string }>("SELECT system_identifier::text AS id FROM pg_control_system()");
      systemIdentifier = s.rows[0]!.id;
    } catch {
      // pg_control_system() may be denied to a non-superuser; the identifier is informational.
    }
    const dbs = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname",
    );
    return {
      serverVersion: v.rows[0]!.server_version.split(" ")[0]!,
      serverVersionNum: num,
      serverMajor: Math.floor(num / 10000),
      systemIdentifier,
      databases: dbs.rows.map((r) => r.datname),
    };
  } catch (err) {
    throw new OperationError(`postgres ${src.host}:${src.port}: probe failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * User relations pg_dump writes data for: ordinary tables and partitions,
 * and materialized views (restored by REFRESH), outside the system schemas,
 * excluding relations that belong to an extension.
 */
const USER_RELATIONS_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, c.relispopulated AS populated,
         pg_total_relation_size(c.oid)::bigint AS bytes,
         CASE WHEN c.relkind = 'm' AND c.relispopulated THEN pg_get_viewdef(c.oid) END AS query
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1, 2`;

async function countOf(client: pg.Client, from: string): Promise<number> {
  const r = await client.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM ${from}`);
  return Number(r.rows[0]!.n);
}

/**
 * Exact row count and total size of every user table, in the client's
 * current snapshot; and of every materialized view. pg_dump carries a
 * materialized view as its query, which pg_restore REFRESHes: the rows it
 * gives back are the query's rows over the restored tables. So a populated
 * view records those (`rows`, counted here in the same snapshot) beside the
 * rows it holds (`storedRows`; they differ when it was not refreshed since
 * its tables changed). A view WITH NO DATA cannot be read: it records
 * `populated: false`.
 * `refreshRows: false` (a restored target) counts what a view holds only.
 */
export async function countTables(client: pg.Client, opts: { refreshRows?: boolean } = {}): Promise<TableCount[]> {
  const rels = await client.query<{ schema: string; name: string; kind: string; populated: boolean; bytes: string; query: string | null }>(USER_RELATIONS_SQL);
  const out: TableCount[] = [];
  for (const t of rels.rows) {
    const from = `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
    if (t.kind === "r") {
      out.push({ schema: t.schema, name: t.name, rows: await countOf(client, from), bytes: Number(t.bytes) });
      continue;
    }
    if (!t.populated) {
      out.push({ schema: t.schema, name: t.name, kind: "matview", rows: 0, populated: false, bytes: Number(t.bytes) });
      continue;
    }
    const storedRows = await countOf(client, from);
    const rows = opts.refreshRows === false ? storedRows : ((await refreshCount(client, t.query!)) ?? storedRows);
    out.push({ schema: t.schema, name: t.name, kind: "matview", rows, populated: true, storedRows, bytes: Number(t.bytes) });
  }
  return out;
}

/**
 * countTables(..., { refreshRows: false }) on a restored database, over
 * `parallel` connections: the relations are listed once, then counted side
 * by side (a large table no longer holds up the others). In list order.
 */
export async function countTablesParallel(target: PgTarget, database: string, parallel: number): Promise<TableCount[]> {
  const first = await connectPostgres(target, database);
  const clients = [first];
  try {
    const rels = (await first.query<{ schema: string; name: string; kind: string; populated: boolean; bytes: string }>(USER_RELATIONS_SQL)).rows;
    const out: TableCount[] = rels.map((t) =>
      t.kind === "r" ? { schema: t.schema, name: t.name, rows: 0, bytes: Number(t.bytes) } : { schema: t.schema, name: t.name, kind: "matview", rows: 0, populated: t.populated, bytes: Number(t.bytes) },
    );
    const queue = out.filter((t) => t.populated !== false);
    for (let i = 1; i < Math.min(parallel, queue.length); i++) clients.push(await connectPostgres(target, database));
    await Promise.all(
      clients.map(async (client) => {
        for (let t = queue.shift(); t; t = queue.shift()) {
          t.rows = await countOf(client, `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`);
          if (t.kind === "matview") t.storedRows = t.rows;
        }
      }),
    );
    return out;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}

/**
 * The rows a materialized view's query returns now, or undefined when it
 * cannot be run (a role that may read the view but not its tables): then
 * the rows it holds are the best expectation there is. A savepoint keeps a
 * failure from aborting the snapshot's transaction.
 */
async function refreshCount(client: pg.Client, query: string): Promise<number | undefined> {
  await client.query("SAVEPOINT backup_drill_view_count");
  try {
    const n = await countOf(client, `(${query.trim().replace(/;$/, "")}) AS q`);
    await client.query("RELEASE SAVEPOINT backup_drill_view_count");
    return n;
  } catch {
    await client.query("ROLLBACK TO SAVEPOINT backup_drill_view_count");
    return undefined;
  }
}

/** Large objects bigger than this are read in pieces and hashed here, not by the server in one go. */
const LO_WHOLE_MAX = 16 * 1024 * 1024;
const LO_BATCH_BYTES = 64 * 1024 * 1024;
const LO_CHUNK = 8 * 1024 * 1024;

/**
 * Count, total size and a digest of every large object (oid, size and md5
 * of each, in oid order), in the client's current snapshot; undefined when
 * there are none. Small objects are hashed by the server in batches; large
 * ones are read in 8 MiB pieces and hashed here.
 */
export async function largeObjects(client: pg.Client): Promise<LargeObjectFacts | undefined> {
  const sizes = await client.query<{ oid: string; size: string }>(`
    SELECT m.oid::text AS oid, lo_lseek64(lo_open(m.oid, 262144), 0, 2)::text AS size
    FROM pg_largeobject_metadata m ORDER BY m.oid`);
  if (sizes.rows.length === 0) return undefined;
  const los = sizes.rows.map((r) => ({ oid: r.oid, size: Number(r.size), md5: "" }));
  const byOid = new Map(los.map((l) => [l.oid, l]));
  let batch: string[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const r = await client.query<{ oid: string; md5: string }>("SELECT oid::text AS oid, md5(lo_get(oid)) AS md5 FROM unnest($1::oid[]) AS oid", [batch]);
    for (const row of r.rows) byOid.get(row.oid)!.md5 = row.md5;
    batch = [];
    batchBytes = 0;
  };
  for (const lo of los) {
    if (lo.size > LO_WHOLE_MAX) {
      const h = createHash("md5");
      for (let off = 0; off < lo.size; off += LO_CHUNK) {
        const r = await client.query<{ b: Buffer }>("SELECT lo_get($1::oid, $2::bigint, $3::int) AS b", [lo.oid, off, LO_CHUNK]);
        h.update(r.rows[0]!.b);
      }
      lo.md5 = h.digest("hex");
      continue;
    }
    batch.push(lo.oid);
    batchBytes += lo.size;
    if (batchBytes >= LO_BATCH_BYTES || batch.length >= 1000) await flush();
  }
  await flush();
  const digest = createHash("sha256");
  for (const lo of los) digest.update(`${lo.oid} ${lo.size} ${lo.md5}\n`);
  return { count: los.length, bytes: los.reduce((a, l) => a + l.size, 0), digest: digest.digest("hex") };
}

export async function databaseSize(client: pg.Client): Promise<number> {
  const r = await client.query<{ n: string }>("SELECT pg_database_size(current_database())::bigint AS n");
  return Number(r.rows[0]!.n);
}

/**
 * A REPEATABLE READ transaction whose snapshot is exported: pg_dump
 * --snapshot=<id> then dumps exactly what countTables() counts here. The
 * transaction must stay open until pg_dump has finished.
 */
export type HeldSnapshot = { id: string; client: pg.Client; close(): Promise<void> };

export async function holdSnapshot(src: PgTarget, database: string): Promise<HeldSnapshot> {
  const client = await connectPostgres(src, database);
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const r = await client.query<{ id: string }>("SELECT pg_export_snapshot() AS id");
    return {
      id: r.rows[0]!.id,
      client,
      close: async () => {
        await client.query("COMMIT").catch(() => {});
        await client.end().catch(() => {});
      },
    };
  } catch (err) {
    await client.end().catch(() => {});
    throw new OperationError(`postgres ${src.host}:${src.port}/${database}: cannot export a snapshot: ${(err as Error).message}`, { cause: err });
  }
}
