import type { Config } from "../config.js";
import { errorMessage } from "../errors.js";
import type { Progress } from "../progress.js";
import { planPrune, retentionPolicy, type PrunePlan, type RetentionItem } from "../retention.js";
import type { Destination } from "./config.js";
import { RECORD_FILE, RECORD_SHA_FILE, setPrefix } from "./record.js";
import { listCopies, type RemoteCopy } from "./remote-set.js";
import { abortIncompleteUploads, listRemote, remoteFor, removeKeys } from "./s3.js";

export type RemotePruneResult = {
  destination: string;
  dryRun: boolean;
  plan: PrunePlan;
  removed: string[];
  errors: { id: string; message: string }[];
};

/**
 * Copies as retention items. A complete copy is a set; the most recently
 * pushed one is "latest" (always kept), a copy whose own remote drill passed
 * is "drilled" (the newest such is always kept); a record that does not
 * check out is kept as evidence; a copy without a record is a partial whose
 * age is the time since anything was written under it.
 */
export function remoteRetentionItems(copies: RemoteCopy[]): RetentionItem[] {
  const complete = copies.filter((c) => c.state === "complete");
  const newestPush = complete.reduce<RemoteCopy | undefined>((a, c) => (!a || c.record!.pushedAt > a.record!.pushedAt ? c : a), undefined);
  return copies.map((c): RetentionItem => {
    if (c.state === "incomplete") return { id: c.setId, time: c.lastModified ?? c.time, kind: "partial", drilled: false, latest: false };
    if (c.state === "invalid") return { id: c.setId, time: c.time, kind: "invalid", drilled: false, latest: false };
    const drilled = c.drill?.ok === true && c.drill.manifestSha256 === c.record!.manifestSha256;
    return { id: c.setId, time: c.time, kind: "set", drilled, latest: c === newestPush };
  });
}

/** Plan and (unless dryRun) apply retention at one destination. The record goes first: a half-deleted copy is never read as a set. */
export async function pruneDestination(dest: Destination, cfg: Config, now: Date, opts: { dryRun: boolean; progress: Progress }): Promise<RemotePruneResult> {
  const policy = retentionPolicy(dest.retention ?? cfg.retention, `${cfg.source}: offsite.destinations.${dest.name}`);
  const r = remoteFor(dest);
  const copies = await listCopies(r);
  const plan = planPrune(remoteRetentionItems(copies), policy, now);
  const result: RemotePruneResult = { destination: dest.name, dryRun: opts.dryRun, plan, removed: [], errors: [] };
  if (opts.dryRun) return result;
  for (const doomed of plan.remove) {
    const prefix = setPrefix(dest.prefix, doomed.id);
    try {
      await removeKeys(r, [`${prefix}${RECORD_SHA_FILE}`, `${prefix}${RECORD_FILE}`]);
      await abortIncompleteUploads(r, prefix);
      await removeKeys(r, (await listRemote(r, prefix)).map((o) => o.key));
      result.removed.push(doomed.id);
      opts.progress.info(`prune ${dest.name}: removed ${doomed.id} (${doomed.reason})`);
    } catch (err) {
      result.errors.push({ id: doomed.id, message: errorMessage(err) });
      opts.progress.warn(`prune ${dest.name}: cannot remove ${doomed.id}: ${errorMessage(err)}`);
    }
  }
  return result;
}
