import { readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "./config.js";
import { errorMessage, OperationError } from "./errors.js";
import type { Progress } from "./progress.js";
import { planPrune, retentionPolicy, type PrunePlan, type RetentionItem, type RetentionPolicy } from "./retention.js";
import { hasPassingDrill, type Catalog } from "./set-facts.js";
import { loadCatalog } from "./store/catalog.js";
import { fsyncDir } from "./store/fsync.js";
import { PARTIAL_PREFIX } from "./store/ids.js";
import { acquireLock } from "./store/lock.js";
import { describeUsers, setUsers } from "./store/set-locks.js";
import { isStaleTempFile } from "./store/fsync.js";

/** Prune = read the catalog, planPrune (pure), then remove what the plan says unless it is a dry run. */

export type PruneResult = {
  dryRun: boolean;
  policy: RetentionPolicy;
  plan: PrunePlan;
  /** Directory names actually removed. */
  removed: string[];
  /** Sets the plan would remove but that are in use (a drill or restore holds them): kept this time. */
  skipped: { id: string; reason: string }[];
  /** Temp files of writes that did not finish (latest.json.tmp of a crashed run), removed. */
  tempFiles: string[];
  errors: { id: string; message: string }[];
};

export function retentionItems(catalog: Catalog): RetentionItem[] {
  return [
    ...catalog.sets.map(
      (s): RetentionItem => ({ id: s.id, time: s.time, kind: s.valid ? "set" : "invalid", drilled: hasPassingDrill(s), latest: s.id === catalog.latestId }),
    ),
    ...catalog.partials.map((p): RetentionItem => ({ id: p.id, time: p.time, kind: "partial", drilled: false, latest: false })),
  ];
}

/**
 * Plan and (unless dryRun) apply. The caller holds the output root's lock.
 * A set is first renamed to `.partial-<id>` (one atomic step: readers never
 * see a half-removed set, and a crash leaves a partial the next prune
 * removes), then deleted.
 */
export async function pruneRoot(root: string, policy: RetentionPolicy, now: Date, opts: { dryRun: boolean; progress: Progress }): Promise<PruneResult> {
  const catalog = await loadCatalog(root);
  const plan = planPrune(retentionItems(catalog), policy, now);
  const result: PruneResult = { dryRun: opts.dryRun, policy, plan, removed: [], errors: [], skipped: [], tempFiles: [] };
  for (const r of plan.remove) {
    if (r.kind === "partial") continue;
    const users = await setUsers(root, r.id);
    if (users.length > 0) result.skipped.push({ id: r.id, reason: `in use by ${describeUsers(users)}` });
  }
  if (opts.dryRun) return result;
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!isStaleTempFile(name)) continue;
    await rm(join(root, name), { force: true }).then(
      () => result.tempFiles.push(name),
      () => {},
    );
  }
  const skipped = new Set(result.skipped.map((s) => s.id));
  for (const r of plan.remove) {
    const name = r.kind === "partial" ? `${PARTIAL_PREFIX}${r.id}` : r.id;
    if (r.kind !== "partial" && skipped.has(r.id)) {
      opts.progress.info(`prune: kept ${name}: ${result.skipped.find((s) => s.id === r.id)!.reason}`);
      continue;
    }
    try {
      let doomed = join(root, name);
      if (r.kind !== "partial") {
        const asPartial = join(root, `${PARTIAL_PREFIX}${r.id}`);
        // A leftover partial of the same id is in the way: then remove the set where it is.
        const moved = await rename(doomed, asPartial).then(
          () => true,
          (err: NodeJS.ErrnoException) => {
            if (err.code === "ENOTEMPTY" || err.code === "EEXIST") return false;
            throw err;
          },
        );
        if (moved) {
          // A drill that took its lock after the check above sees the set gone for a moment: give it back.
          const late = await setUsers(root, r.id);
          if (late.length > 0) {
            await rename(asPartial, doomed);
            const reason = `in use by ${describeUsers(late)}`;
            result.skipped.push({ id: r.id, reason });
            opts.progress.info(`prune: kept ${name}: ${reason}`);
            continue;
          }
          doomed = asPartial;
        } else if ((await setUsers(root, r.id)).length > 0) continue;
      }
      await rm(doomed, { recursive: true, force: true });
      result.removed.push(name);
      opts.progress.info(`prune: removed ${name} (${r.reason})`);
    } catch (err) {
      result.errors.push({ id: r.id, message: errorMessage(err) });
      opts.progress.warn(`prune: cannot remove ${name}: ${errorMessage(err)}`);
    }
  }
  if (plan.remove.length > 0) await fsyncDir(root);
  return result;
}

/** The prune command: takes the lock unless it is a dry run (which only reads). */
export async function pruneCommandRun(cfg: Config, now: Date, opts: { dryRun: boolean; progress: Progress }): Promise<PruneResult> {
  const policy = retentionPolicy(cfg.retention, cfg.source);
  if (opts.dryRun) return pruneRoot(cfg.output, policy, now, opts);
  const lock = await acquireLock(cfg.output, "prune");
  try {
    return await pruneRoot(cfg.output, policy, now, opts);
  } finally {
    await lock.release();
  }
}

export type AfterBackupPrune = { ok: true; removed: string[]; kept: number } | { ok: false; error: string };

/**
 * Bounded retention after a successful promote, under the backup's lock.
 * Never throws: the new set is already safe, so a prune problem is reported
 * (and the next run tries again) rather than failing the backup.
 */
export async function pruneAfterBackup(cfg: Config, now: Date, progress: Progress): Promise<AfterBackupPrune> {
  try {
    if (cfg.retention === "off") return { ok: true, removed: [], kept: -1 };
    const r = await pruneRoot(cfg.output, retentionPolicy(cfg.retention, cfg.source), now, { dryRun: false, progress });
    if (r.errors.length > 0) throw new OperationError(r.errors.map((e) => `${e.id}: ${e.message}`).join("; "));
    return { ok: true, removed: r.removed, kept: r.plan.keep.length };
  } catch (err) {
    progress.warn(`prune after backup failed (the new set is complete): ${errorMessage(err)}`);
    return { ok: false, error: errorMessage(err) };
  }
}
