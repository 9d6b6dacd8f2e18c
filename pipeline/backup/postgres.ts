import { join } from "node:path";
import { countTables, databaseSize, holdSnapshot, largeObjects, probePostgres, type PostgresServerFacts } from "../../probes/postgres.js";
import { mapLimit } from "../concurrency.js";
import { OperationError, UserError } from "../errors.js";
import { compressionArgs } from "./compression.js";
import { listFiles } from "../hash.js";
import { LiveHasher } from "../store/live-hash.js";
import type { PostgresFacts } from "../manifest.js";
import { planPostgres, postgresLayout } from "../plan.js";
import type { StepResult } from "../runners/host.js";
import { majorOf, toolVersion } from "../tools.js";
import { phase, type ServiceBackupContext, type ServiceBackupResult } from "./context.js";

/** pg_dump must be at least the server's major version to dump it correctly. */
export function checkPgDumpVersion(pgDumpVersion: string, serverVersion: string): void {
  if (majorOf(pgDumpVersion) < majorOf(serverVersion)) {
    throw new OperationError(
      `pg_dump ${pgDumpVersion} is older than the server (PostgreSQL ${serverVersion}); install pg_dump ${majorOf(serverVersion)} or newer, or set tools.pg_dump`,
    );
  }
}

export async function backupPostgres(ctx: ServiceBackupContext): Promise<ServiceBackupResult<PostgresFacts>> {
  const src = ctx.cfg.postgres!;
  const server = await phase("postgres", "probe", () => probePostgres(src));
  const pgDumpVersion = await phase("postgres", "pg_dump", async () => {
    const v = await toolVersion(ctx.runner.binary("pg_dump"));
    checkPgDumpVersion(v, server.serverVersion);
    return v;
  });
  // Refused here, before any snapshot is taken: a method this pg_dump does not know (exit 2).
  const pgDump = { version: pgDumpVersion, major: majorOf(pgDumpVersion) };
  compressionArgs(src.compression, pgDump);
  const databases = src.databases ?? server.databases;
  for (const db of databases) {
    if (!server.databases.includes(db)) {
      throw new UserError(`postgres.databases: database "${db}" does not exist on ${src.host}:${src.port} (it has: ${server.databases.join(", ")})`);
    }
  }
  ctx.progress.info(`postgres: server ${server.serverVersion}, pg_dump ${pgDumpVersion}, --jobs=${src.jobs}, compression ${src.compression}, databases: ${databases.join(", ")}`);
  const at = { host: src.host, port: src.port };
  const steps: StepResult[] = [];
  const facts: PostgresFacts = {
    serverVersion: server.serverVersion,
    serverVersionNum: server.serverVersionNum,
    systemIdentifier: server.systemIdentifier,
    pgDumpVersion,
    compression: src.compression,
    jobs: src.jobs,
    databases: [],
  };

  // Every file is hashed (and fsynced) as soon as pg_dump has closed it, while the dumps go on.
  const pgDir = join(ctx.setDir, "postgres");
  const hasher = new LiveHasher({
    root: ctx.setDir,
    candidates: () => listFiles(pgDir, ctx.setDir),
    writers: () => ctx.runner.livePids(),
    pool: ctx.pool,
    durable: true,
  }).start();
  try {
    const [globals] = src.globals ? planPostgres(src, { serverMajor: server.serverMajor, pgDump, databases: [] }, at) : [];
    // The globals and the databases side by side (a few databases at a time): a small one does not wait behind a large one.
    const [globalsRun, dumped] = await Promise.all([
      globals ? ctx.runner.run(globals, ctx.setDir) : undefined,
      mapLimit(databases, DATABASES_AT_ONCE, (db) => dumpDatabase(ctx, server, pgDump, db)),
    ]);
    if (globalsRun) {
      steps.push(globalsRun);
      facts.globals = globals!.outputs[0];
    }
    for (const d of dumped) {
      steps.push(...d.steps);
      facts.databases.push(d.facts);
    }
  } finally {
    await hasher.stop();
  }
  const files = await hasher.settle(await listFiles(pgDir, ctx.setDir));
  return { facts, steps, files };
}

/** Databases dumped at the same time (each with --jobs workers). */
const DATABASES_AT_ONCE = 4;

type DatabaseFacts = PostgresFacts["databases"][number];

/** One database: counts and dump read one exported snapshot, so they agree even while it is written to. */
async function dumpDatabase(
  ctx: ServiceBackupContext,
  server: PostgresServerFacts,
  pgDump: { version: string; major: number },
  db: string,
): Promise<{ steps: StepResult[]; facts: DatabaseFacts }> {
  const src = ctx.cfg.postgres!;
  const snap = await phase("postgres", `snapshot ${db}`, () => holdSnapshot(src, db));
  try {
    const plan = planPostgres({ ...src, globals: false }, { serverMajor: server.serverMajor, pgDump, databases: [db], snapshots: { [db]: snap.id } }, { host: src.host, port: src.port });
    const [dump, schema] = plan as [(typeof plan)[0], (typeof plan)[0]];
    // One client, one query at a time: the counts and the large-object digest run in turn, beside the dumps.
    const reads = (async () => {
      const tables = await phase("postgres", `count ${db}`, () => countTables(snap.client));
      const sizeBytes = await phase("postgres", `size ${db}`, () => databaseSize(snap.client));
      const los = await phase("postgres", `large objects ${db}`, () => largeObjects(snap.client));
      return { tables, sizeBytes, los };
    })();
    const [{ tables, sizeBytes, los }, dumped, schemaDumped] = await Promise.all([reads, ctx.runner.run(dump, ctx.setDir), ctx.runner.run(schema, ctx.setDir)]);
    const layout = postgresLayout(db);
    const views = tables.filter((t) => t.kind === "matview").length;
    ctx.progress.info(
      `postgres: ${db}: ${tables.length - views} tables, ${tables.reduce((a, t) => a + (t.kind ? 0 : t.rows), 0)} rows` +
        (views ? `, ${views} materialized view(s)` : "") +
        (los ? `, ${los.count} large object(s)` : ""),
    );
    return {
      steps: [dumped, schemaDumped],
      facts: { name: db, dir: layout.dir, schemaFile: layout.schemaFile, sizeBytes, tables, ...(los ? { largeObjects: los } : {}) },
    };
  } finally {
    await snap.close();
  }
}
