import type { Argv } from "yargs";
import { backupHuman, backupJson, verifyHuman } from "../report.js";
import { runSandbox } from "../sandbox.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

export const sandboxCommand = defineCommand<GlobalArgs>({
  command: "sandbox",
  describe: "Start throwaway PostgreSQL, Redis and MinIO, seed an app dataset, back it up and verify the set",
  builder: (y: Argv) =>
    withGlobalOptions(y).epilog(
      `Needs the local tools (scripts/ensure-tools.sh installs them). Servers run on free 127.0.0.1 ports in temp directories and are stopped and removed at the end, also on failure or Ctrl-C. The set lands in the output root (default output/backups).\n\n${EXIT_CODES_EPILOG}`,
    ),
  handler: (args: GlobalArgs) =>
    runCommand("sandbox", args, async ({ progress, signal }) => {
      const cfg = configFrom(args, { resolveSecrets: false });
      const r = await runSandbox({ output: cfg.output, tools: cfg.tools, progress, signal });
      return {
        exitCode: r.verify.ok ? EXIT.ok : EXIT.integrity,
        json: { ok: r.verify.ok, backup: backupJson(r.backup), verify: r.verify },
        human: [backupHuman(r.backup), verifyHuman(r.verify)].join("\n"),
      };
    }),
});
