import { errorMessage } from "../errors.js";
import type { Progress } from "../progress.js";
import type { Destination } from "./config.js";
import { assessOffsite, type CopyFacts, type DestinationFacts, type OffsiteAssessment } from "./freshness.js";
import { listCopies } from "./remote-set.js";
import { remoteFor } from "./s3.js";
import { verifyRemote } from "./verify.js";

/**
 * Read each destination and assess it. Copies are checked newest first
 * against a listing (no download) until one holds up: that is the newest
 * verified copy. A destination that cannot be read is UNKNOWN.
 */
export async function checkOffsiteFreshness(destinations: Destination[], now: Date, progress: Progress): Promise<OffsiteAssessment[]> {
  const out: OffsiteAssessment[] = [];
  for (const dest of destinations) {
    let facts: DestinationFacts;
    try {
      facts = { destination: dest.name, reachable: true, copies: await copyFacts(dest, now, progress) };
    } catch (err) {
      facts = { destination: dest.name, reachable: false, error: errorMessage(err) };
    }
    out.push(assessOffsite(facts, dest.freshness, now));
  }
  return out;
}

async function copyFacts(dest: Destination, now: Date, progress: Progress): Promise<CopyFacts[]> {
  const copies = (await listCopies(remoteFor(dest))).sort((a, b) => b.time.getTime() - a.time.getTime());
  const facts: CopyFacts[] = [];
  let found = false;
  for (const c of copies) {
    const f: CopyFacts = { setId: c.setId, time: c.time, pushedAt: c.record ? new Date(c.record.pushedAt) : c.time, verified: false };
    if (c.drill?.ok && c.record && c.drill.manifestSha256 === c.record.manifestSha256) f.drillPassedAt = new Date(c.drill.finishedAt);
    if (c.state !== "complete") f.problem = c.problem ?? c.state;
    else if (!found && c.time.getTime() <= now.getTime()) {
      progress.info(`freshness: checking the copy of ${c.setId} at ${dest.name} (listing)`);
      const v = await verifyRemote(dest, c.setId, { readData: false, progress });
      f.verified = v.ok;
      found = v.ok;
      if (!v.ok) f.problem = `${v.findings[0]!.verdict} ${v.findings[0]!.path}${v.findings.length > 1 ? ` (and ${v.findings.length - 1} more)` : ""}`;
    }
    facts.push(f);
  }
  return facts;
}
