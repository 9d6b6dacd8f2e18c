import { describe, expect, it } from "vitest";
import type { ServiceName } from "../pipeline/config.js";
import { UserError } from "../pipeline/errors.js";
import { assessFreshness, freshnessPolicy, worstStatus, type FreshnessPolicy, type FreshnessStatus } from "../pipeline/freshness.js";
import type { DrillFacts, SetFacts } from "../pipeline/set-facts.js";
import { setIdFor } from "../pipeline/store/ids.js";

const NOW = new Date("2026-03-10T12:00:00Z");
const S = 1000;
const H = 3_600_000;
const D = 24 * H;
const SHA = (n: number) => n.toString(16).padStart(64, "0");

const policy = (over: Partial<FreshnessPolicy> = {}): FreshnessPolicy => ({
  expected: ["postgres", "redis"],
  thresholds: {
    postgres: { warnAfterMs: 26 * H, criticalAfterMs: 50 * H, minSizeBytes: 1 },
    redis: { warnAfterMs: 26 * H, criticalAfterMs: 50 * H, minSizeBytes: 100 },
    minio: { warnAfterMs: 26 * H, criticalAfterMs: 50 * H, minSizeBytes: 1 },
  },
  drillMaxAgeMs: null,
  ...over,
});

let seq = 0;
/** A set taken `ageMs` before NOW holding the given services (bytes each). */
function set(ageMs: number, services: Partial<Record<ServiceName, number>> = { postgres: 5000, redis: 5000 }, extra: Partial<SetFacts> = {}): SetFacts {
  const time = new Date(NOW.getTime() - ageMs);
  const sha = SHA(++seq);
  return {
    id: setIdFor(time),
    time,
    valid: true,
    manifestSha256: sha,
    services: Object.fromEntries(Object.entries(services).map(([s, bytes]) => [s, { bytes, files: 1 }])),
    ...extra,
  };
}

function drill(on: SetFacts, ageMs: number, services: Partial<Record<ServiceName, boolean>> = { postgres: true, redis: true }, over: Partial<DrillFacts> = {}): SetFacts {
  const ok = Object.values(services).every(Boolean);
  return { ...on, drill: { ok, finishedAt: new Date(NOW.getTime() - ageMs), manifestSha256: on.manifestSha256!, services, ...over } };
}

const statusOf = (sets: SetFacts[], p = policy()) => assessFreshness(sets, p, NOW);
const svc = (sets: SetFacts[], name: ServiceName, p = policy()) => statusOf(sets, p).services.find((s) => s.service === name)!;

describe("assessFreshness: age thresholds (warn 26h, critical 50h), exactly at and around each", () => {
  it.each<[string, number, FreshnessStatus]>([
    ["brand new", 0, "OK"],
    ["1ms before warnAfter", 26 * H - 1, "OK"],
    ["exactly warnAfter", 26 * H, "OK"],
    ["1ms after warnAfter", 26 * H + 1, "WARNING"],
    ["1s after warnAfter", 26 * H + S, "WARNING"],
    ["1ms before criticalAfter", 50 * H - 1, "WARNING"],
    ["exactly criticalAfter", 50 * H, "WARNING"],
    ["1ms after criticalAfter", 50 * H + 1, "CRITICAL"],
    ["a month old", 30 * D, "CRITICAL"],
  ])("%s -> %s", (_name, ageMs, expected) => {
    const r = statusOf([set(ageMs)]);
    expect(r.services.map((s) => [s.service, s.status])).toEqual([
      ["postgres", expected],
      ["redis", expected],
    ]);
    expect(r.status).toBe(expected);
    expect(r.services[0]!.lastGood?.ageMs).toBe(ageMs);
  });

  it("reports the stale finding with the threshold it crossed", () => {
    const r = svc([set(26 * H + 1)], "postgres");
    expect(r.findings).toEqual([{ kind: "stale", status: "WARNING", ageMs: 26 * H + 1, thresholdMs: 26 * H }]);
    const c = svc([set(50 * H + 1)], "postgres");
    expect(c.findings).toEqual([{ kind: "stale", status: "CRITICAL", ageMs: 50 * H + 1, thresholdMs: 50 * H }]);
  });

  it("judges each service by its own thresholds", () => {
    const p = policy();
    p.thresholds.redis = { warnAfterMs: 1 * H, criticalAfterMs: 2 * H, minSizeBytes: 100 };
    const r = statusOf([set(90 * 60 * 1000)], p);
    expect(r.services.map((s) => s.status)).toEqual(["OK", "WARNING"]);
    expect(r.status).toBe("WARNING");
  });

  it("ages a service from its newest good set, not from older ones", () => {
    expect(svc([set(60 * H), set(2 * H), set(30 * H)], "postgres")).toMatchObject({ status: "OK", lastGood: { ageMs: 2 * H } });
  });
});

