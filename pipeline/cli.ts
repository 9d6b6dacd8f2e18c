import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { backupCommand } from "./commands/backup.js";
import { checkCommand } from "./commands/check.js";
import { EXIT, EXIT_CODES_EPILOG } from "./commands/common.js";
import { freshnessCommand } from "./commands/freshness.js";
import { pruneCommand } from "./commands/prune.js";
import { pushCommand } from "./commands/push.js";
import { restoreCommand } from "./commands/restore.js";
import { restoreDrillCommand } from "./commands/restore-drill.js";
import { sandboxCommand } from "./commands/sandbox.js";
import { statusCommand } from "./commands/status.js";
import { verifyCommand } from "./commands/verify.js";
import { NAGIOS_EXIT } from "./freshness.js";
import { TOOL_VERSION } from "./version.js";

/** yargs commands -> library calls. Each command module parses, loads config, calls one engine, reports. */
export async function main(argv: string[] = hideBin(process.argv)): Promise<void> {
  await yargs(argv)
    .scriptName("backup-drill")
    .usage("$0 <command> [options]\n\nBack up PostgreSQL, Redis and MinIO into checksummed sets, verify them, and prove they restore.")
    .command(backupCommand)
    .command(checkCommand)
    .command(verifyCommand)
    .command(restoreDrillCommand)
    .command(restoreCommand)
    .command(pushCommand)
    .command(sandboxCommand)
    .command(freshnessCommand)
    .command(pruneCommand)
    .command(statusCommand)
    .demandCommand(1, "Name a command: backup-drill --help lists them.")
    .strict()
    .recommendCommands()
    .version(TOOL_VERSION)
    .help()
    .alias("help", "h")
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilog(EXIT_CODES_EPILOG)
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`backup-drill: error: ${msg}\n(backup-drill --help for usage)\n`);
      void y;
      // freshness is a monitoring check: bad input there is UNKNOWN (3), not a CRITICAL (2).
      process.exit(argv[0] === "freshness" ? NAGIOS_EXIT.UNKNOWN : EXIT.input);
    })
    .parseAsync();
}
