import type { Config } from "../config.js";
import { errorMessage } from "../errors.js";
import type { Progress } from "../progress.js";
import { pruneDestination } from "./prune.js";
import { pushSet } from "./push.js";
import type { PushOutcome } from "./report.js";

/**
 * After a successful backup: push the new set to every destination with
 * pushAfterBackup, then apply that destination's retention (when one is
 * configured). Never throws: the local set is complete and promoted
 * whatever happens here; a failure is reported (the backup exits 5).
 */
export async function pushAfterBackup(cfg: Config, set: { id: string; dir: string }, opts: { progress: Progress; signal?: AbortSignal; now?: () => Date }): Promise<PushOutcome[]> {
  const out: PushOutcome[] = [];
  for (const dest of cfg.offsite?.destinations.filter((d) => d.pushAfterBackup) ?? []) {
    try {
      const result = await pushSet(dest, set, { output: cfg.output, tools: cfg.tools, progress: opts.progress, signal: opts.signal, now: opts.now });
      out.push({ destination: dest.name, ok: true, result });
    } catch (err) {
      opts.progress.warn(`push to ${dest.name} failed (the local set ${set.id} is complete): ${errorMessage(err)}`);
      out.push({ destination: dest.name, ok: false, error: errorMessage(err) });
      continue;
    }
    if ((dest.retention ?? cfg.retention) !== "off") {
      try {
        const r = await pruneDestination(dest, cfg, (opts.now ?? (() => new Date()))(), { dryRun: false, progress: opts.progress });
        for (const e of r.errors) opts.progress.warn(`prune ${dest.name}: ${e.id}: ${e.message}`);
      } catch (err) {
        opts.progress.warn(`prune ${dest.name} after push failed (the copy is complete): ${errorMessage(err)}`);
      }
    }
  }
  return out;
}
