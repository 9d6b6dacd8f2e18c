import type { Argv } from "yargs";
import { DEFAULT_RETENTION_TEXT } from "../config.js";
import { pruneCommandRun } from "../prune.js";
import { pruneHuman, pruneJson } from "../health-report.js";
import { nowFrom, withNowOption } from "./clock.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

type PruneArgs = GlobalArgs & { dryRun: boolean; now?: string };

export const pruneCommand = defineCommand<PruneArgs>({
  command: "prune",
  describe: "Remove sets no retention rule keeps (restic-style keepLast/Hourly/Daily/Weekly/Monthly/Yearly/Within, OR'ed)",
  builder: (y: Argv) =>
    withNowOption(withGlobalOptions(y))
      .option("dry-run", { type: "boolean", default: false, describe: "Only say what would be removed and why each set is kept" })
      .epilog(
        `Rules come from the config's "retention" section; without one the default policy applies (${DEFAULT_RETENTION_TEXT}); an empty policy or "retention": "off" is refused (exit 2). A set a restore-drill or restore is using is skipped, with the reason. Only complete sets whose manifest checks out count toward the rules, ordered by manifest time. Always kept: the newest complete set, the newest set with a passing restore drill, the set latest.json names, and sets whose manifest does not check out (inspect those by hand). A .partial-* directory is removed once older than retention.partialGrace (default 24h). Takes the output root's lock (not with --dry-run).\n\n${EXIT_CODES_EPILOG}`,
      ),
  handler: (args: PruneArgs) =>
    runCommand("prune", args, async ({ progress }) => {
      const cfg = configFrom(args, { resolveSecrets: false });
      const result = await pruneCommandRun(cfg, nowFrom(args.now), { dryRun: args.dryRun, progress });
      return { exitCode: result.errors.length > 0 ? EXIT.operation : EXIT.ok, json: pruneJson(result), human: pruneHuman(result) };
    }),
});
