import type { Argv } from "yargs";
import { pickDestination } from "../offsite/config.js";
import { pushHuman } from "../offsite/report.js";
import { resolveSet } from "../store/sets.js";
import { configFrom, defineCommand, EXIT, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

type PushArgs = GlobalArgs & { set?: string; to?: string };

export const pushCommand = defineCommand<PushArgs>({
  command: "push",
  describe: "Copy a sealed set to an offsite S3 destination (encrypted with age when configured); a rerun uploads only what is missing",
  builder: (y: Argv) =>
    withGlobalOptions(y)
      .option("set", { type: "string", describe: "Set id (default: the set latest.json names)" })
      .option("to", { type: "string", describe: "Destination name from offsite.destinations (default: the only one)" })
      .epilog(
        "Verifies the local set first (a corrupt set is never pushed). Streams every file up (multipart above partSizeMiB), encrypted on the way when the destination has encrypt.recipients; objects an interrupted push completed are kept. manifest.json goes up after every other file, then offsite.json (the record): a copy without a record is incomplete and never read as a set.\n\nExit codes: 0 pushed (or already complete), 1 the push failed (destination unreachable, upload refused), 2 bad input (config, flags, secret references, unknown destination), 3 the local set fails verification.",
      ),
  handler: (args: PushArgs) =>
    runCommand("push", args, async ({ progress, signal }) => {
      const { pushSet } = await import("../offsite/push.js");
      const cfg = configFrom(args, { resolveSecrets: false });
      const dest = pickDestination(cfg.offsite, args.to, "--to");
      const set = await resolveSet(cfg.output, args.set);
      const result = await pushSet(dest, set, { output: cfg.output, tools: cfg.tools, progress, signal });
      return { exitCode: EXIT.ok, json: result, human: pushHuman(result) };
    }),
});
