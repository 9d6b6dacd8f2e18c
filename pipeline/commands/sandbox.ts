import type { Argv } from "yargs";
import { backupHuman, backupJson, drillHuman, verifyHuman } from "../report.js";
import { configFrom, defineCommand, EXIT, EXIT_CODES_EPILOG, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

export const sandboxCommand = defineCommand<GlobalArgs>({
  command: "sandbox",
  describe: "Start throwaway PostgreSQL, Redis and MinIO, seed an app dataset, back it up, verify the set and restore-drill it",
  builder: (y: Argv) =>
    withGlobalOptions(y).epilog(
      `Needs the local tools (scripts/ensure-tools.sh installs them). Servers run on free 127.0.0.1 ports in temp directories and are stopped and removed at the end, also on failure or Ctrl-C. The set lands in the output root (default output/backups); the drill summary is written into it. Exit 0 when the backup verified and every drill check passed, 3 when not.\n\n${EXIT_CODES_EPILOG}`,
    ),
  handler: (args: GlobalArgs) =>
    runCommand("sandbox", args, async ({ progress, signal, runner }) => {
      const { runSandbox } = await import("../sandbox.js");
      const cfg = configFrom(args, { resolveSecrets: false });
      const r = await runSandbox({ output: cfg.output, tools: cfg.tools, progress, signal, runner });
      const ok = r.verify.ok && r.drill?.ok === true;
      return {
        exitCode: ok ? EXIT.ok : EXIT.integrity,
        json: { ok, backup: backupJson(r.backup), verify: r.verify, drill: r.drill ?? null },
        human: [backupHuman(r.backup), verifyHuman(r.verify), ...(r.drill ? [drillHuman(r.drill)] : [])].join("\n"),
      };
    }),
});
