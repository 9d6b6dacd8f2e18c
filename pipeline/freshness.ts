import { SERVICES, configuredServices, type Config, type ServiceName } from "./config.js";
import { parseDuration } from "./duration.js";
import { UserError } from "./errors.js";
import { drillOfSet, newestFirst, type SetFacts } from "./set-facts.js";

/**
 * Freshness: is there a recent, good, proven backup of every service? A pure
 * function of (sets, policy, now); the sets are read beforehand by
 * store/catalog.ts. Statuses and exit codes follow Nagios.
 */

export type FreshnessStatus = "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";

export const NAGIOS_EXIT: Record<FreshnessStatus, 0 | 1 | 2 | 3> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

/** Worst first when combining: CRITICAL > UNKNOWN > WARNING > OK. */
const SEVERITY: Record<FreshnessStatus, number> = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 };

export function worstStatus(statuses: readonly FreshnessStatus[]): FreshnessStatus {
  return statuses.reduce<FreshnessStatus>((a, b) => (SEVERITY[b] > SEVERITY[a] ? b : a), "OK");
}

export type ServicePolicy = { warnAfterMs: number; criticalAfterMs: number; minSizeBytes: number };

export type FreshnessPolicy = {
  /** Services that must have backups. Empty: every service found in a valid set. */
  expected: ServiceName[];
  thresholds: Record<ServiceName, ServicePolicy>;
  /** A service's newest good set is proven only by a passing drill this recent; null: not checked. */
  drillMaxAgeMs: number | null;
};

/** What can be wrong with one service. Each carries the status it causes. */
export type ServiceFinding =
  | { kind: "stale"; status: "WARNING" | "CRITICAL"; ageMs: number; thresholdMs: number }
  | { kind: "no-good-set"; status: "CRITICAL" }
  | { kind: "no-sets"; status: "UNKNOWN" }
  | { kind: "missing-from-newest"; status: "WARNING"; setId: string }
  | { kind: "too-small"; status: "WARNING"; setId: string; bytes: number; minSizeBytes: number }
  | { kind: "unproven"; status: "WARNING"; drillMaxAgeMs: number };

/** What can be wrong with the output root as a whole. */
export type RootFinding =
  | { kind: "no-sets"; status: "UNKNOWN" }
  | { kind: "no-valid-set"; status: "CRITICAL"; rejected: number }
  | { kind: "newest-set-invalid"; status: "WARNING"; setId: string; problem: string }
  | { kind: "dated-in-future"; status: "WARNING"; setId: string; aheadMs: number }
  | { kind: "latest-damaged"; status: "CRITICAL"; problem: string };

export type ServiceAssessment = {
  service: ServiceName;
  status: FreshnessStatus;
  warnAfterMs: number;
  criticalAfterMs: number;
  minSizeBytes: number;
  /** The newest valid set holding a big enough dump of the service. */
  lastGood: { setId: string; time: Date; ageMs: number; bytes: number } | null;
  proof: {
    required: boolean;
    /** A passing drill on lastGood or a newer set, within drillMaxAge. */
    proven: boolean;
    /** The newest passing drill of this service on lastGood or a newer set, however old. */
    drill: { setId: string; finishedAt: Date; ageMs: number } | null;
  };
  findings: ServiceFinding[];
};

export type FreshnessReport = {
  now: Date;
  status: FreshnessStatus;
  services: ServiceAssessment[];
  findings: RootFinding[];
  sets: {
    total: number;
    valid: number;
    newestId: string | null;
    rejected: { id: string; problem: string }[];
  };
  /** The newest drill that passed as a whole, on a valid set. */
  lastDrillSuccess: { setId: string; finishedAt: Date } | null;
};