describe("assessFreshness: what counts as a good set", () => {
  it("a service missing from the newest set is WARNING and aged from the newest set that has it", () => {
    const older = set(10 * H, { postgres: 5000, redis: 5000 });
    const newest = set(1 * H, { postgres: 5000 });
    const r = statusOf([older, newest]);
    const redis = r.services.find((s) => s.service === "redis")!;
    expect(redis.status).toBe("WARNING");
    expect(redis.lastGood).toMatchObject({ setId: older.id, ageMs: 10 * H });
    expect(redis.findings).toEqual([{ kind: "missing-from-newest", status: "WARNING", setId: newest.id }]);
    expect(r.services.find((s) => s.service === "postgres")!.status).toBe("OK");
  });

  it("missing from the newest set and the older one is past criticalAfter -> CRITICAL", () => {
    const r = svc([set(51 * H), set(1 * H, { postgres: 5000 })], "redis");
    expect(r.status).toBe("CRITICAL");
    expect(r.findings.map((f) => f.kind).sort()).toEqual(["missing-from-newest", "stale"]);
  });

  it("an expected service that no set holds is CRITICAL", () => {
    const r = statusOf([set(1 * H, { postgres: 5000 })]);
    const redis = r.services.find((s) => s.service === "redis")!;
    expect(redis.status).toBe("CRITICAL");
    expect(redis.lastGood).toBeNull();
    expect(redis.findings.map((f) => f.kind)).toEqual(["missing-from-newest", "no-good-set"]);
  });

  it.each<[string, number, number, FreshnessStatus, string | null]>([
    ["a zero-byte dump in the newest set", 0, 1, "WARNING", "too-small"],
    ["one byte under minSizeBytes", 99, 100, "WARNING", "too-small"],
    ["exactly minSizeBytes", 100, 100, "OK", null],
    ["minSizeBytes 0 accepts an empty dump", 0, 0, "OK", null],
  ])("%s", (_name, bytes, minSizeBytes, expected, finding) => {
    const p = policy();
    p.thresholds.redis.minSizeBytes = minSizeBytes;
    const older = set(5 * H);
    const newest = set(1 * H, { postgres: 5000, redis: bytes });
    const r = svc([older, newest], "redis", p);
    expect(r.status).toBe(expected);
    expect(r.findings.map((f) => f.kind)).toEqual(finding ? [finding] : []);
    expect(r.lastGood?.setId).toBe(finding ? older.id : newest.id);
  });

  it("a zero-byte dump in the only set is no good backup at all", () => {
    const r = svc([set(1 * H, { postgres: 5000, redis: 0 })], "redis");
    expect(r.status).toBe("CRITICAL");
    expect(r.findings.map((f) => f.kind)).toEqual(["too-small", "no-good-set"]);
  });

  it("a tampered newest set does not count: WARNING, services aged from the previous valid set", () => {
    const good = set(5 * H);
    const tampered = set(1 * H, {}, { valid: false, problem: "manifest.json: checksum mismatch" });
    const r = statusOf([good, tampered]);
    expect(r.status).toBe("WARNING");
    expect(r.findings).toEqual([{ kind: "newest-set-invalid", status: "WARNING", setId: tampered.id, problem: "manifest.json: checksum mismatch" }]);
    expect(r.services.map((s) => [s.status, s.lastGood?.setId])).toEqual([
      ["OK", good.id],
      ["OK", good.id],
    ]);
    expect(r.sets).toMatchObject({ total: 2, valid: 1, rejected: [{ id: tampered.id, problem: "manifest.json: checksum mismatch" }] });
  });

  it("a tampered set whose predecessor is stale: CRITICAL by age", () => {
    const r = statusOf([set(51 * H), set(1 * H, {}, { valid: false, problem: "x" })]);
    expect(r.status).toBe("CRITICAL");
  });

  it("only tampered sets: CRITICAL, even when no service is configured", () => {
    const r = statusOf([set(1 * H, {}, { valid: false, problem: "x" })], policy({ expected: [] }));
    expect(r.status).toBe("CRITICAL");
    expect(r.findings).toEqual([{ kind: "no-valid-set", status: "CRITICAL", rejected: 1 }]);
  });

  it("no sets at all: UNKNOWN for every service and overall", () => {
    const r = statusOf([]);
    expect(r.status).toBe("UNKNOWN");
    expect(r.services.map((s) => s.status)).toEqual(["UNKNOWN", "UNKNOWN"]);
    expect(r.findings).toEqual([{ kind: "no-sets", status: "UNKNOWN" }]);
    expect(statusOf([], policy({ expected: [] })).status).toBe("UNKNOWN");
  });

  it("a set dated in the future is not evidence (clock skew): WARNING, aged from the real newest", () => {
    const future = set(-2 * H);
    const r = statusOf([set(3 * H), future]);
    expect(r.status).toBe("WARNING");
    expect(r.findings).toEqual([{ kind: "dated-in-future", status: "WARNING", setId: future.id, aheadMs: 2 * H }]);
    expect(r.services[0]!.lastGood?.ageMs).toBe(3 * H);
  });

  it("with no expected services, checks every service found in a valid set", () => {
    const r = statusOf([set(1 * H, { minio: 10 })], policy({ expected: [] }));
    expect(r.services.map((s) => [s.service, s.status])).toEqual([["minio", "OK"]]);
  });

  it("does not depend on the order of the input", () => {
    const sets = [set(40 * H), drill(set(3 * H), 2 * H), set(1 * H, { postgres: 5000 }), set(2 * H, {}, { valid: false, problem: "x" })];
    const p = policy({ drillMaxAgeMs: 8 * D });
    expect(statusOf([...sets].reverse(), p)).toEqual(statusOf(sets, p));
  });
});

