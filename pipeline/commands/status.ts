import type { Argv } from "yargs";
import { statusHuman, statusJson } from "../health-report.js";
import type { StatusVerdict } from "../status.js";
import { nowFrom, withNowOption } from "./clock.js";
import { configFrom, defineCommand, EXIT, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

export const STATUS_EXIT: Record<StatusVerdict, number> = { healthy: EXIT.ok, stale: EXIT.operation, integrity: EXIT.integrity };

type StatusArgs = GlobalArgs & { formats: boolean; now?: string };

export const statusCommand = defineCommand<StatusArgs>({
  command: "status",
  describe: "One report: latest set and its verify result, last restore drill, freshness per service, what prune would do",
  builder: (y: Argv) =>
    withNowOption(withGlobalOptions(y))
      .option("formats", { type: "boolean", default: false, describe: "Also run the format checks on the latest set (needs pg_restore, redis-check-rdb)" })
      .epilog(
        `Reads only. Verifies the latest set by re-hashing every file against its manifest.\n\nExit codes:\n  0  healthy: the latest set verifies, the last drill passed, freshness OK\n  1  stale: freshness is WARNING, CRITICAL or UNKNOWN (no sets), or the command could not run\n  2  bad input: config, flags\n  3  integrity: the latest set fails verification or the last restore drill failed`,
      ),
  handler: (args: StatusArgs) =>
    runCommand("status", args, async ({ progress }) => {
      const { buildStatus } = await import("../status.js");
      const cfg = configFrom(args, { resolveSecrets: false });
      const report = await buildStatus(cfg, nowFrom(args.now), { formats: args.formats, progress });
      const exitCode = STATUS_EXIT[report.verdict];
      return { exitCode, json: statusJson(report, exitCode), human: statusHuman(report) };
    }),
});
