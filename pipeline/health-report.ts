import { formatDuration } from "./duration.js";
import { freshnessHuman, freshnessJson } from "./freshness-report.js";
import type { PruneResult } from "./prune.js";
import type { PrunePlan, RetentionPolicy } from "./retention.js";
import type { StatusReport } from "./status.js";

/** JSON and human shapes of prune and status results. Pure: strings and plain objects. */

export function policyJson(p: RetentionPolicy) {
  const { keepWithinMs, partialGraceMs, ...counts } = p;
  return { ...counts, ...(keepWithinMs !== undefined ? { keepWithin: formatDuration(keepWithinMs) } : {}), partialGrace: formatDuration(partialGraceMs) };
}

export function planJson(plan: PrunePlan) {
  return {
    keep: plan.keep.map((k) => ({ id: k.id, time: k.time.toISOString(), kind: k.kind, reasons: k.reasons })),
    remove: plan.remove.map((r) => ({ id: r.id, time: r.time.toISOString(), kind: r.kind, reason: r.reason })),
  };
}

export function pruneJson(r: PruneResult) {
  return { ok: r.errors.length === 0, dryRun: r.dryRun, policy: policyJson(r.policy), ...planJson(r.plan), removed: r.removed, skipped: r.skipped, tempFiles: r.tempFiles, errors: r.errors };
}

const label = (kind: string, id: string) => (kind === "partial" ? `.partial-${id}` : id);

function planLines(plan: PrunePlan): string[] {
  return [
    ...plan.keep.map((k) => `  keep    ${label(k.kind, k.id).padEnd(32)} ${k.reasons.join(", ")}`),
    ...plan.remove.map((r) => `  remove  ${label(r.kind, r.id).padEnd(32)} ${r.reason}`),
  ];
}

export function pruneHuman(r: PruneResult): string {
  const head = r.dryRun
    ? `prune (dry run): would keep ${r.plan.keep.length}, would remove ${r.plan.remove.length}`
    : `prune: kept ${r.plan.keep.length}, removed ${r.removed.length}${r.errors.length ? `, FAILED to remove ${r.errors.length}` : ""}`;
  return [
    head,
    ...planLines(r.plan),
    ...r.skipped.map((x) => `  skipped ${x.id.padEnd(32)} ${x.reason}`),
    ...r.tempFiles.map((f) => `  removed ${f} (temp file of an interrupted write)`),
    ...r.errors.map((e) => `  error   ${e.id}: ${e.message}`),
  ].join("\n");
}

export function statusJson(r: StatusReport, exitCode: number) {
  return {
    ok: r.verdict === "healthy",
    verdict: r.verdict,
    exitCode,
    problems: r.problems,
    now: r.now.toISOString(),
    root: r.root,
    latest: r.latest ? { ...r.latest, time: r.latest.time.toISOString() } : null,
    ...(r.latestProblem ? { latestProblem: r.latestProblem } : {}),
    verify: r.verify,
    lastDrill: r.lastDrill,
    freshness: freshnessJson(r.freshness, r.root),
    prune: r.prune.plan ? planJson(r.prune.plan) : { keep: null, remove: null, reason: r.prune.reason },
  };
}

export function statusHuman(r: StatusReport): string {
  const head = { healthy: "HEALTHY", stale: "STALE", integrity: "INTEGRITY FAILURE" }[r.verdict];
  const lines = [`status: ${head}${r.problems.length ? ` — ${r.problems.join("; ")}` : ""}`];
  if (r.latest) {
    const age = formatDuration(r.now.getTime() - r.latest.time.getTime());
    const v = r.verify;
    const verify = !v ? "not verified" : v.ok ? `verify ok (${v.filesChecked} files${v.formatChecks.length ? `, ${v.formatChecks.length} format checks` : ""})` : `verify FAILED (${v.findings.length} finding(s))`;
    lines.push(`latest set: ${r.latest.id} (taken ${age} ago) — ${verify}`);
    for (const f of v?.findings ?? []) lines.push(`  ${f.verdict} ${f.path}: ${f.detail}`);
  } else lines.push(`latest set: none${r.latestProblem ? ` (${r.latestProblem})` : ""}`);
  const d = r.lastDrill;
  lines.push(
    d
      ? `last drill: ${d.ok ? "ok" : "FAILED"} on ${d.setId} at ${d.finishedAt} — ${d.totals.passed}/${d.totals.checks} checks passed${d.matchesManifest ? "" : " (summary does not match the set's manifest)"}`
      : "last drill: none",
  );
  lines.push("", freshnessHuman(r.freshness), "");
  if (r.prune.plan) {
    lines.push(`prune would keep ${r.prune.plan.keep.length} and remove ${r.prune.plan.remove.length}:`, ...planLines(r.prune.plan));
  } else lines.push(`prune: not planned: ${r.prune.reason}`);
  return lines.join("\n");
}
