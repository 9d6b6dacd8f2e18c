import { formatDuration } from "../duration.js";
import { NAGIOS_EXIT, worstStatus, type FreshnessStatus } from "../freshness.js";
import { table } from "../report.js";
import { describeOffsiteFinding, type OffsiteAssessment } from "./freshness.js";

/** JSON, human, Markdown and Prometheus shapes of the offsite part of `freshness`. Pure. */

export function offsiteStatus(local: FreshnessStatus, offsite: OffsiteAssessment[]): FreshnessStatus {
  return worstStatus([local, ...offsite.map((o) => o.status)]);
}

export function offsiteSummary(offsite: OffsiteAssessment[]): string[] {
  return offsite.flatMap((o) => o.findings.map((f) => `offsite ${o.destination}: ${describeOffsiteFinding(f, formatDuration)}`));
}

export function offsiteJson(offsite: OffsiteAssessment[]) {
  return offsite.map((o) => ({
    destination: o.destination,
    status: o.status,
    ageMs: o.newest?.ageMs ?? null,
    age: o.newest ? formatDuration(o.newest.ageMs) : null,
    warnAfterMs: o.warnAfterMs,
    criticalAfterMs: o.criticalAfterMs,
    newestVerified: o.newest ? { setId: o.newest.setId, time: o.newest.time.toISOString(), pushedAt: o.newest.pushedAt.toISOString() } : null,
    drill: { required: o.drill.required, proven: o.drill.proven, setId: o.drill.setId, finishedAt: o.drill.finishedAt?.toISOString() ?? null },
    copies: o.copies,
    findings: o.findings.map((f) => ({ ...f, message: describeOffsiteFinding(f, formatDuration) })),
  }));
}

const HEADERS = ["destination", "status", "age", "warn after", "critical after", "newest verified copy", "copies", "drill from it"];

function row(o: OffsiteAssessment): string[] {
  const drill = o.drill.setId ? `${o.drill.proven || !o.drill.required ? "" : "NOT proven: "}drill on ${o.drill.setId}` : o.drill.required ? "NOT proven: no drill" : "no drill (not required)";
  return [
    o.destination,
    o.status,
    o.newest ? formatDuration(o.newest.ageMs) : "-",
    formatDuration(o.warnAfterMs),
    formatDuration(o.criticalAfterMs),
    o.newest?.setId ?? "-",
    `${o.copies.verified}/${o.copies.total}`,
    drill,
  ];
}

export function offsiteHuman(offsite: OffsiteAssessment[]): string {
  return offsite.length === 0 ? "" : `offsite copies:\n${table(HEADERS, offsite.map(row))}`;
}

const ICON: Record<FreshnessStatus, string> = { OK: "✅", WARNING: "⚠️", CRITICAL: "❌", UNKNOWN: "❔" };

export function offsiteMarkdown(offsite: OffsiteAssessment[]): string {
  if (offsite.length === 0) return "";
  const cell = (t: string) => t.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const lines = ["#### Offsite copies", "", `| ${HEADERS.join(" | ")} |`, `|${HEADERS.map(() => "---").join("|")}|`];
  for (const o of offsite) {
    const r = row(o);
    r[1] = `${ICON[o.status]} ${o.status}`;
    lines.push(`| ${r.map(cell).join(" | ")} |`);
  }
  for (const s of offsiteSummary(offsite)) lines.push("", cell(s));
  return `${lines.join("\n")}\n\n`;
}

export function offsitePrometheus(offsite: OffsiteAssessment[]): string {
  if (offsite.length === 0) return "";
  const metric = (name: string, help: string, value: (o: OffsiteAssessment) => number) => [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} gauge`,
    ...offsite.map((o) => {
      const v = value(o);
      return `${name}{destination="${o.destination}"} ${Number.isFinite(v) ? String(v) : "NaN"}`;
    }),
  ];
  return `${[
    ...metric("backup_drill_offsite_last_success_timestamp_seconds", "Data time of the newest verified offsite copy at the destination (0: none).", (o) => (o.newest ? o.newest.time.getTime() / 1000 : 0)),
    ...metric("backup_drill_offsite_age_seconds", "Age of the newest verified offsite copy at check time (NaN: none).", (o) => (o.newest ? o.newest.ageMs / 1000 : Number.NaN)),
    ...metric("backup_drill_offsite_freshness_status", "Freshness of the destination: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", (o) => NAGIOS_EXIT[o.status]),
    ...metric("backup_drill_offsite_copies", "Copies at the destination that check out against a listing (only the newest is checked; older ones count when they were reached).", (o) => o.copies.verified),
  ].join("\n")}\n`;
}
