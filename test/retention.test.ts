import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.js";
import { isoWeekKey, planPrune, retentionPolicy, type PrunePlan, type RetentionItem, type RetentionPolicy } from "../pipeline/retention.js";

const NOW = new Date("2026-03-10T12:00:00Z");
const MIN = 60_000;
const H = 60 * MIN;
const D = 24 * H;
const GRACE = 24 * H;

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

/** Items spread over a span that makes calendar buckets collide (hours, days or years), some dated after NOW. */
const itemsArb = fc
  .constantFrom(6 * H, 5 * D, 120 * D, 4 * 365 * D)
  .chain((span) =>
    fc.array(
      fc.record({
        agoMs: fc.integer({ min: -span / 20, max: span }),
        kind: fc.constantFrom<RetentionItem["kind"]>("set", "set", "set", "set", "invalid", "partial"),
        drilled: fc.boolean(),
        latest: fc.boolean(),
      }),
      { maxLength: 40 },
    ),
  )
  .map((raw) => {
    let latestTaken = false;
    return raw.map((r, i): RetentionItem => {
      const latest = r.kind === "set" && r.latest && !latestTaken;
      if (latest) latestTaken = true;
      return { id: `s${String(i).padStart(3, "0")}`, time: new Date(NOW.getTime() - Math.round(r.agoMs)), kind: r.kind, drilled: r.kind === "set" && r.drilled, latest };
    });
  });

const count = fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined });
const policyArb: fc.Arbitrary<RetentionPolicy> = fc
  .record({
    keepLast: count,
    keepHourly: count,
    keepDaily: count,
    keepWeekly: count,
    keepMonthly: count,
    keepYearly: count,
    keepWithinMs: fc.option(fc.integer({ min: 1, max: 60 * D }), { nil: undefined }),
    partialGraceMs: fc.integer({ min: 0, max: 3 * D }),
  })
  .filter((p) => [p.keepLast, p.keepHourly, p.keepDaily, p.keepWeekly, p.keepMonthly, p.keepYearly].some((n) => (n ?? 0) > 0) || p.keepWithinMs !== undefined)
  .map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as RetentionPolicy);

// ---------------------------------------------------------------------------
// Model helpers (independent of the implementation's loop)
// ---------------------------------------------------------------------------

const byNewest = (a: RetentionItem, b: RetentionItem) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1);
const keptIds = (plan: PrunePlan) => new Set(plan.keep.map((k) => `${k.kind}:${k.id}`));
const withReason = (plan: PrunePlan, reason: string) => plan.keep.filter((k) => k.reasons.includes(reason as never)).map((k) => k.id).sort();
const notFuture = (i: RetentionItem) => i.time.getTime() <= NOW.getTime();
/** The floor sets: newest not dated in the future, else the newest. */
const newestOf = (items: RetentionItem[]) => [...items].sort(byNewest).find(notFuture) ?? [...items].sort(byNewest)[0];

const utcKeys: Record<string, (d: Date) => string> = {
  keepHourly: (d) => d.toISOString().slice(0, 13),
  keepDaily: (d) => d.toISOString().slice(0, 10),
  keepWeekly: (d) => String(isoWeekKey(d)),
  keepMonthly: (d) => d.toISOString().slice(0, 7),
  keepYearly: (d) => d.toISOString().slice(0, 4),
};

