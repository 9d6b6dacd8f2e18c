import type { SanityQuery } from "../config.js";

type Cell = unknown;

/** node-pg returns bigint and numeric as strings: compare them as numbers when the expectation is one. */
function sameCell(actual: Cell, expected: Cell): boolean {
  if (expected === null || actual === null) return expected === actual;
  if (typeof expected === "number") return Number(actual) === expected;
  if (typeof expected === "boolean") return actual === expected || String(actual) === String(expected);
  if (typeof expected === "object") return JSON.stringify(actual) === JSON.stringify(expected);
  return String(actual) === String(expected);
}

/** Does a query result (rows as arrays) meet a sanity query's expectation? Pure. */
export function meetsExpectation(expect: SanityQuery["expect"], rows: Cell[][]): { ok: boolean; actual: unknown } {
  if ("rows" in expect) {
    const ok = rows.length === expect.rows.length && rows.every((r, i) => r.length === expect.rows[i]!.length && r.every((c, j) => sameCell(c, expect.rows[i]![j])));
    return { ok, actual: rows };
  }
  const first = rows[0]?.[0];
  if (first === undefined) return { ok: false, actual: null };
  if ("min" in expect) return { ok: Number(first) >= expect.min, actual: Number(first) };
  if ("max" in expect) return { ok: Number(first) <= expect.max, actual: Number(first) };
  return { ok: sameCell(first, expect.equals), actual: first };
}
