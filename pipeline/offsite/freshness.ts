import { worstStatus, type FreshnessStatus } from "../freshness.js";

/**
 * Freshness of the offsite copies, per destination: the age of the newest
 * copy that is complete and checks out against a listing, against the
 * destination's own thresholds. Pure: the copies are read and checked
 * beforehand (offsite/freshness-check.ts).
 */

export type CopyFacts = {
  setId: string;
  /** The set's data time. */
  time: Date;
  pushedAt: Date;
  /** Complete and every object matches its record in a listing. */
  verified: boolean;
  problem?: string;
  /** The newest passing `restore-drill --from` on this copy. */
  drillPassedAt?: Date;
};

export type DestinationFacts = { destination: string; reachable: true; copies: CopyFacts[] } | { destination: string; reachable: false; error: string };

export type OffsitePolicy = { warnAfterMs: number; criticalAfterMs: number; drillMaxAgeMs: number | null };

export type OffsiteFinding =
  | { kind: "stale"; status: "WARNING" | "CRITICAL"; ageMs: number; thresholdMs: number }
  | { kind: "no-verified-copy"; status: "CRITICAL"; copies: number }
  | { kind: "unreachable"; status: "UNKNOWN"; error: string }
  | { kind: "newest-copy-invalid"; status: "WARNING"; setId: string; problem: string }
  | { kind: "unproven"; status: "WARNING"; drillMaxAgeMs: number };

export type OffsiteAssessment = {
  destination: string;
  status: FreshnessStatus;
  warnAfterMs: number;
  criticalAfterMs: number;
  newest: { setId: string; time: Date; ageMs: number; pushedAt: Date } | null;
  drill: { required: boolean; proven: boolean; setId: string | null; finishedAt: Date | null };
  copies: { total: number; verified: number };
  findings: OffsiteFinding[];
};

export function assessOffsite(facts: DestinationFacts, policy: OffsitePolicy, now: Date): OffsiteAssessment {
  const base = { destination: facts.destination, warnAfterMs: policy.warnAfterMs, criticalAfterMs: policy.criticalAfterMs };
  const required = policy.drillMaxAgeMs !== null;
  if (!facts.reachable) {
    const findings: OffsiteFinding[] = [{ kind: "unreachable", status: "UNKNOWN", error: facts.error }];
    return { ...base, status: "UNKNOWN", newest: null, drill: { required, proven: false, setId: null, finishedAt: null }, copies: { total: 0, verified: 0 }, findings };
  }
  const t = now.getTime();
  const copies = [...facts.copies].filter((c) => c.time.getTime() <= t).sort((a, b) => b.time.getTime() - a.time.getTime() || (a.setId < b.setId ? 1 : -1));
  const findings: OffsiteFinding[] = [];
  const goodIndex = copies.findIndex((c) => c.verified);
  const good = copies[goodIndex];
  const newest = copies[0];
  if (newest && !newest.verified && good) findings.push({ kind: "newest-copy-invalid", status: "WARNING", setId: newest.setId, problem: newest.problem ?? "does not check out" });
  const counts = { total: facts.copies.length, verified: facts.copies.filter((c) => c.verified).length };
  if (!good) {
    findings.push({ kind: "no-verified-copy", status: "CRITICAL", copies: facts.copies.length });
    return { ...base, status: worstStatus(findings.map((f) => f.status)), newest: null, drill: { required, proven: false, setId: null, finishedAt: null }, copies: counts, findings };
  }
  const ageMs = t - good.time.getTime();
  if (ageMs > policy.criticalAfterMs) findings.push({ kind: "stale", status: "CRITICAL", ageMs, thresholdMs: policy.criticalAfterMs });
  else if (ageMs > policy.warnAfterMs) findings.push({ kind: "stale", status: "WARNING", ageMs, thresholdMs: policy.warnAfterMs });
  // Proof: a passing drill from this destination on the good copy or a newer one.
  const proofs = copies
    .slice(0, goodIndex + 1)
    .filter((c) => c.drillPassedAt !== undefined)
    .sort((a, b) => b.drillPassedAt!.getTime() - a.drillPassedAt!.getTime());
  const proof = proofs[0];
  const proven = proof !== undefined && (policy.drillMaxAgeMs === null || t - proof.drillPassedAt!.getTime() <= policy.drillMaxAgeMs);
  if (policy.drillMaxAgeMs !== null && !proven) findings.push({ kind: "unproven", status: "WARNING", drillMaxAgeMs: policy.drillMaxAgeMs });
  return {
    ...base,
    status: worstStatus(findings.map((f) => f.status)),
    newest: { setId: good.setId, time: good.time, ageMs, pushedAt: good.pushedAt },
    drill: { required, proven, setId: proof?.setId ?? null, finishedAt: proof?.drillPassedAt ?? null },
    copies: counts,
    findings,
  };
}

export function describeOffsiteFinding(f: OffsiteFinding, fmt: (ms: number) => string): string {
  switch (f.kind) {
    case "stale":
      return `newest verified copy is ${fmt(f.ageMs)} old (${f.status} after ${fmt(f.thresholdMs)})`;
    case "no-verified-copy":
      return f.copies === 0 ? "no copy at all" : `none of the ${f.copies} copies checks out`;
    case "unreachable":
      return `cannot be read: ${f.error}`;
    case "newest-copy-invalid":
      return `newest copy ${f.setId} does not check out: ${f.problem}`;
    case "unproven":
      return `not proven: no passing restore-drill --from it within ${fmt(f.drillMaxAgeMs)}`;
    default: {
      const never: never = f;
      return never;
    }
  }
}
