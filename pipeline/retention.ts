import { DEFAULT_RETENTION, type RetentionConfig } from "./config.js";
import { parseDuration } from "./duration.js";
import { UserError } from "./errors.js";
import { newestFirst } from "./set-facts.js";

/**
 * Retention: which sets to keep and which to remove, with the reason for
 * every kept one. A pure function of (sets, policy, now) with restic's
 * `forget` semantics: rules are OR'ed; each calendar rule keeps the newest
 * set of each of the n most recent UTC hours/days/ISO weeks/months/years
 * that have sets; keepWithin is measured back from the newest set (not from
 * now), so backups that stop do not let the window empty the store. Unlike
 * newer restic, a calendar rule with counts left does not also keep the
 * oldest set.
 */

export type RetentionPolicy = {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithinMs?: number;
  /** A `.partial-*` directory is removed only when older than this. */
  partialGraceMs: number;
};

export type RetentionItem = {
  id: string;
  /** Manifest time for a set; the id's time for a partial or a set whose manifest is not valid. */
  time: Date;
  /** set: complete with a valid manifest; invalid: complete but its manifest does not check out; partial: `.partial-<id>`. */
  kind: "set" | "invalid" | "partial";
  /** A valid set whose own restore drill passed. */
  drilled: boolean;
  /** latest.json names it. */
  latest: boolean;
};

export type KeepReason =
  | "last"
  | "hourly"
  | "daily"
  | "weekly"
  | "monthly"
  | "yearly"
  | "within"
  | "newest-complete"
  | "newest-drilled"
  | "latest"
  | "partial-in-grace"
  | "invalid";

export type RemoveReason = "no-rule" | "partial-expired";

export type Kept = { id: string; time: Date; kind: RetentionItem["kind"]; reasons: KeepReason[] };
export type Removed = { id: string; time: Date; kind: RetentionItem["kind"]; reason: RemoveReason };
export type PrunePlan = { keep: Kept[]; remove: Removed[] };

const CALENDAR_RULES = [
  ["keepHourly", "hourly", (d: Date) => d.getUTCFullYear() * 1_000_000 + (d.getUTCMonth() + 1) * 10_000 + d.getUTCDate() * 100 + d.getUTCHours()],
  ["keepDaily", "daily", (d: Date) => d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate()],
  ["keepWeekly", "weekly", (d: Date) => isoWeekKey(d)],
  ["keepMonthly", "monthly", (d: Date) => d.getUTCFullYear() * 100 + (d.getUTCMonth() + 1)],
  ["keepYearly", "yearly", (d: Date) => d.getUTCFullYear()],
] as const satisfies readonly (readonly [keyof RetentionPolicy, KeepReason, (d: Date) => number])[];

/** ISO 8601 week of a UTC date as YYYYWW (the week's year may differ from the date's near New Year). */
export function isoWeekKey(d: Date): number {
  const day = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = day.getUTCDay() || 7; // Monday 1 .. Sunday 7
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of this week decides the year
  const year = day.getUTCFullYear();
  const week = Math.ceil(((day.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return year * 100 + week;
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  const counts = [p.keepLast, p.keepHourly, p.keepDaily, p.keepWeekly, p.keepMonthly, p.keepYearly];
  return counts.every((n) => (n ?? 0) <= 0) && (p.keepWithinMs ?? 0) <= 0;
}

/** Newest item not dated after now (a skewed clock must not push the real newest out); else the newest. */
function newestNotInFuture<T extends { time: Date }>(sortedNewestFirst: readonly T[], now: number): T | undefined {
  return sortedNewestFirst.find((s) => s.time.getTime() <= now) ?? sortedNewestFirst[0];
}

export function planPrune(items: readonly RetentionItem[], policy: RetentionPolicy, now: Date): PrunePlan {
  if (isEmptyPolicy(policy)) {
    throw new UserError("retention: empty policy: set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, keepWithin");
  }
  const t = now.getTime();
  const sorted = newestFirst(items);
  const sets = sorted.filter((i) => i.kind === "set");
  const reasons = new Map<string, KeepReason[]>();
  const keep = (item: RetentionItem, why: KeepReason) => {
    const key = `${item.kind}:${item.id}`;
    reasons.set(key, [...(reasons.get(key) ?? []), why]);
  };

  // Only complete, valid sets count toward the rules.
  let last = policy.keepLast ?? 0;
  const buckets = CALENDAR_RULES.map(([field, reason, key]) => ({ left: (policy[field] as number | undefined) ?? 0, reason, key, lastKey: undefined as number | undefined }));
  const newestTime = newestNotInFuture(sets, t)?.time.getTime();
  for (const s of sets) {
    if (last > 0) {
      keep(s, "last");
      last--;
    }
    for (const b of buckets) {
      if (b.left <= 0) continue;
      const k = b.key(s.time);
      if (k !== b.lastKey) {
        keep(s, b.reason);
        b.lastKey = k;
        b.left--;
      }
    }
    if (policy.keepWithinMs && newestTime !== undefined && s.time.getTime() > newestTime - policy.keepWithinMs) keep(s, "within");
  }

  // Floors no rule can break.
  const newestSet = newestNotInFuture(sets, t);
  if (newestSet) keep(newestSet, "newest-complete");
  const newestDrilled = newestNotInFuture(sets.filter((s) => s.drilled), t);
  if (newestDrilled) keep(newestDrilled, "newest-drilled");
  for (const s of sets) if (s.latest) keep(s, "latest");
  // A set we cannot vouch for is evidence: never removed automatically, never counted.
  for (const s of sorted) if (s.kind === "invalid") keep(s, "invalid");
  for (const p of sorted) if (p.kind === "partial" && t - p.time.getTime() <= policy.partialGraceMs) keep(p, "partial-in-grace");

  const plan: PrunePlan = { keep: [], remove: [] };
  for (const item of sorted) {
    const why = reasons.get(`${item.kind}:${item.id}`);
    if (why) plan.keep.push({ id: item.id, time: item.time, kind: item.kind, reasons: why });
    else plan.remove.push({ id: item.id, time: item.time, kind: item.kind, reason: item.kind === "partial" ? "partial-expired" : "no-rule" });
  }
  return plan;
}

/**
 * The policy the config's retention section asks for; the default policy
 * when there is none; UserError when retention is "off" (prune has nothing to apply).
 */
export function retentionPolicy(section: RetentionConfig | "off" | undefined, source: string): RetentionPolicy {
  if (section === "off") throw new UserError(`${source}: retention is "off": prune has no policy to apply (remove "retention": "off" for the default, or set rules)`);
  const r: RetentionConfig = section ?? { ...DEFAULT_RETENTION };
  const policy: RetentionPolicy = { partialGraceMs: parseDuration(r.partialGrace)! };
  for (const k of ["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly", "keepYearly"] as const) {
    if (r[k] !== undefined) policy[k] = r[k];
  }
  if (r.keepWithin !== undefined) policy.keepWithinMs = parseDuration(r.keepWithin)!;
  return policy;
}