describe("assessFreshness: proven by a restore drill (drillMaxAge 8d)", () => {
  const p = policy({ drillMaxAgeMs: 8 * D });

  it.each<[string, number, boolean]>([
    ["a drill 1h ago", 1 * H, true],
    ["a drill exactly drillMaxAge ago", 8 * D, true],
    ["a drill 1ms past drillMaxAge", 8 * D + 1, false],
  ])("%s on the newest set -> proven %s", (_name, drillAge, proven) => {
    const r = svc([drill(set(1 * H), drillAge)], "postgres", p);
    expect(r.proof).toMatchObject({ required: true, proven });
    expect(r.status).toBe(proven ? "OK" : "WARNING");
    expect(r.findings.map((f) => f.kind)).toEqual(proven ? [] : ["unproven"]);
  });

  it("no drill at all -> WARNING unproven", () => {
    const r = svc([set(1 * H)], "postgres", p);
    expect(r).toMatchObject({ status: "WARNING", proof: { required: true, proven: false, drill: null } });
  });

  it("a passing drill on a newer set proves an older good set", () => {
    const older = set(10 * H);
    const newer = drill(set(1 * H), 30 * 60 * 1000);
    expect(svc([older, newer], "postgres", p).proof).toMatchObject({ proven: true, drill: { setId: newer.id } });
    // postgres too small in the newer set: its good set is the older one, still proven by the newer drill
    const newerSmall = drill(set(1 * H, { postgres: 0, redis: 5000 }), 30 * 60 * 1000);
    const pg = svc([older, newerSmall], "postgres", p);
    expect(pg.lastGood?.setId).toBe(older.id);
    expect(pg.proof).toMatchObject({ proven: true, drill: { setId: newerSmall.id } });
  });

  it("a drill on an older set does not prove a newer one", () => {
    const r = svc([drill(set(10 * H), 9 * H), set(1 * H)], "postgres", p);
    expect(r).toMatchObject({ status: "WARNING", proof: { proven: false, drill: null } });
  });

  it("a drill proves only the services it restored successfully", () => {
    const s = drill(set(1 * H), 1 * H, { postgres: true, redis: false });
    const r = statusOf([s], p);
    expect(r.services.map((x) => [x.service, x.proof.proven, x.status])).toEqual([
      ["postgres", true, "OK"],
      ["redis", false, "WARNING"],
    ]);
    expect(r.lastDrillSuccess).toBeNull(); // the drill as a whole failed
  });

  it("a drill summary copied from another set (different manifest) proves nothing", () => {
    const s = drill(set(1 * H), 1 * H, { postgres: true, redis: true }, { manifestSha256: SHA(999_999) });
    expect(svc([s], "postgres", p).proof.proven).toBe(false);
  });

  it("a drill on a tampered set proves nothing", () => {
    const good = set(5 * H);
    const tampered = drill(set(1 * H), 1 * H);
    tampered.valid = false;
    tampered.problem = "x";
    expect(svc([good, tampered], "postgres", p).proof.proven).toBe(false);
  });

  it("drillMaxAge off: no proof required, the last drill still reported", () => {
    const r = svc([drill(set(1 * H), 30 * D)], "postgres", policy({ drillMaxAgeMs: null }));
    expect(r).toMatchObject({ status: "OK", proof: { required: false, proven: true } });
  });

  it("reports the newest passing drill overall", () => {
    const a = drill(set(30 * H), 20 * H);
    const b = drill(set(10 * H), 2 * H);
    expect(statusOf([a, b], p).lastDrillSuccess).toEqual({ setId: b.id, finishedAt: new Date(NOW.getTime() - 2 * H) });
  });
});