export function assessFreshness(sets: readonly SetFacts[], policy: FreshnessPolicy, now: Date, root: { latestProblem?: string } = {}): FreshnessReport {
  const t = now.getTime();
  const all = newestFirst(sets);
  // Sets dated after now are not evidence of anything (a skewed clock); restic skips them too.
  const counted = all.filter((s) => s.valid && s.time.getTime() <= t);
  const findings: RootFinding[] = [];
  // A damaged latest.json breaks every consumer that follows it (restore without --set): CRITICAL.
  if (root.latestProblem) findings.push({ kind: "latest-damaged", status: "CRITICAL", problem: root.latestProblem });
  if (all.length === 0) findings.push({ kind: "no-sets", status: "UNKNOWN" });
  else if (!all.some((s) => s.valid)) findings.push({ kind: "no-valid-set", status: "CRITICAL", rejected: all.length });
  const newest = all.find((s) => s.time.getTime() <= t);
  if (newest && !newest.valid && counted.length > 0) {
    findings.push({ kind: "newest-set-invalid", status: "WARNING", setId: newest.id, problem: newest.problem ?? "not valid" });
  }
  for (const s of all) {
    if (s.time.getTime() > t) findings.push({ kind: "dated-in-future", status: "WARNING", setId: s.id, aheadMs: s.time.getTime() - t });
  }

  const expected = policy.expected.length > 0 ? policy.expected : SERVICES.filter((svc) => counted.some((s) => s.services[svc]));
  const services = expected.map((svc) => assessService(svc, all.length === 0, counted, policy, t));

  const drilled = counted
    .map((s) => ({ s, d: drillOfSet(s) }))
    .filter((x) => x.d?.ok === true)
    .sort((a, b) => b.d!.finishedAt.getTime() - a.d!.finishedAt.getTime());
  const lastDrill = drilled[0];

  return {
    now,
    status: worstStatus([...services.map((s) => s.status), ...findings.map((f) => f.status)]),
    services,
    findings,
    sets: {
      total: all.length,
      valid: all.filter((s) => s.valid).length,
      newestId: all[0]?.id ?? null,
      rejected: all.filter((s) => !s.valid).map((s) => ({ id: s.id, problem: s.problem ?? "not valid" })),
    },
    lastDrillSuccess: lastDrill ? { setId: lastDrill.s.id, finishedAt: lastDrill.d!.finishedAt } : null,
  };
}

/** `counted`: valid sets not dated in the future, newest first. */
function assessService(service: ServiceName, noSets: boolean, counted: SetFacts[], policy: FreshnessPolicy, t: number): ServiceAssessment {
  const th = policy.thresholds[service];
  const findings: ServiceFinding[] = [];
  const base = { service, warnAfterMs: th.warnAfterMs, criticalAfterMs: th.criticalAfterMs, minSizeBytes: th.minSizeBytes };
  const required = policy.drillMaxAgeMs !== null;
  if (noSets) {
    findings.push({ kind: "no-sets", status: "UNKNOWN" });
    return { ...base, status: "UNKNOWN", lastGood: null, proof: { required, proven: false, drill: null }, findings };
  }

  const goodIndex = counted.findIndex((s) => (s.services[service]?.bytes ?? -1) >= th.minSizeBytes);
  const good = counted[goodIndex];
  const newest = counted[0];
  if (newest && newest !== good) {
    const inNewest = newest.services[service];
    if (!inNewest) findings.push({ kind: "missing-from-newest", status: "WARNING", setId: newest.id });
    else findings.push({ kind: "too-small", status: "WARNING", setId: newest.id, bytes: inNewest.bytes, minSizeBytes: th.minSizeBytes });
  }
  if (!good) {
    findings.push({ kind: "no-good-set", status: "CRITICAL" });
    return { ...base, status: worstStatus(findings.map((f) => f.status)), lastGood: null, proof: { required, proven: false, drill: null }, findings };
  }

  const ageMs = t - good.time.getTime();
  if (ageMs > th.criticalAfterMs) findings.push({ kind: "stale", status: "CRITICAL", ageMs, thresholdMs: th.criticalAfterMs });
  else if (ageMs > th.warnAfterMs) findings.push({ kind: "stale", status: "WARNING", ageMs, thresholdMs: th.warnAfterMs });

  // Proof: a drill that restored this service from the good set or a newer one.
  const proofs = counted
    .slice(0, goodIndex + 1)
    .map((s) => ({ s, d: drillOfSet(s) }))
    .filter((x) => x.d?.services[service] === true)
    .map((x) => ({ setId: x.s.id, finishedAt: x.d!.finishedAt, ageMs: t - x.d!.finishedAt.getTime() }))
    .sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime());
  const drill = proofs[0] ?? null;
  const proven = drill !== null && (policy.drillMaxAgeMs === null || drill.ageMs <= policy.drillMaxAgeMs);
  if (policy.drillMaxAgeMs !== null && !proven) findings.push({ kind: "unproven", status: "WARNING", drillMaxAgeMs: policy.drillMaxAgeMs });

  return {
    ...base,
    status: worstStatus(findings.map((f) => f.status)),
    lastGood: { setId: good.id, time: good.time, ageMs, bytes: good.services[service]!.bytes },
    proof: { required, proven, drill },
    findings,
  };
}

