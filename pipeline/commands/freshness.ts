import { appendFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Argv } from "yargs";
import { errorMessage, OperationError, type FailureKind } from "../errors.js";
import { freshnessHuman, freshnessJson, freshnessMarkdown } from "../freshness-report.js";
import { freshnessPolicy, NAGIOS_EXIT } from "../freshness.js";
import { offsiteHuman, offsiteJson, offsiteMarkdown, offsitePrometheus, offsiteStatus, offsiteSummary } from "../offsite/freshness-report.js";
import type { WebhookOutcome } from "../webhook.js";
import { nowFrom, withNowOption } from "./clock.js";
import { configFrom, defineCommand, runCommand, withGlobalOptions, type GlobalArgs } from "./common.js";

type FreshnessArgs = GlobalArgs & {
  deep: boolean;
  prometheus?: string;
  markdown?: string;
  webhook?: string;
  webhookTimeout?: number;
  now?: string;
};

/** A monitoring check: whatever goes wrong while checking is UNKNOWN (3), never a CRITICAL by accident. */
export const FRESHNESS_EXIT_FOR_KIND: Record<FailureKind, number> = {
  operation: NAGIOS_EXIT.UNKNOWN,
  input: NAGIOS_EXIT.UNKNOWN,
  integrity: NAGIOS_EXIT.UNKNOWN,
  locked: NAGIOS_EXIT.UNKNOWN,
};

export const FRESHNESS_EPILOG = `Judges the newest good set of every service: complete, manifest checks out (with --deep: every file re-hashed), dump at least minSizeBytes. Thresholds come from the "freshness" config section (default warnAfter 26h, criticalAfter 50h, minSizeBytes 1, drillMaxAge 8d). Each offsite destination is judged too: the age of its newest copy whose record and listing check out, against offsite.destinations.<name>.freshness (default warnAfter 26h, criticalAfter 50h; an unreachable destination is UNKNOWN).

Exit codes (Nagios):
  0  OK
  1  WARNING: older than warnAfter, missing from or too small in the newest set, newest set not valid, not proven by a drill within drillMaxAge
  2  CRITICAL: older than criticalAfter, or no good set of a service at all
  3  UNKNOWN: no sets, unreadable output root, bad config or flags, an output file that cannot be written`;

export const freshnessCommand = defineCommand<FreshnessArgs>({
  command: "freshness",
  describe: "Monitoring check: is every service's newest good backup fresh enough and proven by a restore drill? (Nagios exit codes)",
  builder: (y: Argv) =>
    withNowOption(withGlobalOptions(y))
      .option("deep", { type: "boolean", default: false, describe: "Re-hash every file of the sets the verdict rests on (default: manifest.sha256 only)" })
      .option("prometheus", { type: "string", describe: "Write a node_exporter textfile here (atomically: temp file + rename)" })
      .option("markdown", { type: "string", describe: "Append a Markdown summary table here (e.g. $GITHUB_STEP_SUMMARY)" })
      .option("webhook", {
        type: "string",
        describe: 'POST the JSON report here when the status is WARNING or worse: a URL or "env:NAME" / "file:PATH" (env BACKUP_DRILL_WEBHOOK_URL; config freshness.webhook.url)',
      })
      .option("webhook-timeout", { type: "number", describe: "Webhook timeout in milliseconds (default 5000; config freshness.webhook.timeoutMs)" })
      .epilog(FRESHNESS_EPILOG),
  handler: (args: FreshnessArgs) =>
    runCommand(
      "freshness",
      args,
      async ({ progress }) => {
        const { checkFreshness } = await import("../freshness-check.js");
        const { checkOffsiteFreshness } = await import("../offsite/freshness-check.js");
        const { writePrometheusFile } = await import("../prometheus.js");
        const { postWebhook, resolveWebhook } = await import("../webhook.js");
        const cfg = configFrom(args, { resolveSecrets: false });
        const now = nowFrom(args.now);
        const policy = freshnessPolicy(cfg);
        const hook = resolveWebhook({
          flag: args.webhook,
          env: process.env,
          config: cfg.freshness?.webhook,
          timeoutFlag: args.webhookTimeout,
          baseDir: cfg.baseDir ?? process.cwd(),
        });
        const { report: local } = await checkFreshness(cfg.output, policy, now, { deep: args.deep, tools: cfg.tools, progress });
        // Offsite destinations: each judged on its newest copy that checks out, with its own thresholds.
        const offsite = await checkOffsiteFreshness(cfg.offsite?.destinations ?? [], now, progress);
        const report = { ...local, status: offsiteStatus(local.status, offsite) };
        const localDoc = freshnessJson(report, cfg.output);
        const extra = offsiteSummary(offsite);
        const doc = offsite.length === 0 ? localDoc : { ...localDoc, summary: [localDoc.summary, ...extra].join("; "), offsite: offsiteJson(offsite) };

        // The alert goes out before the files are written: a full disk must not swallow it.
        let webhook: WebhookOutcome;
        if (!hook) webhook = { sent: false, reason: "no webhook configured" };
        else if (report.status === "OK") webhook = { sent: false, reason: "status is OK" };
        else {
          webhook = await postWebhook(hook, doc);
          if (webhook.sent && !webhook.ok) progress.warn(`webhook ${webhook.target}: ${webhook.error}`);
        }

        const outputs: { prometheus?: string; markdown?: string } = {};
        if (args.prometheus) outputs.prometheus = await writePrometheusFile(args.prometheus, report, offsitePrometheus(offsite));
        if (args.markdown) {
          const path = resolve(args.markdown);
          try {
            await appendFile(path, freshnessMarkdown(report) + offsiteMarkdown(offsite));
          } catch (err) {
            throw new OperationError(`--markdown: cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
          }
          outputs.markdown = path;
        }

        const webhookLine = !webhook.sent ? [] : webhook.ok ? [`webhook: sent to ${webhook.target} (HTTP ${webhook.status})`] : [`webhook: FAILED to reach ${webhook.target}: ${webhook.error}`];
        return {
          exitCode: NAGIOS_EXIT[report.status],
          json: { ...doc, webhook, outputs },
          human: [freshnessHuman(report).replace(/^(FRESHNESS \S+ - .*)$/m, (l) => [l, ...extra].join("; ")), ...(offsite.length ? [offsiteHuman(offsite)] : []), ...webhookLine].join("\n"),
        };
      },
      FRESHNESS_EXIT_FOR_KIND,
    ),
});
