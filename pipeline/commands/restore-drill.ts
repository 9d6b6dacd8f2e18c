import type { Argv } from "yargs";
import { loadTargetConfig } from "../config.js";
import { drillHuman } from "../report.js";
import { resolveSet } from "../store/sets.js";
import { configFrom, defineCommand, EXIT, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";
import { identityFrom, withIdentityOption } from "./offsite-flags.js";

type DrillArgs = GlobalArgs & { set?: string; targetConfig?: string; from?: string; identity?: string };

export const restoreDrillCommand = defineCommand<DrillArgs>({
  command: "restore-drill",
  describe: "Restore a set into throwaway servers and prove the data came back (row counts, schema, keys, objects)",
  builder: (y: Argv) =>
    withIdentityOption(withGlobalOptions(y))
      .option("set", { type: "string", describe: "Set id (default: the set latest.json names; with --from: the newest complete copy there)" })
      .option("from", {
        type: "string",
        describe: "Drill from the copy at this offsite destination: pull it (decrypting), check it against its record, verify it, drill it, and leave the verdict there (restore-drill.json)",
      })
      .option("target-config", {
        type: "string",
        describe:
          "Drill into these servers instead of starting throwaway ones (postgres/redis/minio sections as in the config; the redis server must have been started on the set's dump.rdb). A configured backup source is refused.",
      })
      .epilog(
        `Verifies the set's checksums first (a corrupt set exits 3 before anything is restored). Starts PostgreSQL, Redis and MinIO on free 127.0.0.1 ports, restores into them, runs the checks, writes restore-drill-summary.json (one file carrying its own sha256, replaced atomically) into the set, and removes the servers — also on failure, Ctrl-C and SIGTERM; after a kill -9 they die with the process and the next run of any command reaps their temp dirs. Drills of one set run one at a time; prune leaves a set being drilled alone.\n\nExit codes: 0 every check passed, 1 the drill could not run (a server or tool stalled past its deadline, a tool failed), 2 bad input (e.g. a source given as target), 3 a check failed or the set is corrupt, 4 another drill of this set is running, 130/143 interrupted.`,
      ),
  handler: (args: DrillArgs) =>
    runCommand("restore-drill", args, async ({ progress, signal, runner }) => {
      const { drillSet, targetsFrom } = await import("../drill.js");
      const cfg = configFrom(args, { resolveSecrets: false });
      const targets = args.targetConfig ? targetsFrom(loadTargetConfig(args.targetConfig)) : undefined;
      if (args.from !== undefined) {
        const { recordRemoteDrill, withPulledSet } = await import("../offsite/from.js");
        const summary = await withPulledSet(cfg, args.from, args.set, { progress, signal, identity: identityFrom(args.identity) }, async (pulled) => {
          const s = await drillSet(cfg, pulled.setId, pulled.dir, { progress, signal, targets });
          await recordRemoteDrill(pulled, s, progress);
          return s;
        });
        return { exitCode: summary.ok ? EXIT.ok : EXIT.integrity, json: summary, human: drillHuman(summary) };
      }
      const set = await resolveSet(cfg.output, args.set);
      const summary = await drillSet(cfg, set.id, set.dir, { progress, signal, targets, runner });
      return { exitCode: summary.ok ? EXIT.ok : EXIT.integrity, json: summary, human: drillHuman(summary) };
    }),
});

