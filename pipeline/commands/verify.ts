import type { Argv } from "yargs";
import { UserError } from "../errors.js";
import { pickDestination } from "../offsite/config.js";
import { remoteVerifyHuman } from "../offsite/report.js";
import { verifyHuman } from "../report.js";
import { resolveSet } from "../store/sets.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";
import { identityFrom, withIdentityOption } from "./offsite-flags.js";

type VerifyArgs = GlobalArgs & { set?: string; formats: boolean; remote?: string; readData: boolean; identity?: string };

export const verifyCommand = defineCommand<VerifyArgs>({
  command: "verify",
  describe: "Recompute every checksum of a set and check dump formats; report missing, extra, modified and truncated files",
  builder: (y: Argv) =>
    withIdentityOption(withGlobalOptions(y))
      .option("set", { type: "string", describe: "Set id (default: the set latest.json names; with --remote: the newest complete copy there)" })
      .option("remote", { type: "string", describe: "Check the copy at this offsite destination instead: presence, sizes and ETags from one listing, no download" })
      .option("read-data", { type: "boolean", default: false, describe: "With --remote: download every object, check its stored sha256, decrypt it (needs the identity) and check it against the manifest" })
      .option("formats", {
        type: "boolean",
        default: true,
        describe: "Also run pg_restore --list and redis-check-rdb (--no-formats skips them; checksums and bucket listings are always checked)",
      })
      .epilog(EXIT_CODES_EPILOG),
  handler: (args: VerifyArgs) =>
    runCommand("verify", args, async ({ progress }) => {
      const cfg = configFrom(args, { resolveSecrets: false });
      if (args.readData && args.remote === undefined) throw new UserError("--read-data: only with --remote NAME (a local verify always reads every byte)");
      if (args.remote !== undefined) {
        const { resolveRemoteSet } = await import("../offsite/remote-set.js");
        const { remoteFor } = await import("../offsite/s3.js");
        const { verifyRemote } = await import("../offsite/verify.js");
        const dest = pickDestination(cfg.offsite, args.remote, "--remote");
        const id = await resolveRemoteSet(remoteFor(dest), args.set);
        const remote = await verifyRemote(dest, id, { readData: args.readData, progress, identity: identityFrom(args.identity) });
        return { exitCode: remote.ok ? EXIT.ok : EXIT.integrity, json: remote, human: remoteVerifyHuman(remote) };
      }
      const { verifySet } = await import("../verify.js");
      const set = await resolveSet(cfg.output, args.set);
      const report = await verifySet(set.id, set.dir, { tools: cfg.tools, progress, formatChecks: args.formats });
      return { exitCode: report.ok ? EXIT.ok : EXIT.integrity, json: report, human: verifyHuman(report) };
    }),
});
