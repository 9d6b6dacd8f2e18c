import { formatDuration } from "./duration.js";
import { describeFinding, NAGIOS_EXIT, type FreshnessReport, type FreshnessStatus, type ServiceAssessment } from "./freshness.js";
import { humanBytes, table } from "./report.js";

/** JSON, human and Markdown shapes of a freshness report. Pure: strings and plain objects. */

export function freshnessSummary(r: FreshnessReport): string {
  const problems = [
    ...r.findings.map((f) => describeFinding(f, formatDuration)),
    ...r.services.flatMap((s) => s.findings.map((f) => `${s.service}: ${describeFinding(f, formatDuration)}`)),
  ];
  if (problems.length > 0) return problems.join("; ");
  return r.services.map((s) => `${s.service} ${formatDuration(s.lastGood!.ageMs)} old`).join(", ") || "no services";
}

/** The report as one JSON document (also the webhook payload). */
export function freshnessJson(r: FreshnessReport, root: string) {
  return {
    check: "backup-drill freshness",
    status: r.status,
    exitCode: NAGIOS_EXIT[r.status],
    summary: freshnessSummary(r),
    now: r.now.toISOString(),
    root,
    services: r.services.map((s) => ({
      service: s.service,
      status: s.status,
      ageMs: s.lastGood?.ageMs ?? null,
      age: s.lastGood ? formatDuration(s.lastGood.ageMs) : null,
      warnAfterMs: s.warnAfterMs,
      criticalAfterMs: s.criticalAfterMs,
      minSizeBytes: s.minSizeBytes,
      lastGood: s.lastGood ? { setId: s.lastGood.setId, time: s.lastGood.time.toISOString(), bytes: s.lastGood.bytes } : null,
      proof: {
        required: s.proof.required,
        proven: s.proof.proven,
        drill: s.proof.drill ? { setId: s.proof.drill.setId, finishedAt: s.proof.drill.finishedAt.toISOString(), ageMs: s.proof.drill.ageMs } : null,
      },
      findings: s.findings.map((f) => ({ ...f, message: describeFinding(f, formatDuration) })),
    })),
    findings: r.findings.map((f) => ({ ...f, message: describeFinding(f, formatDuration) })),
    sets: r.sets,
    lastDrillSuccess: r.lastDrillSuccess ? { setId: r.lastDrillSuccess.setId, finishedAt: r.lastDrillSuccess.finishedAt.toISOString() } : null,
  };
}

function drillCell(s: ServiceAssessment): string {
  const d = s.proof.drill;
  const when = d ? `drill ${formatDuration(d.ageMs)} ago on ${d.setId}` : "no drill";
  if (!s.proof.required) return `${when} (not required)`;
  return s.proof.proven ? `proven: ${when}` : `NOT proven: ${when}`;
}

function serviceRow(s: ServiceAssessment): string[] {
  return [
    s.service,
    s.status,
    s.lastGood ? formatDuration(s.lastGood.ageMs) : "-",
    formatDuration(s.warnAfterMs),
    formatDuration(s.criticalAfterMs),
    s.lastGood?.setId ?? "-",
    s.lastGood ? humanBytes(s.lastGood.bytes) : "-",
    drillCell(s),
  ];
}

const HEADERS = ["service", "status", "age", "warn after", "critical after", "newest good set", "size", "restore drill"];

/** Nagios style: the first line is `FRESHNESS <STATUS> - <summary>`, then one line per service. */
export function freshnessHuman(r: FreshnessReport): string {
  const lines = [`FRESHNESS ${r.status} - ${freshnessSummary(r)}`];
  if (r.services.length > 0) lines.push(table(HEADERS, r.services.map(serviceRow)));
  for (const x of r.sets.rejected) lines.push(`rejected set ${x.id}: ${x.problem}`);
  return lines.join("\n");
}

const ICON: Record<FreshnessStatus, string> = { OK: "✅", WARNING: "⚠️", CRITICAL: "❌", UNKNOWN: "❔" };

function mdCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** A summary fit for $GITHUB_STEP_SUMMARY. */
export function freshnessMarkdown(r: FreshnessReport): string {
  const lines = [`### ${ICON[r.status]} backup-drill freshness: ${r.status}`, "", mdCell(freshnessSummary(r)), ""];
  if (r.services.length > 0) {
    lines.push(`| ${HEADERS.join(" | ")} |`, `|${HEADERS.map(() => "---").join("|")}|`);
    for (const s of r.services) {
      const row = serviceRow(s);
      row[1] = `${ICON[s.status]} ${s.status}`;
      lines.push(`| ${row.map(mdCell).join(" | ")} |`);
    }
    lines.push("");
  }
  lines.push(`Checked ${r.now.toISOString()}: ${r.sets.total} set(s), ${r.sets.valid} valid${r.sets.rejected.length ? `; rejected: ${r.sets.rejected.map((x) => `\`${x.id}\` (${mdCell(x.problem)})`).join(", ")}` : ""}.`, "");
  return lines.join("\n");
}
