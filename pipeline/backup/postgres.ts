import { countTables, databaseSize, holdSnapshot, largeObjects, probePostgres } from "../../probes/postgres.js";
import { OperationError, UserError } from "../errors.js";
import { compressionArgs } from "./compression.js";
import { hashUnder } from "../hash.js";
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

  if (src.globals) {
    const [globals] = planPostgres(src, { serverMajor: server.serverMajor, pgDump, databases: [] }, at);
    steps.push(await ctx.runner.run(globals!, ctx.setDir));
    facts.globals = globals!.outputs[0];
  }

  for (const db of databases) {
    // Counts and dump read one exported snapshot, so they agree even while the database is written to.
    const snap = await phase("postgres", `snapshot ${db}`, () => holdSnapshot(src, db));
    try {
      const plan = planPostgres(
        { ...src, globals: false },
        { serverMajor: server.serverMajor, pgDump, databases: [db], snapshots: { [db]: snap.id } },
        at,
      );
      const [dump, schema] = plan as [(typeof plan)[0], (typeof plan)[0]];
      // One client, one query at a time: the counts and the large-object digest run in turn, beside the dumps.
      const reads = (async () => {
        const tables = await phase("postgres", `count ${db}`, () => countTables(snap.client));
        const sizeBytes = await phase("postgres", `size ${db}`, () => databaseSize(snap.client));
        const los = await phase("postgres", `large objects ${db}`, () => largeObjects(snap.client));
        return { tables, sizeBytes, los };
      })();
      const [{ tables, sizeBytes, los }, dumped, schemaDumped] = await Promise.all([reads, ctx.runner.run(dump, ctx.setDir), ctx.runner.run(schema, ctx.setDir)]);
      steps.push(dumped, schemaDumped);
      const layout = postgresLayout(db);
      facts.databases.push({ name: db, dir: layout.dir, schemaFile: layout.schemaFile, sizeBytes, tables, ...(los ? { largeObjects: los } : {}) });
      const views = tables.filter((t) => t.kind === "matview").length;
      ctx.progress.info(
        `postgres: ${db}: ${tables.length - views} tables, ${tables.reduce((a, t) => a + (t.kind ? 0 : t.rows), 0)} rows` +
          (views ? `, ${views} materialized view(s)` : "") +
          (los ? `, ${los.count} large object(s)` : ""),
      );
    } finally {
      await snap.close();
    }
  }
  const files = await hashUnder(ctx.setDir, ["postgres"], { durable: true });
  return { facts, steps, files };
}
