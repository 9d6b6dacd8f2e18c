import type { Argv } from "yargs";
import { remotePruneHuman, remotePruneJson } from "../offsite/report.js";
import { DEFAULT_RETENTION_TEXT } from "../config.js";
import { retentionPolicy } from "../retention.js";
import { pruneHuman, pruneJson } from "../health-report.js";
import { nowFrom, withNowOption } from "./clock.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

type PruneArgs = GlobalArgs & { dryRun: boolean; now?: string };

export const pruneCommand = defineCommand<PruneArgs>({
  command: "prune",
  describe: "Remove sets no retention rule keeps (restic-style keepLast/Hourly/Daily/Weekly/Monthly/Yearly/Within, OR'ed), locally and at offsite destinations",
  builder: (y: Argv) =>
    withNowOption(withGlobalOptions(y))
      .option("dry-run", { type: "boolean", default: false, describe: "Only say what would be removed and why each set is kept" })
      .epilog(
        `Rules come from the config's "retention" section; without one the default policy applies (${DEFAULT_RETENTION_TEXT}); an empty policy or "retention": "off" is refused (exit 2). A set a restore-drill or restore is using is skipped, with the reason. Only complete sets whose manifest checks out count toward the rules, ordered by manifest time. Always kept: the newest complete set, the newest set with a passing restore drill, the set latest.json names, and sets whose manifest does not check out (inspect those by hand). A .partial-* directory is removed once older than retention.partialGrace (default 24h). Takes the output root's lock (not with --dry-run).\n\nOffsite destinations are pruned too, each with its own "retention" (default: the top-level one): only copies whose record checks out count; always kept are the newest copy, the most recently pushed copy, the newest copy with a passing restore-drill --from, and copies whose record does not check out; an incomplete copy (no record) is removed once nothing was written under it for partialGrace.\n\n${EXIT_CODES_EPILOG}`,
      ),
  handler: (args: PruneArgs) =>
    runCommand("prune", args, async ({ progress }) => {
      const { pruneDestination } = await import("../offsite/prune.js");
      const { pruneCommandRun } = await import("../prune.js");
      const cfg = configFrom(args, { resolveSecrets: false });
      const now = nowFrom(args.now);
      // No retention section means the default policy; "off" means none (locally, or at a destination without its own).
      const remotes = (cfg.offsite?.destinations ?? []).filter((d) => (d.retention ?? cfg.retention) !== "off");
      if (cfg.retention === "off" && remotes.length === 0) retentionPolicy("off", cfg.source); // throws: nothing to apply
      const local = cfg.retention !== "off" ? await pruneCommandRun(cfg, now, { dryRun: args.dryRun, progress }) : undefined;
      const offsite = [];
      for (const d of remotes) offsite.push(await pruneDestination(d, cfg, now, { dryRun: args.dryRun, progress }));
      const failed = (local?.errors.length ?? 0) + offsite.reduce((a, r) => a + r.errors.length, 0) > 0;
      const json = { ...(local ? pruneJson(local) : { ok: true, dryRun: args.dryRun }), ...(offsite.length ? { offsite: offsite.map(remotePruneJson) } : {}) };
      if (failed) json.ok = false;
      return { exitCode: failed ? EXIT.operation : EXIT.ok, json, human: [...(local ? [pruneHuman(local)] : []), ...offsite.map(remotePruneHuman)].join("\n") };
    }),
});
