import pg from "pg";
import type { PostgresSource } from "../pipeline/config.js";
import { OperationError, UserError } from "../pipeline/errors.js";
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

export type TableCount = { schema: string; name: string; rows: number; bytes: number };

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
 * User tables pg_dump writes data for: ordinary tables and partitions outside
 * the system schemas, excluding tables that belong to an extension.
 */
const USER_TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, pg_total_relation_size(c.oid)::bigint AS bytes
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1, 2`;

/** Exact row count and total size of every user table, in the client's current snapshot. */
export async function countTables(client: pg.Client): Promise<TableCount[]> {
  const tables = await client.query<{ schema: string; name: string; bytes: string }>(USER_TABLES_SQL);
  const out: TableCount[] = [];
  for (const t of tables.rows) {
    const r = await client.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`);
    out.push({ schema: t.schema, name: t.name, rows: Number(r.rows[0]!.n), bytes: Number(t.bytes) });
  }
  return out;
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
