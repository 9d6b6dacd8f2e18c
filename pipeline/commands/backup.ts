import type { Argv } from "yargs";
import { pushOutcomeHuman, pushOutcomeJson } from "../offsite/report.js";
import { DEFAULT_RETENTION_TEXT } from "../config.js";
import { backupHuman, backupJson } from "../report.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

export const backupCommand = defineCommand<GlobalArgs>({
  command: "backup",
  describe: "Back up every configured service into a new checksummed set under the output root",
  builder: (y: Argv) =>
    withGlobalOptions(y).epilog(
      `Writes <output>/.partial-<id>/, seals it with manifest.json, SHA256SUMS and manifest.sha256, renames it to <output>/<id>/ and then replaces latest.json. A failure in any service removes the staging directory and leaves earlier sets and latest.json untouched. With offsite destinations (pushAfterBackup, the default), the new set is then pushed to each; a failed push leaves the set in place and exits 5.\n\nBounded by default: after each successful set the retention policy is applied — the config's "retention" section, or without one the default (${DEFAULT_RETENTION_TEXT}); "retention": "off" keeps every set. Every server command, tool step and phase has a deadline (config "timeouts").\n\n${EXIT_CODES_EPILOG}`,
    ),
  handler: (args: GlobalArgs) =>
    runCommand("backup", args, async ({ progress, signal, runner }) => {
      const { backupSet } = await import("../backup.js");
      const { pushAfterBackup } = await import("../offsite/after-backup.js");
      const cfg = configFrom(args);
      const result = await backupSet(cfg, { progress, signal, runner });
      // The set is promoted: a failed push is reported (exit 5), never undoes it.
      const pushes = await pushAfterBackup(cfg, { id: result.id, dir: result.dir }, { progress, signal });
      const json = pushes.length > 0 ? { ...backupJson(result), offsite: pushes.map(pushOutcomeJson) } : backupJson(result);
      const human = [backupHuman(result), ...pushes.map(pushOutcomeHuman)].join("\n");
      return { exitCode: pushes.every((p) => p.ok) ? EXIT.ok : EXIT.offsite, json, human };
    }),
});
