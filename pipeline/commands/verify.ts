import type { Argv } from "yargs";
import { verifyHuman } from "../report.js";
import { resolveSet } from "../store/sets.js";
import { verifySet } from "../verify.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

type VerifyArgs = GlobalArgs & { set?: string; formats: boolean };

export const verifyCommand = defineCommand<VerifyArgs>({
  command: "verify",
  describe: "Recompute every checksum of a set and check dump formats; report missing, extra, modified and truncated files",
  builder: (y: Argv) =>
    withGlobalOptions(y)
      .option("set", { type: "string", describe: "Set id (default: the set latest.json names)" })
      .option("formats", {
        type: "boolean",
        default: true,
        describe: "Also run pg_restore --list and redis-check-rdb (--no-formats skips them; checksums and bucket listings are always checked)",
      })
      .epilog(EXIT_CODES_EPILOG),
  handler: (args: VerifyArgs) =>
    runCommand("verify", args, async ({ progress }) => {
      const cfg = configFrom(args, { resolveSecrets: false });
      const set = await resolveSet(cfg.output, args.set);
      const report = await verifySet(set.id, set.dir, { tools: cfg.tools, progress, formatChecks: args.formats });
      return { exitCode: report.ok ? EXIT.ok : EXIT.integrity, json: report, human: verifyHuman(report) };
    }),
});
