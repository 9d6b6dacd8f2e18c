import type { ServiceName } from "../config.js";
import type { DrillCheck } from "../drill-summary.js";

/** When each check ran (kept beside the result, not in it): the drill's per-kind profile is built from these. */
const spans = new WeakMap<DrillCheck, { start: number; end: number }>();

/** Per kind of check: how many, and the wall time from the first start to the last end. */
export function checkProfile(checks: DrillCheck[]): Record<string, { count: number; ms: number }> {
  const out: Record<string, { count: number; ms: number; start: number; end: number }> = {};
  for (const c of checks) {
    const span = spans.get(c) ?? { start: 0, end: c.durationMs };
    const k = (out[c.check] ??= { count: 0, ms: 0, start: span.start, end: span.end });
    k.count++;
    k.start = Math.min(k.start, span.start);
    k.end = Math.max(k.end, span.end);
    k.ms = k.end - k.start;
  }
  return Object.fromEntries(Object.entries(out).map(([kind, { count, ms }]) => [kind, { count, ms }]));
}

/** Build one check result; `ok` defaults to a deep-equal of expected and actual. */
export function check(
  service: ServiceName,
  kind: string,
  subject: string,
  expected: unknown,
  actual: unknown,
  started: number,
  opts: { ok?: boolean; detail?: string; warning?: string } = {},
): DrillCheck {
  const ok = opts.ok ?? JSON.stringify(expected) === JSON.stringify(actual);
  const end = Date.now();
  const result: DrillCheck = {
    service,
    check: kind,
    subject,
    ok,
    expected,
    actual,
    durationMs: Math.max(0, end - started),
    ...(opts.detail ? { detail: opts.detail } : {}),
    ...(opts.warning ? { warning: opts.warning } : {}),
  };
  spans.set(result, { start: Math.min(started, end), end });
  return result;
}

/** "a, b, c and 12 more" for naming offenders in one line. */
export function nameSome(items: string[], max = 5): string {
  if (items.length <= max) return items.join(", ");
  return `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}
