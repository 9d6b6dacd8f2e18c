import { join } from "node:path";
import type { Config } from "./config.js";
import { readDrillSummary, type DrillSummary } from "./drill-summary.js";
import { errorMessage } from "./errors.js";
import { assessFreshness, freshnessPolicy, type FreshnessReport } from "./freshness.js";
import type { Progress } from "./progress.js";
import { retentionItems } from "./prune.js";
import { planPrune, retentionPolicy, type PrunePlan } from "./retention.js";
import { loadCatalog } from "./store/catalog.js";
import { verifySet, type VerifyReport } from "./verify.js";

/**
 * One document for a dashboard or a PR gate: the latest set and its verify
 * result, the last restore drill, freshness per service, and what prune
 * would do. Reads only; never changes the output root.
 */

export type LastDrill = {
  setId: string;
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  /** The summary restored this set's current manifest. */
  matchesManifest: boolean;
  services: Record<string, { ok: boolean; restoreMs: number; checks: number; failed: number }>;
  totals: DrillSummary["totals"];
};

export type StatusVerdict = "healthy" | "stale" | "integrity";

export type StatusReport = {
  verdict: StatusVerdict;
  problems: string[];
  now: Date;
  root: string;
  latest: { id: string; time: Date; valid: boolean; problem?: string } | null;
  latestProblem?: string;
  verify: VerifyReport | null;
  lastDrill: LastDrill | null;
  freshness: FreshnessReport;
  prune: { plan: PrunePlan } | { plan: null; reason: string };
};

export async function buildStatus(cfg: Config, now: Date, opts: { formats: boolean; progress: Progress }): Promise<StatusReport> {
  const catalog = await loadCatalog(cfg.output);
  const freshness = assessFreshness(catalog.sets, freshnessPolicy(cfg), now);

  const latestSet = catalog.sets.find((s) => s.id === catalog.latestId);
  let latestProblem = catalog.latestProblem;
  if (catalog.latestId && !latestSet) latestProblem = `latest.json names set ${catalog.latestId}, which is missing`;
  const verify = latestSet ? await verifySet(latestSet.id, join(cfg.output, latestSet.id), { tools: cfg.tools, progress: opts.progress, formatChecks: opts.formats }) : null;

  const drilled = catalog.sets.filter((s) => s.drill).sort((a, b) => b.drill!.finishedAt.getTime() - a.drill!.finishedAt.getTime());
  let lastDrill: LastDrill | null = null;
  if (drilled[0]) {
    const set = drilled[0];
    try {
      const summary = await readDrillSummary(join(cfg.output, set.id));
      if (summary) lastDrill = drillOf(set.id, summary, set.manifestSha256);
    } catch (err) {
      opts.progress.warn(`status: drill summary of ${set.id}: ${errorMessage(err)}`);
    }
  }

  let prune: StatusReport["prune"];
  try {
    prune = { plan: planPrune(retentionItems(catalog), retentionPolicy(cfg.retention, cfg.source), now) };
  } catch (err) {
    prune = { plan: null, reason: errorMessage(err) };
  }

  const { verdict, problems } = statusVerdict({ latestProblem, verify, lastDrill, freshness });
  return {
    verdict,
    problems,
    now,
    root: cfg.output,
    latest: latestSet ? { id: latestSet.id, time: latestSet.time, valid: latestSet.valid, ...(latestSet.problem ? { problem: latestSet.problem } : {}) } : null,
    ...(latestProblem ? { latestProblem } : {}),
    verify,
    lastDrill,
    freshness,
    prune,
  };
}

function drillOf(setId: string, s: DrillSummary, manifestSha256: string | undefined): LastDrill {
  const services: LastDrill["services"] = {};
  for (const [name, r] of Object.entries(s.services)) {
    if (r) services[name] = { ok: r.ok, restoreMs: r.restoreMs, checks: r.checks.length, failed: r.checks.filter((c) => !c.ok).length };
  }
  return { setId, ok: s.ok, startedAt: s.startedAt, finishedAt: s.finishedAt, matchesManifest: s.manifestSha256 === manifestSha256, services, totals: s.totals };
}

/**
 * integrity: the latest set fails verification or the last drill failed
 * (exit 3); stale: freshness is not OK (exit 1); healthy: exit 0.
 */
export function statusVerdict(r: Pick<StatusReport, "verify" | "lastDrill" | "freshness"> & { latestProblem?: string }): { verdict: StatusVerdict; problems: string[] } {
  const integrity: string[] = [];
  if (r.latestProblem) integrity.push(r.latestProblem);
  if (r.verify && !r.verify.ok) integrity.push(`latest set ${r.verify.id} fails verification: ${r.verify.findings.length} finding(s)`);
  if (r.lastDrill && !r.lastDrill.ok) integrity.push(`last restore drill (set ${r.lastDrill.setId}, ${r.lastDrill.finishedAt}) failed: ${r.lastDrill.totals.failed} check(s)`);
  const stale = r.freshness.status === "OK" ? [] : [`freshness ${r.freshness.status}`];
  const problems = [...integrity, ...stale];
  return { verdict: integrity.length > 0 ? "integrity" : stale.length > 0 ? "stale" : "healthy", problems };
}
