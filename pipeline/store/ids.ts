/** Set ids are UTC timestamps that sort by time: 2026-11-25T16-39-20Z (a -N suffix if taken). */
export const SET_ID_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z(-\d+)?$/;
export const PARTIAL_PREFIX = ".partial-";

export function setIdFor(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/:/g, "-");
}

export function isSetId(name: string): boolean {
  return SET_ID_PATTERN.test(name);
}

/** The time a set id names (its suffix ignored), or undefined. */
export function timeOfSetId(id: string): Date | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z/.exec(id);
  if (!m) return undefined;
  const d = new Date(`${m[1]}T${m[2]}:${m[3]}:${m[4]}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