describe("worstStatus", () => {
  it.each<[FreshnessStatus[], FreshnessStatus]>([
    [[], "OK"],
    [["OK", "WARNING"], "WARNING"],
    [["WARNING", "UNKNOWN"], "UNKNOWN"],
    [["UNKNOWN", "CRITICAL", "OK"], "CRITICAL"],
  ])("%j -> %s", (statuses, expected) => {
    expect(worstStatus(statuses)).toBe(expected);
  });
});

describe("freshnessPolicy from config", () => {
  it("defaults: warn 26h, critical 50h, minSizeBytes 1, drill 8d; expects the configured services", () => {
    const p = freshnessPolicy({ redis: {} as never });
    expect(p.expected).toEqual(["redis"]);
    expect(p.thresholds.redis).toEqual({ warnAfterMs: 26 * H, criticalAfterMs: 50 * H, minSizeBytes: 1 });
    expect(p.drillMaxAgeMs).toBe(8 * D);
  });

  it("per-service overrides win over the section's defaults; a freshness.<service> entry makes it expected", () => {
    const p = freshnessPolicy({
      freshness: { warnAfter: "2d", criticalAfter: "4d", minSizeBytes: 10, drillMaxAge: "off", minio: { warnAfter: "8d", criticalAfter: "15d" } },
    });
    expect(p.expected).toEqual(["minio"]);
    expect(p.thresholds.minio).toEqual({ warnAfterMs: 8 * D, criticalAfterMs: 15 * D, minSizeBytes: 10 });
    expect(p.thresholds.postgres).toEqual({ warnAfterMs: 2 * D, criticalAfterMs: 4 * D, minSizeBytes: 10 });
    expect(p.drillMaxAgeMs).toBeNull();
  });

  it("refuses criticalAfter shorter than warnAfter, naming the field", () => {
    const f = { warnAfter: "26h", criticalAfter: "50h", minSizeBytes: 1, drillMaxAge: "8d", redis: { warnAfter: "3d" } } as const;
    expect(() => freshnessPolicy({ freshness: f })).toThrow(UserError);
    expect(() => freshnessPolicy({ freshness: f })).toThrow("freshness.redis.criticalAfter: 50h is shorter than warnAfter 3d");
  });
});
