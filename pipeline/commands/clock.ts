import type { Argv } from "yargs";
import { UserError } from "../errors.js";

/** --now: evaluate as if it were this time (tests, and "what would prune do next Monday?"). */
export function withNowOption<T>(y: Argv<T>): Argv<T & { now?: string }> {
  return y.option("now", {
    type: "string",
    describe: "Evaluate as if it were this ISO 8601 time (for tests and what-if; default: the clock)",
  }) as Argv<T & { now?: string }>;
}

/** The one place these commands read the clock. */
export function nowFrom(flag: string | undefined): Date {
  if (flag === undefined) return new Date();
  const d = new Date(flag);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(flag) || Number.isNaN(d.getTime())) throw new UserError(`--now: "${flag}" is not an ISO 8601 time like 2026-03-10T12:00:00Z`);
  return d;
}
