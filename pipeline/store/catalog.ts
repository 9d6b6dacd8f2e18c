import { join } from "node:path";
import type { ToolPaths } from "../config.js";
import { readDrillSummary } from "../drill-summary.js";
import { errorMessage } from "../errors.js";
import { loadManifest } from "../manifest.js";
import type { Progress } from "../progress.js";
import { drillFactsOf, serviceFactsOf, type Catalog, type PartialFacts, type SetFacts } from "../set-facts.js";
import { verifySet } from "../verify.js";
import { timeOfSetId } from "./ids.js";
import { listSetDirs, readLatest } from "./sets.js";

/**
 * Read what the policies need about every set under `root`: each manifest
 * checked the cheap way (manifest.sha256 + schema), its drill summary, and
 * the `.partial-*` directories. A set that fails is listed as not valid with
 * the reason; only a root that cannot be listed throws.
 */
export async function loadCatalog(root: string): Promise<Catalog & { latestProblem?: string }> {
  const entries = await listSetDirs(root);
  const sets: SetFacts[] = [];
  const partials: PartialFacts[] = [];
  for (const e of entries) {
    const idTime = timeOfSetId(e.id)!;
    if (e.partial) partials.push({ id: e.id, time: idTime });
    else sets.push(await readSetFacts(e.id, e.dir, idTime));
  }
  let latestId: string | undefined;
  let latestProblem: string | undefined;
  try {
    latestId = (await readLatest(root))?.id;
  } catch (err) {
    latestProblem = errorMessage(err);
  }
  return { root, sets, partials, ...(latestId ? { latestId } : {}), ...(latestProblem ? { latestProblem } : {}) };
}

async function readSetFacts(id: string, dir: string, idTime: Date): Promise<SetFacts> {
  let loaded;
  try {
    loaded = await loadManifest(dir);
  } catch (err) {
    return { id, time: idTime, valid: false, problem: errorMessage(err), services: {} };
  }
  const { manifest, sha256 } = loaded;
  if (manifest.id !== id) {
    return { id, time: idTime, valid: false, problem: `manifest.json: id ${manifest.id} does not match the directory name`, services: {} };
  }
  const facts: SetFacts = { id, time: new Date(manifest.startedAt), valid: true, manifestSha256: sha256, services: serviceFactsOf(manifest) };
  try {
    const summary = await readDrillSummary(dir);
    if (summary) facts.drill = drillFactsOf(summary);
  } catch (err) {
    facts.drillProblem = errorMessage(err);
  }
  return facts;
}

/**
 * The expensive check behind --deep: re-hash every file of the set against
 * its manifest (no format checks). Returns the set, marked not valid with
 * the first finding when anything differs.
 */
export async function deepCheckSet(root: string, set: SetFacts, opts: { tools: ToolPaths; progress: Progress }): Promise<SetFacts> {
  if (!set.valid) return set;
  const report = await verifySet(set.id, join(root, set.id), { tools: opts.tools, progress: opts.progress, formatChecks: false });
  if (report.ok) return set;
  const first = report.findings[0]!;
  const more = report.findings.length > 1 ? ` (and ${report.findings.length - 1} more)` : "";
  return { ...set, valid: false, problem: `${first.verdict} ${first.path}: ${first.detail}${more}` };
}
