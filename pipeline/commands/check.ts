import type { Argv } from "yargs";
import { configuredServices } from "../config.js";
import { UserError } from "../errors.js";
import { table } from "../report.js";
import { configFrom, defineCommand, EXIT, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

export const checkCommand = defineCommand<GlobalArgs>({
  command: "check",
  describe: "Preflight: can tonight's backup work? Reachability, credentials, tool versions, permissions, output root, free disk",
  builder: (y: Argv) =>
    withGlobalOptions(y).epilog(
      "Per configured service: reachable and authenticated, server version, client tool present and new enough (pg_dump >= the server's major), the permissions the backup needs (PostgreSQL: read every table; Redis: INFO and replication SYNC — no BGSAVE needed — and a local redis-server at least the source's major.minor to read the snapshot; MinIO: list and get every bucket, put/delete for the canary); then the output root writable and free disk >= the estimated set size + 10% + 64 MiB. `backup` runs the same checks first and stages nothing when one fails.\n\nExit codes: 0 every check passed, 1 a check failed (one line per failure on stderr naming the service and the fix), 2 bad input.",
    ),
  handler: (args: GlobalArgs) =>
    runCommand("check", args, async () => {
      const { failureLines, preflight } = await import("../preflight.js");
      const cfg = configFrom(args);
      if (configuredServices(cfg).length === 0) throw new UserError(`${cfg.source}: no service configured`);
      const report = await preflight(cfg);
      const failures = failureLines(report);
      for (const line of failures) process.stderr.write(`check failed: ${line}\n`);
      for (const c of report.checks.filter((x) => x.ok && x.warning)) process.stderr.write(`check warning: ${c.service}: ${c.warning}\n`);
      const human = [
        `preflight: ${report.ok ? "ok" : `${failures.length} check(s) FAILED`}`,
        table(["result", "service", "check", "detail"], report.checks.map((c) => [c.ok ? "ok" : "FAIL", c.service, c.check, c.detail])),
      ].join("\n");
      return { exitCode: report.ok ? EXIT.ok : EXIT.operation, json: report, human };
    }),
});
