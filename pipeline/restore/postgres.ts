import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { connectPostgres, countTablesParallel, largeObjects, quoteIdent, type TableCount } from "../../probes/postgres.js";
import { mapLimit } from "../concurrency.js";
import type { SanityQuery } from "../config.js";
import type { DrillCheck } from "../drill-summary.js";
import type { LargeObjectFacts } from "../manifest.js";
import { OperationError } from "../errors.js";
import { planPostgresRestore, planSchemaDump } from "../plan.js";
import type { HostRunner, StepResult } from "../runners/host.js";
import type { Secret } from "../secret.js";
import { check } from "./checks.js";
import { meetsExpectation } from "./expect.js";
import type { LoadedSet } from "./set.js";

/** A PostgreSQL server to restore into: a drill's throwaway one or, with guards, a real one. */
export type PostgresTarget = { host: string; port: number; user: string; password: Secret };

export type PostgresRestorePlan = {
  /** Databases of the set to restore (default: all). */
  databases?: string[];
  /** Restore database OLD as NEW. */
  renames?: Record<string, string>;
  jobs: number;
  /** Apply the set's globals (roles) first. */
  globals: boolean;
  /** Drop and recreate existing objects (--clean --if-exists). */
  clean: boolean;
  /** Skip ownership and grants. Default: skip them unless the globals (roles) were just applied. */
  noOwner?: boolean;
  /** Target databases (restored names) that exist already: restored into, not created. */
  existing?: Set<string>;
};

export function restoredName(db: string, plan: Pick<PostgresRestorePlan, "renames">): string {
  return plan.renames?.[db] ?? db;
}

/**
 * The globals dump, made safe to replay on a target: psql meta-commands
 * (\restrict, \connect) are dropped, and so are the statements that would
 * recreate or re-password the role we are connected as — replaying those
 * would lock us out of the target.
 */
