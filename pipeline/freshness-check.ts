import type { ToolPaths } from "./config.js";
import { assessFreshness, type FreshnessPolicy, type FreshnessReport } from "./freshness.js";
import type { Progress } from "./progress.js";
import type { Catalog, SetFacts } from "./set-facts.js";
import { deepCheckSet, loadCatalog } from "./store/catalog.js";

export type FreshnessCheck = { report: FreshnessReport; catalog: Catalog };

/**
 * Read the output root and assess it. With `deep`, every set the verdict
 * rests on (each service's newest good set) is re-hashed file by file; a set
 * that fails is dropped and the assessment repeated, so the verdict falls
 * back to the next set that holds up.
 */
export async function checkFreshness(
  root: string,
  policy: FreshnessPolicy,
  now: Date,
  opts: { deep: boolean; tools: ToolPaths; progress: Progress },
): Promise<FreshnessCheck> {
  const catalog = await loadCatalog(root);
  let sets: SetFacts[] = catalog.sets;
  const rootFacts = catalog.latestProblem ? { latestProblem: catalog.latestProblem } : {};
  let report = assessFreshness(sets, policy, now, rootFacts);
  if (!opts.deep) return { report, catalog };
  const deepChecked = new Set<string>();
  for (;;) {
    const evidence = [...new Set(report.services.flatMap((s) => (s.lastGood ? [s.lastGood.setId] : [])))].filter((id) => !deepChecked.has(id));
    if (evidence.length === 0) return { report, catalog: { ...catalog, sets } };
    for (const id of evidence) {
      deepChecked.add(id);
      opts.progress.info(`freshness --deep: re-hashing set ${id}`);
      const checked = await deepCheckSet(root, sets.find((s) => s.id === id)!, opts);
      sets = sets.map((s) => (s.id === id ? checked : s));
    }
    report = assessFreshness(sets, policy, now, rootFacts);
  }
}
