import type { Argv } from "yargs";
import { loadTargetConfig, SERVICES, TARGET_OVERRIDES, type ServiceName } from "../config.js";
import { UserError } from "../errors.js";
import { restoreHuman } from "../report.js";
import type { RestoreSelection } from "../restore/guards.js";
import { resolveSet } from "../store/sets.js";
import { configFrom, defineCommand, EXIT, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";
import { identityFrom, withIdentityOption } from "./offsite-flags.js";

type RestoreArgs = GlobalArgs & {
  set?: string;
  targetConfig?: string;
  services?: string;
  db?: string[];
  renameDb?: string[];
  globals: boolean;
  redisDb?: number[];
  keyPattern?: string;
  bucket?: string[];
  prefix?: string;
  dryRun: boolean;
  force: boolean;
  from?: string;
  identity?: string;
};

function parseServices(text: string | undefined): ServiceName[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!SERVICES.includes(n as ServiceName)) throw new UserError(`--services: unknown service "${n}" (postgres, redis, minio)`);
  return names as ServiceName[];
}

function parseRenames(pairs: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const m = /^([^=]+)=([^=]+)$/.exec(p);
    if (!m) throw new UserError(`--rename-db: expected OLD=NEW, got "${p}"`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

export const restoreCommand = defineCommand<RestoreArgs>({
  command: "restore",
  describe: "Restore a set into real servers, with guards against overwriting data, then run the drill's checks on them",
  builder: (y: Argv) => {
    let b: Argv<unknown> = withIdentityOption(withGlobalOptions(y))
      .option("set", { type: "string", describe: "Set id (default: the set latest.json names; with --from: the newest complete copy there)" })
      .option("from", { type: "string", describe: "Restore from the copy at this offsite destination (pulled and decrypted into a staging directory under the output root, checked, then restored)" })
      .option("target-config", { type: "string", describe: "Servers to restore into: postgres/redis/minio sections as in the config file (secrets by env:/file: reference)" })
      .option("services", { type: "string", describe: "Comma-separated subset: postgres,redis,minio (default: every service the set has and a target is given for)" })
      .option("db", { type: "string", array: true, describe: "Only this database (repeatable)" })
      .option("rename-db", { type: "string", array: true, describe: "Restore database OLD as NEW (OLD=NEW, repeatable)" })
      .option("globals", { type: "boolean", default: false, describe: "Also replay the set's roles (pg_dumpall --globals-only); an existing role counts as an overwrite" })
      .option("redis-db", { type: "number", array: true, describe: "Only this Redis db (repeatable)" })
      .option("key-pattern", { type: "string", describe: "Only Redis keys matching this glob (SCAN MATCH syntax)" })
      .option("bucket", { type: "string", array: true, describe: "Only this bucket (repeatable)" })
      .option("prefix", { type: "string", describe: "Only objects whose key starts with this prefix" })
      .option("dry-run", { type: "boolean", default: false, describe: "Print the plan (what is created, what would be overwritten) and change nothing" })
      .option("force", { type: "boolean", default: false, describe: "Overwrite: pg_restore --clean --if-exists, Redis RESTORE ... REPLACE, existing objects replaced; also allows a configured backup source as target" }) as Argv<unknown>;
    for (const o of TARGET_OVERRIDES) {
      b = b.option(o.flag, { type: "string", group: "Target (instead of, or on top of, --target-config):", describe: `target ${o.path.join(".")}${/password|Key/.test(o.path[1]!) ? ' as "env:NAME" or "file:PATH"' : ""}` });
    }
    return b.epilog(
      "The set is verified first (exit 3 on a corrupt set, before anything is written). Then the targets are inspected: a PostgreSQL database with any user object, a Redis db with keys, an object at a key the set would write, or a target that is a configured backup source is refused without --force (exit 2, one line naming what would have been overwritten). Redis keys are copied with DUMP/RESTORE from a throwaway server loaded with the set's RDB (TTLs kept). The drill's checks then run against the targets and a summary is written to <output>/restores/<timestamp>.json.\n\nExit codes: 0 restored and every check passed, 1 the restore failed, 2 bad input or refused, 3 corrupt set or a check failed, 130/143 interrupted.",
    );
  },
  handler: (args: RestoreArgs) =>
    runCommand("restore", args, async ({ progress, signal }) => {
      const { restoreSet } = await import("../restore.js");
      const { targetsFrom } = await import("../drill.js");
      const cfg = configFrom(args, { resolveSecrets: false });
      const targets = targetsFrom(loadTargetConfig(args.targetConfig, args));
      const given = SERVICES.filter((s) => targets[s] !== undefined);
      if (given.length === 0) throw new UserError("no restore target: pass --target-config FILE or --target-pg-host / --target-redis-host / --target-minio-endpoint");
      const selection: RestoreSelection = {
        services: parseServices(args.services) ?? given,
        ...(args.db ? { databases: args.db } : {}),
        renames: parseRenames(args.renameDb),
        globals: args.globals,
        ...(args.redisDb ? { redisDbs: args.redisDb } : {}),
        ...(args.keyPattern ? { keyPattern: args.keyPattern } : {}),
        ...(args.bucket ? { buckets: args.bucket } : {}),
        ...(args.prefix ? { prefix: args.prefix } : {}),
      };
      for (const old of Object.keys(selection.renames)) {
        if (selection.databases && !selection.databases.includes(old)) selection.databases.push(old);
      }
      const run = (set: { id: string; dir: string }) => restoreSet(cfg, set.id, set.dir, { progress, signal, targets, selection, force: args.force, dryRun: args.dryRun });
      const r =
        args.from !== undefined
          ? await (await import("../offsite/from.js")).withPulledSet(cfg, args.from, args.set, { progress, signal, identity: identityFrom(args.identity) }, (pulled) => run({ id: pulled.setId, dir: pulled.dir }))
          : await run(await resolveSet(cfg.output, args.set));
      if (r.refusal) process.stderr.write(`backup-drill restore: ${r.refusal}\n`);
      return {
        // A dry run that a real run would refuse exits 2, like the real run.
        exitCode: r.refusal ? EXIT.input : r.summary.ok ? EXIT.ok : EXIT.integrity,
        json: { ...r.summary, ...(r.path ? { summaryPath: r.path } : {}), ...(r.refusal ? { refusal: r.refusal } : {}) },
        human: restoreHuman(r.summary, r.path),
      };
    }),
});
