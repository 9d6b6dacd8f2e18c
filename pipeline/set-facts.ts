import { SERVICES, type ServiceName } from "./config.js";
import type { DrillSummary } from "./drill-summary.js";
import type { Manifest } from "./manifest.js";

/**
 * What freshness, retention and status know about the sets of an output
 * root: plain data read once at the edge (store/catalog.ts), so the
 * policies that judge it are pure functions of (sets, policy, now).
 */

export type ServiceFacts = {
  /** Bytes of the service's files in the set (everything under `<service>/`). */
  bytes: number;
  files: number;
};

export type DrillFacts = {
  ok: boolean;
  finishedAt: Date;
  /** The manifest the drill restored from; a drill counts for a set only when this is the set's manifest. */
  manifestSha256: string;
  /** Per service: did its restore and checks pass. */
  services: Partial<Record<ServiceName, boolean>>;
};

export type SetFacts = {
  id: string;
  /** When the set's data was taken: the manifest's startedAt (the set id's time when the manifest is not valid). */
  time: Date;
  /** The manifest checked out (manifest.sha256 and schema; with --deep also every file's hash). */
  valid: boolean;
  /** Why the set is not valid. */
  problem?: string;
  manifestSha256?: string;
  /** Services the manifest holds. */
  services: Partial<Record<ServiceName, ServiceFacts>>;
  drill?: DrillFacts;
  /** Why the drill summary was not read (it does not match its .sha256, ...). */
  drillProblem?: string;
};

export type PartialFacts = { id: string; time: Date };

export type Catalog = {
  root: string;
  sets: SetFacts[];
  partials: PartialFacts[];
  /** The set latest.json names, if any. */
  latestId?: string;
};

/** Per-service bytes and file counts of a manifest, from its file list. */
export function serviceFactsOf(manifest: Manifest): Partial<Record<ServiceName, ServiceFacts>> {
  const out: Partial<Record<ServiceName, ServiceFacts>> = {};
  for (const s of SERVICES) {
    if (manifest.services[s] === undefined) continue;
    const files = manifest.files.filter((f) => f.path.startsWith(`${s}/`));
    out[s] = { bytes: files.reduce((a, f) => a + f.size, 0), files: files.length };
  }
  return out;
}

export function drillFactsOf(summary: DrillSummary): DrillFacts {
  const services: Partial<Record<ServiceName, boolean>> = {};
  for (const s of SERVICES) {
    const r = summary.services[s];
    if (r) services[s] = r.ok;
  }
  return { ok: summary.ok, finishedAt: new Date(summary.finishedAt), manifestSha256: summary.manifestSha256, services };
}

/** The drill on this set, when it restored this very manifest (a summary copied from another set does not count). */
export function drillOfSet(set: SetFacts): DrillFacts | undefined {
  if (!set.valid || !set.drill || set.drill.manifestSha256 !== set.manifestSha256) return undefined;
  return set.drill;
}

/** A valid set whose own drill passed as a whole. */
export function hasPassingDrill(set: SetFacts): boolean {
  return drillOfSet(set)?.ok === true;
}

/** Newest first; ties broken by id so the order never depends on the input's. */
export function newestFirst<T extends { id: string; time: Date }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}
