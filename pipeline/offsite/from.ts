import type { Config } from "../config.js";
import type { DrillSummary } from "../drill-summary.js";
import { errorMessage } from "../errors.js";
import type { Progress } from "../progress.js";
import type { Secret } from "../secret.js";
import { pickDestination } from "./config.js";
import { pullSet, type Pulled } from "./pull.js";
import { resolveRemoteSet, writeRemoteDrill } from "./remote-set.js";
import { remoteFor } from "./s3.js";

export type FromOptions = { progress: Progress; signal?: AbortSignal; identity?: { secret: Secret; field: string } };

/**
 * Run `fn` on a set pulled from a destination (decrypted, checked against
 * its record), then remove the staging copy whatever happened. `fn` sees an
 * ordinary set directory: drill and restore verify it as a local set first.
 */
export async function withPulledSet<T>(cfg: Config, from: string, setFlag: string | undefined, opts: FromOptions, fn: (pulled: Pulled) => Promise<T>): Promise<T> {
  const dest = pickDestination(cfg.offsite, from, "--from");
  const setId = await resolveRemoteSet(remoteFor(dest), setFlag);
  const pulled = await pullSet(dest, setId, { output: cfg.output, progress: opts.progress, signal: opts.signal, identity: opts.identity });
  try {
    return await fn(pulled);
  } finally {
    await pulled.discard();
  }
}

/** Leave the drill's verdict at the destination (restore-drill.json: no data values), for prune and freshness. */
export async function recordRemoteDrill(pulled: Pulled, summary: DrillSummary, progress: Progress): Promise<void> {
  try {
    await writeRemoteDrill(pulled.remote, {
      schemaVersion: 1,
      setId: summary.setId,
      manifestSha256: summary.manifestSha256,
      ok: summary.ok,
      startedAt: summary.startedAt,
      finishedAt: summary.finishedAt,
      services: Object.fromEntries((["postgres", "redis", "minio"] as const).filter((s) => summary.services[s]).map((s) => [s, summary.services[s]!.ok])),
      totals: summary.totals,
    });
  } catch (err) {
    progress.warn(`cannot record the drill at ${pulled.remote.dest.name}: ${errorMessage(err)}`);
  }
}