/** The newest valid set of each of the n most recent periods that have valid sets. */
function modelCalendar(items: RetentionItem[], n: number, key: (d: Date) => string): string[] {
  const newestPerPeriod = new Map<string, RetentionItem>();
  for (const s of [...items].filter((i) => i.kind === "set").sort(byNewest)) {
    if (!newestPerPeriod.has(key(s.time))) newestPerPeriod.set(key(s.time), s);
  }
  // Periods in time order: the newest set of a later period is always newer.
  return [...newestPerPeriod.values()].sort(byNewest).slice(0, n).map((s) => s.id).sort();
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

describe("planPrune properties (fast-check)", () => {
  it("keeps the newest complete set, the newest drilled set and the set latest.json names, under any policy", () => {
    fc.assert(
      fc.property(itemsArb, policyArb, (items, policy) => {
        const plan = planPrune(items, policy, NOW);
        const kept = keptIds(plan);
        const sets = items.filter((i) => i.kind === "set");
        if (sets.length > 0) expect(kept.has(`set:${newestOf(sets)!.id}`)).toBe(true);
        const drilled = sets.filter((s) => s.drilled);
        if (drilled.length > 0) expect(kept.has(`set:${newestOf(drilled)!.id}`)).toBe(true);
        for (const s of sets.filter((x) => x.latest)) expect(kept.has(`set:${s.id}`)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it("never removes a .partial-* younger than the grace period, nor a set whose manifest is not valid", () => {
    fc.assert(
      fc.property(itemsArb, policyArb, (items, policy) => {
        const plan = planPrune(items, policy, NOW);
        for (const r of plan.remove) {
          expect(r.kind).not.toBe("invalid");
          if (r.kind === "partial") expect(NOW.getTime() - r.time.getTime()).toBeGreaterThan(policy.partialGraceMs);
        }
        // ...and does remove the ones older than it.
        for (const p of items.filter((i) => i.kind === "partial" && NOW.getTime() - i.time.getTime() > policy.partialGraceMs)) {
          expect(plan.remove.map((r) => r.id)).toContain(p.id);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("keeps a partial right up to the grace period and removes it right after (ages within seconds of it)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 * D }), fc.array(fc.integer({ min: -5000, max: 5000 }), { minLength: 1, maxLength: 10 }), (grace, deltas) => {
        const partials = deltas.map((d, i): RetentionItem => ({ id: `p${i}`, time: new Date(NOW.getTime() - grace - d), kind: "partial", drilled: false, latest: false }));
        const plan = planPrune(partials, { keepLast: 1, partialGraceMs: grace }, NOW);
        expect(plan.remove.map((r) => r.id).sort()).toEqual(partials.filter((_, i) => deltas[i]! > 0).map((p) => p.id).sort());
      }),
      { numRuns: 300 },
    );
  });

  it("does not depend on the order of the input", () => {
    fc.assert(
      fc.property(itemsArb.chain((items) => fc.tuple(fc.constant(items), fc.shuffledSubarray(items, { minLength: items.length }))), policyArb, ([items, shuffled], policy) => {
        expect(planPrune(shuffled, policy, NOW)).toEqual(planPrune(items, policy, NOW));
      }),
      { numRuns: 300 },
    );
  });

  it("accounts for every item exactly once, and every kept one says why", () => {
    fc.assert(
      fc.property(itemsArb, policyArb, (items, policy) => {
        const plan = planPrune(items, policy, NOW);
        const all = [...plan.keep, ...plan.remove].map((x) => `${x.kind}:${x.id}`).sort();
        expect(all).toEqual(items.map((i) => `${i.kind}:${i.id}`).sort());
        for (const k of plan.keep) expect(k.reasons.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  it.each(Object.keys(utcKeys))("%s: n keeps exactly the newest set of each of the n most recent periods that have sets (restic)", (rule) => {
    const key = utcKeys[rule]!;
    const reason = rule.slice(4).toLowerCase();
    fc.assert(
      fc.property(itemsArb, fc.integer({ min: 1, max: 8 }), (items, n) => {
        const plan = planPrune(items, { [rule]: n, partialGraceMs: GRACE }, NOW);
        const expected = modelCalendar(items, n, key);
        expect(withReason(plan, reason)).toEqual(expected);
        // Nothing else is kept among valid sets but the floors.
        const sets = items.filter((i) => i.kind === "set");
        const floors = new Set([newestOf(sets)?.id, newestOf(sets.filter((s) => s.drilled))?.id, ...sets.filter((s) => s.latest).map((s) => s.id)]);
        const keptSets = plan.keep.filter((k) => k.kind === "set").map((k) => k.id);
        expect(keptSets.filter((id) => !expected.includes(id) && !floors.has(id))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("keepLast: n keeps the n newest valid sets", () => {
    fc.assert(
      fc.property(itemsArb, fc.integer({ min: 1, max: 8 }), (items, n) => {
        const plan = planPrune(items, { keepLast: n, partialGraceMs: GRACE }, NOW);
        const expected = items.filter((i) => i.kind === "set").sort(byNewest).slice(0, n).map((s) => s.id).sort();
        expect(withReason(plan, "last")).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("keepWithin keeps every valid set within the duration of the newest one (not of now)", () => {
    fc.assert(
      fc.property(itemsArb, fc.integer({ min: 1, max: 30 * D }), (items, within) => {
        const plan = planPrune(items, { keepWithinMs: within, partialGraceMs: GRACE }, NOW);
        const sets = items.filter((i) => i.kind === "set");
        const newest = newestOf(sets);
        const expected = newest ? sets.filter((s) => s.time.getTime() > newest.time.getTime() - within).map((s) => s.id).sort() : [];
        expect(withReason(plan, "within")).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------
// Examples and the golden table
// ---------------------------------------------------------------------------

const t = (iso: string) => new Date(iso);
const item = (iso: string, kind: RetentionItem["kind"] = "set", extra: Partial<RetentionItem> = {}): RetentionItem => ({
  id: iso.replace(/:/g, "-").replace(/\.\d+/, ""),
  time: t(iso),
  kind,
  drilled: false,
  latest: false,
  ...extra,
});

describe("planPrune examples", () => {
  it("refuses an empty policy (UserError: exit 2)", () => {
    expect(() => planPrune([item("2026-03-10T00:00:00Z")], { partialGraceMs: GRACE }, NOW)).toThrow(UserError);
    expect(() => planPrune([], { keepDaily: 0, keepWithinMs: 0, partialGraceMs: GRACE }, NOW)).toThrow(/empty policy/);
  });

  it("orders by manifest time, not by id", () => {
    // The id says 2026-03-09 but the manifest says it is the newest: keepLast 1 keeps it.
    const a = { ...item("2026-03-10T10:00:00Z"), id: "2026-03-01T00-00-00Z" };
    const b = { ...item("2026-03-09T10:00:00Z"), id: "2026-03-09T10-00-00Z" };
    const plan = planPrune([b, a], { keepLast: 1, partialGraceMs: GRACE }, NOW);
    expect(plan.keep.map((k) => k.id)).toEqual([a.id]);
    expect(plan.remove.map((r) => r.id)).toEqual([b.id]);
  });

  it("a partial exactly at the grace period stays; 1ms older goes", () => {
    const at = item(new Date(NOW.getTime() - GRACE).toISOString(), "partial");
    const past = { ...item(new Date(NOW.getTime() - GRACE - 1).toISOString(), "partial"), id: "older" };
    const plan = planPrune([item("2026-03-10T11:00:00Z"), at, past], { keepLast: 1, partialGraceMs: GRACE }, NOW);
    expect(plan.keep.find((k) => k.id === at.id)?.reasons).toEqual(["partial-in-grace"]);
    expect(plan.remove).toEqual([{ id: "older", time: past.time, kind: "partial", reason: "partial-expired" }]);
  });

  it("ISO weeks: the week's year follows its Thursday", () => {
    expect(isoWeekKey(t("2021-01-03T12:00:00Z"))).toBe(202053); // a Sunday in week 53 of 2020
    expect(isoWeekKey(t("2021-01-04T00:00:00Z"))).toBe(202101);
    expect(isoWeekKey(t("2024-12-30T23:59:59Z"))).toBe(202501);
  });

  it("retentionPolicy reads the config section, defaults a missing one, and refuses off", () => {
    expect(retentionPolicy({ keepDaily: 7, keepWithin: "2d", partialGrace: "24h" }, "cfg.json")).toEqual({ keepDaily: 7, keepWithinMs: 2 * D, partialGraceMs: GRACE });
    expect(retentionPolicy(undefined, "cfg.json")).toEqual({ keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 6, partialGraceMs: GRACE });
    expect(() => retentionPolicy("off", "cfg.json")).toThrow('cfg.json: retention is "off"');
  });
});

/** A fixed history like restic's testdata: several sets a day, gaps, month and year ends, a drill, partials and a tampered set. */
const HISTORY: RetentionItem[] = [
  "2024-11-15T03:00:00Z",
  "2024-12-31T23:30:00Z",
  "2025-01-01T00:30:00Z",
  "2025-06-15T03:00:00Z",
  "2025-12-01T03:00:00Z",
  "2026-01-05T03:00:00Z",
  "2026-01-31T03:00:00Z",
  "2026-02-01T03:00:00Z",
  "2026-02-15T03:00:00Z",
  "2026-02-28T03:00:00Z",
  "2026-03-01T03:00:00Z",
  "2026-03-02T03:00:00Z",
  "2026-03-03T03:00:00Z",
  "2026-03-04T03:00:00Z",
  "2026-03-06T03:00:00Z",
  "2026-03-07T03:00:00Z",
  "2026-03-08T03:00:00Z",
  "2026-03-08T15:00:00Z",
  "2026-03-09T03:00:00Z",
  "2026-03-09T09:00:00Z",
  "2026-03-09T09:30:00Z",
  "2026-03-09T15:00:00Z",
  "2026-03-10T03:00:00Z",
  "2026-03-10T09:00:00Z",
  "2026-03-10T10:00:00Z",
  "2026-03-10T10:30:00Z",
]
  .map((iso) => item(iso, "set", iso === "2026-03-04T03:00:00Z" ? { drilled: true } : iso === "2026-03-10T10:30:00Z" ? { latest: true } : {}))
  .concat([
    item("2026-03-05T03:00:00Z", "invalid"),
    item("2026-03-08T09:00:00Z", "partial"),
    item("2026-03-10T11:00:00Z", "partial"),
  ]);

const GOLDEN_POLICIES: [string, Omit<RetentionPolicy, "partialGraceMs">][] = [
  ["last-1", { keepLast: 1 }],
  ["last-5", { keepLast: 5 }],
  ["hourly-4", { keepHourly: 4 }],
  ["daily-3", { keepDaily: 3 }],
  ["daily-7", { keepDaily: 7 }],
  ["weekly-3", { keepWeekly: 3 }],
  ["monthly-4", { keepMonthly: 4 }],
  ["yearly-10", { keepYearly: 10 }],
  ["within-1d", { keepWithinMs: 1 * D }],
  ["within-3d12h", { keepWithinMs: 3 * D + 12 * H }],
  ["last-2-daily-3-weekly-2-monthly-3", { keepLast: 2, keepDaily: 3, keepWeekly: 2, keepMonthly: 3 }],
  ["daily-2-within-2d", { keepDaily: 2, keepWithinMs: 2 * D }],
  ["daily-100", { keepDaily: 100 }],
];

function renderPlan(policy: RetentionPolicy, plan: PrunePlan): string {
  const lines = [`policy ${JSON.stringify(policy)}`, `now ${NOW.toISOString()}`, ""];
  for (const k of plan.keep) lines.push(`keep   ${k.kind.padEnd(7)} ${k.id}  ${k.reasons.join(", ")}`);
  for (const r of plan.remove) lines.push(`remove ${r.kind.padEnd(7)} ${r.id}  ${r.reason}`);
  return `${lines.join("\n")}\n`;
}

describe("planPrune golden table (restic-style testdata)", () => {
  it.each(GOLDEN_POLICIES)("%s", async (name, p) => {
    const policy: RetentionPolicy = { ...p, partialGraceMs: GRACE };
    await expect(renderPlan(policy, planPrune(HISTORY, policy, NOW))).toMatchFileSnapshot(`./golden/retention/${name}.txt`);
  });
});
