import type { ServiceName } from "../config.js";
import type { DrillCheck } from "../drill-summary.js";

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
  return {
    service,
    check: kind,
    subject,
    ok,
    expected,
    actual,
    durationMs: Math.max(0, Date.now() - started),
    ...(opts.detail ? { detail: opts.detail } : {}),
    ...(opts.warning ? { warning: opts.warning } : {}),
  };
}

/** "a, b, c and 12 more" for naming offenders in one line. */
export function nameSome(items: string[], max = 5): string {
  if (items.length <= max) return items.join(", ");
  return `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}