export function globalsForTarget(sql: string, targetUser: string): string {
  const quoted = targetUser.replace(/"/g, '""');
  const own = new RegExp(`^(CREATE|ALTER) ROLE (${targetUser.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}|"${quoted}")[ ;]`);
  return sql
    .split("\n")
    .filter((line) => !line.startsWith("\\") && !own.test(line))
    .join("\n");
}

function serverMajor(set: LoadedSet): number {
  return Number(set.manifest.services.postgres!.serverVersion.split(".")[0]);
}

export function databasesToRestore(set: LoadedSet, plan: Pick<PostgresRestorePlan, "databases">) {
  const all = set.manifest.services.postgres?.databases ?? [];
  if (!plan.databases) return all;
  return plan.databases.map((name) => {
    const db = all.find((d) => d.name === name);
    if (!db) throw new OperationError(`set ${set.id} has no database "${name}" (it has: ${all.map((d) => d.name).join(", ")})`);
    return db;
  });
}

/** Globals, then one pg_restore per database. Returns the steps run and the wall time. */
export async function restorePostgres(
  set: LoadedSet,
  target: PostgresTarget,
  runner: HostRunner,
  plan: PostgresRestorePlan,
): Promise<{ steps: StepResult[]; restoreMs: number; ownershipRestored: boolean }> {
  const pg = set.manifest.services.postgres;
  if (!pg) throw new OperationError(`set ${set.id} has no PostgreSQL backup`);
  const t0 = Date.now();
  let globalsApplied = false;
  if (plan.globals && pg.globals) {
    const sql = globalsForTarget(await readFile(join(set.dir, pg.globals), "utf8"), target.user);
    const client = await connectPostgres(target, "postgres");
    try {
      await client.query(sql);
      globalsApplied = true;
    } catch (err) {
      throw new OperationError(`postgres globals: ${(err as Error).message}`, { cause: err });
    } finally {
      await client.end().catch(() => {});
    }
  }
  const steps: StepResult[] = [];
  for (const db of databasesToRestore(set, plan)) {
    const name = restoredName(db.name, plan);
    const exists = plan.existing?.has(name) ?? false;
    if (!exists && name !== db.name) {
      // A new name: pg_restore --create would use the dumped one, so create it here.
      const client = await connectPostgres(target, "postgres");
      try {
        await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`);
      } finally {
        await client.end().catch(() => {});
      }
    }
    const step = planPostgresRestore(db, serverMajor(set), target, {
      jobs: plan.jobs,
      into: exists || name !== db.name ? name : undefined,
      clean: plan.clean,
      noOwner: plan.noOwner ?? !globalsApplied,
    });
    steps.push(await runner.run(step, set.dir));
  }
  return { steps, restoreMs: Date.now() - t0, ownershipRestored: !(plan.noOwner ?? !globalsApplied) };
}

/**
 * What may legitimately differ between the schema captured at backup time
 * and a fresh pg_dump --schema-only of the restored database:
 * - `\restrict <token>` / `\unrestrict <token>`: pg_dump (15.14+) writes a random token into every dump;
 * - "-- Dumped from database version" / "-- Dumped by pg_dump version": the target server or
 *   client may be newer than the source;
 * - when the roles were not restored (restored with --no-owner --no-acl), ownership
 *   and grants on both sides — and with them pg_dump's comment and blank lines,
 *   which name each object's owner and frame the ACL entries that are gone.
 */
export function normalizeSchema(sql: string, opts: { ignoreOwnership: boolean }): string[] {
  return sql
    .split("\n")
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .filter((l) => !/^-- Dumped (from database|by pg_dump) version /.test(l))
    .filter((l) => !opts.ignoreOwnership || !/^(ALTER .* OWNER TO |GRANT |REVOKE |--|$)/.test(l));
}

/** The first line where two normalized schemas differ, for the check's detail. */
function firstDifference(a: string[], b: string[]): string {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return `line ${i + 1}: backup has ${JSON.stringify(a[i] ?? "<end>")}, restored has ${JSON.stringify(b[i] ?? "<end>")}`;
  }
  return "";
}

/**
 * One table's or materialized view's row count. A populated view must come
 * back populated with the rows its query gave in the backup's snapshot; one
 * WITH NO DATA must come back unpopulated (it cannot be counted).
 */
export function rowCountCheck(subject: string, rec: TableCount, got: TableCount | undefined, started: number): DrillCheck {
  if (!got) return check("postgres", "row-count", subject, rec.populated === false ? "not populated" : rec.rows, null, started, { detail: `${rec.kind === "matview" ? "materialized view" : "table"} missing after restore` });
  if (rec.kind !== "matview") return check("postgres", "row-count", subject, rec.rows, got.rows, started);
  const state = (t: TableCount) => (t.populated === false ? "not populated" : t.rows);
  const stale = rec.storedRows !== undefined && rec.storedRows !== rec.rows ? ` (the view held ${rec.storedRows} at backup time: not refreshed since its tables changed)` : "";
  const ok = state(rec) === state(got);
  return check("postgres", "row-count", subject, state(rec), state(got), started, {
    ok,
    ...(ok ? (stale ? { detail: `materialized view, refreshed by the restore${stale}` } : {}) : { detail: `materialized view${stale}` }),
  });
}

type TableKey = string;
const tableKey = (t: Pick<TableCount, "schema" | "name">): TableKey => `${t.schema}.${t.name}`;

/**
 * The drill's PostgreSQL checks on a restored target: exact row count of
 * every table against the count recorded in the backup's snapshot, the
 * schema round trip, and the configured sanity queries. Databases are
 * checked side by side, and in each the tables are counted over `jobs`
 * connections while the schema is dumped and the large objects digested.
 */
export async function checkPostgres(
  set: LoadedSet,
  target: PostgresTarget,
  runner: HostRunner,
  plan: Pick<PostgresRestorePlan, "databases" | "renames"> & {
    sanityQueries: SanityQuery[];
    ownershipRestored: boolean;
    /** The target database held other tables before (a forced restore): they are not failures. */
    allowExtraTables?: boolean;
    /** Connections counting rows at once (default 2). */
    jobs?: number;
  },
): Promise<DrillCheck[]> {
  const dbs = databasesToRestore(set, plan);
  const perDb = await mapLimit(dbs, 2, (db) => checkDatabase(set, target, runner, plan, db));
  const restoredDbs = new Set(dbs.map((d) => d.name));
  const queries = await mapLimit(
    plan.sanityQueries.filter((q) => restoredDbs.has(q.database)),
    4,
    async (q): Promise<DrillCheck> => {
      const t = Date.now();
      let client;
      try {
        client = await connectPostgres(target, restoredName(q.database, plan));
        const r = await client.query({ text: q.sql, rowMode: "array" });
        const verdict = meetsExpectation(q.expect, r.rows as unknown[][]);
        return check("postgres", "sanity-query", q.name, q.expect, verdict.actual, t, { ok: verdict.ok });
      } catch (err) {
        return check("postgres", "sanity-query", q.name, q.expect, null, t, { ok: false, detail: (err as Error).message });
      } finally {
        await client?.end().catch(() => {});
      }
    },
  );
  return [...perDb.flat(), ...queries];
}

type DbFacts = ReturnType<typeof databasesToRestore>[number];

async function checkDatabase(
  set: LoadedSet,
  target: PostgresTarget,
  runner: HostRunner,
  plan: Parameters<typeof checkPostgres>[3],
  db: DbFacts,
): Promise<DrillCheck[]> {
  const name = restoredName(db.name, plan);
  const t0 = Date.now();
  const counting = countTablesParallel(target, name, plan.jobs ?? 2).then((rows) => ({ rows, end: Date.now() }));
  const digesting =
    db.largeObjects && !plan.allowExtraTables
      ? (async () => {
          const client = await connectPostgres(target, name);
          try {
            return await largeObjects(client);
          } finally {
            await client.end().catch(() => {});
          }
        })()
      : Promise.resolve(undefined);
  // The schema holds the target's own objects too after a forced restore: no round trip to compare then.
  const dumping = plan.allowExtraTables
    ? Promise.resolve(undefined)
    : runner.run(planSchemaDump(name, Number(set.manifest.services.postgres!.serverVersion.split(".")[0]), target), set.dir);
  const [{ rows: restored }, los, dumped] = await Promise.all([counting, digesting, dumping]);

  const checks: DrillCheck[] = [];
  const byKey = new Map(restored.map((r) => [tableKey(r), r]));
  for (const table of db.tables) {
    checks.push(rowCountCheck(`${name}.${tableKey(table)}`, table, byKey.get(tableKey(table)), t0));
    byKey.delete(tableKey(table));
  }
  for (const extra of plan.allowExtraTables ? [] : byKey.values()) {
    checks.push(check("postgres", "row-count", `${name}.${tableKey(extra)}`, null, extra.rows, t0, { ok: false, detail: `${extra.kind === "matview" ? "materialized view" : "table"} not in the backup` }));
  }
  if (db.largeObjects && !plan.allowExtraTables) {
    const got = los ?? { count: 0, bytes: 0, digest: "" };
    const rec = db.largeObjects;
    const detail =
      got.count !== rec.count ? `${got.count} large objects, backup has ${rec.count}` : got.bytes !== rec.bytes ? `${got.bytes} bytes, backup has ${rec.bytes}` : "content (md5) differs";
    const label = (l: LargeObjectFacts) => `${l.count} objects, ${l.bytes} bytes, digest ${l.digest.slice(0, 12)}`;
    checks.push(check("postgres", "large-objects", name, label(rec), label(got), t0, got.digest === rec.digest ? {} : { ok: false, detail }));
  }
  if (dumped) {
    const ignoreOwnership = !plan.ownershipRestored;
    const expected = normalizeSchema(await readFile(join(set.dir, db.schemaFile), "utf8"), { ignoreOwnership });
    const actual = normalizeSchema(dumped.stdout ?? "", { ignoreOwnership });
    const same = expected.length === actual.length && expected.every((l, i) => l === actual[i]);
    checks.push(
      check("postgres", "schema-roundtrip", name, `${expected.length} lines`, `${actual.length} lines`, t0, {
        ok: same,
        ...(same ? {} : { detail: firstDifference(expected, actual) }),
      }),
    );
  }
  return checks;
}