/** One line per finding, for humans. Exhaustive over the finding kinds. */
export function describeFinding(f: ServiceFinding | RootFinding, fmt: (ms: number) => string): string {
  switch (f.kind) {
    case "stale":
      return `newest good backup is ${fmt(f.ageMs)} old (${f.status} after ${fmt(f.thresholdMs)})`;
    case "no-good-set":
      return "no valid set holds a good backup of it";
    case "no-sets":
      return "no backup sets at all";
    case "missing-from-newest":
      return `missing from the newest set ${f.setId}`;
    case "too-small":
      return `newest set ${f.setId} holds only ${f.bytes} bytes (minSizeBytes ${f.minSizeBytes})`;
    case "unproven":
      return `not proven: no passing restore drill on it or a newer set within ${fmt(f.drillMaxAgeMs)}`;
    case "no-valid-set":
      return `none of the ${f.rejected} set(s) is valid`;
    case "newest-set-invalid":
      return `newest set ${f.setId} is not valid: ${f.problem}`;
    case "dated-in-future":
      return `set ${f.setId} is dated ${fmt(f.aheadMs)} in the future (clock skew?); not counted`;
    case "latest-damaged":
      return `output root damaged: ${f.problem}`;
    default: {
      const never: never = f;
      return never;
    }
  }
}

// ---------------------------------------------------------------------------
// Policy from config
// ---------------------------------------------------------------------------

export const FRESHNESS_DEFAULTS = { warnAfter: "26h", criticalAfter: "50h", minSizeBytes: 1, drillMaxAge: "8d" } as const;

/**
 * The freshness policy the config asks for. Expected services: those with a
 * source section or a `freshness.<service>` section. Throws UserError naming
 * the field when criticalAfter is shorter than warnAfter.
 */
export function freshnessPolicy(cfg: Pick<Config, "freshness" | "postgres" | "redis" | "minio">): FreshnessPolicy {
  const f = cfg.freshness;
  const warnAfter = f?.warnAfter ?? FRESHNESS_DEFAULTS.warnAfter;
  const criticalAfter = f?.criticalAfter ?? FRESHNESS_DEFAULTS.criticalAfter;
  const minSizeBytes = f?.minSizeBytes ?? FRESHNESS_DEFAULTS.minSizeBytes;
  const thresholds = {} as Record<ServiceName, ServicePolicy>;
  for (const s of SERVICES) {
    const o = f?.[s];
    const p = {
      warnAfterMs: parseDuration(o?.warnAfter ?? warnAfter)!,
      criticalAfterMs: parseDuration(o?.criticalAfter ?? criticalAfter)!,
      minSizeBytes: o?.minSizeBytes ?? minSizeBytes,
    };
    if (p.criticalAfterMs < p.warnAfterMs) {
      const field = o?.criticalAfter || o?.warnAfter ? `freshness.${s}` : "freshness";
      throw new UserError(`${field}.criticalAfter: ${o?.criticalAfter ?? criticalAfter} is shorter than warnAfter ${o?.warnAfter ?? warnAfter}`);
    }
    thresholds[s] = p;
  }
  const drillMaxAge = f?.drillMaxAge ?? FRESHNESS_DEFAULTS.drillMaxAge;
  const configured = configuredServices(cfg as Config);
  const expected = SERVICES.filter((s) => configured.includes(s) || f?.[s] !== undefined);
  return { expected, thresholds, drillMaxAgeMs: drillMaxAge === "off" ? null : parseDuration(drillMaxAge)! };
}
