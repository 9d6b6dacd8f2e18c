import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ToolPaths } from "./config.js";
import { IntegrityError } from "./errors.js";
import { DRILL_SUMMARY_FILE, DRILL_SUMMARY_SHA_FILE, readDrillSummary } from "./drill-summary.js";
import { hashFile, listFilesReporting, parseSha256sums } from "./hash.js";
import { forEachListed } from "./listing.js";
import { mapLimit } from "./concurrency.js";
import { HashPool } from "./store/hash-pool.js";
import { MANIFEST_FILE, SET_META_FILES, SUMS_FILE, loadManifest, type FileEntry, type Manifest } from "./manifest.js";
import { planFormatChecks } from "./plan.js";
import type { Progress } from "./progress.js";
import { HostRunner } from "./runners/host.js";
import type { Timeouts } from "./timeouts.js";

/** The closed set of things verify can say about a path. */
export type Verdict =
  | "missing"
  | "truncated"
  | "size-mismatch"
  | "checksum-mismatch"
  | "extra"
  | "unreadable"
  | "manifest-invalid"
  | "format-invalid";

export const VERDICTS: readonly Verdict[] = [
  "missing",
  "truncated",
  "size-mismatch",
  "checksum-mismatch",
  "extra",
  "unreadable",
  "manifest-invalid",
  "format-invalid",
];

export type Finding = { path: string; verdict: Verdict; detail: string };

export type VerifyReport = {
  id: string;
  dir: string;
  ok: boolean;
  filesChecked: number;
  bytesChecked: number;
  formatChecks: { id: string; ok: boolean }[];
  findings: Finding[];
  counts: Record<Verdict, number>;
  /**
   * The drill record (restore-drill-summary.json) is about the set, not part
   * of its data: a bad one never fails verify; it is reported here, and
   * freshness then counts the set as not proven.
   */
  drillRecord: { status: "none" | "ok" | "invalid"; problem?: string };
};

/** A drill record's temp file left by a drill killed while writing it (not data; the next drill removes it). */
export const DRILL_TEMP_PATTERN = /^\.restore-drill-summary\.json\.\d+\.[0-9a-z]+\.tmp$/;

/** Files the drill adds to a sealed set (with their own checksum file); verify checks them separately. */
export const SET_ADDENDA = new Set([DRILL_SUMMARY_FILE, DRILL_SUMMARY_SHA_FILE]);

/** Judge one manifest entry against the file on disk: one read, hash and size together (on a hashing thread when a pool is given). */
export async function verifyArtifact(setDir: string, entry: FileEntry, pool?: HashPool): Promise<Finding | undefined> {
  const path = join(setDir, entry.path);
  let actual;
  try {
    actual = pool ? await pool.hash(path) : await hashFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { path: entry.path, verdict: "missing", detail: "listed in the manifest, not on disk" };
    return { path: entry.path, verdict: "unreadable", detail: code ?? (err as Error).message };
  }
  if (actual.size < entry.size) {
    return { path: entry.path, verdict: "truncated", detail: `${actual.size} of ${entry.size} bytes` };
  }
  if (actual.size !== entry.size) {
    return { path: entry.path, verdict: "size-mismatch", detail: `${actual.size} bytes, manifest says ${entry.size}` };
  }
  if (actual.sha256 !== entry.sha256) {
    return { path: entry.path, verdict: "checksum-mismatch", detail: `sha256 ${actual.sha256.slice(0, 12)}…, manifest says ${entry.sha256.slice(0, 12)}…` };
  }
  return undefined;
}

export function countVerdicts(findings: Finding[]): Record<Verdict, number> {
  const counts = Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Record<Verdict, number>;
  for (const f of findings) counts[f.verdict]++;
  return counts;
}

export type VerifyOptions = {
  tools: ToolPaths;
  progress: Progress;
  /** Run the tools' format checks: pg_restore --list, redis-check-rdb (default true). Bucket listings are always checked. */
  formatChecks?: boolean;
  concurrency?: number;
  timeouts?: Timeouts;
};

/**
 * Check a set end to end and collect every finding (never stopping at the
 * first): manifest.sha256 and schema, every file's size and sha256, files the
 * manifest does not know, SHA256SUMS against the manifest, then format checks.
 */
export async function verifySet(id: string, setDir: string, opts: VerifyOptions): Promise<VerifyReport> {
  const findings: Finding[] = [];
  let drillRecord: VerifyReport["drillRecord"] = { status: "none" };
  const report = (manifest: Manifest | undefined, formatChecks: { id: string; ok: boolean }[]): VerifyReport => ({
    id,
    dir: setDir,
    ok: findings.length === 0,
    filesChecked: manifest?.files.length ?? 0,
    bytesChecked: manifest?.totals.bytes ?? 0,
    formatChecks,
    findings,
    counts: countVerdicts(findings),
    drillRecord,
  });

  let manifest: Manifest;
  try {
    ({ manifest } = await loadManifest(setDir));
  } catch (err) {
    findings.push({ path: MANIFEST_FILE, verdict: "manifest-invalid", detail: (err as Error).message.replace(/^manifest\.json: /, "") });
    return report(undefined, []);
  }

  opts.progress.info(`verify ${id}: ${manifest.files.length} files, ${manifest.totals.bytes} bytes`);
  const entries = manifest.files;
  // Every file hashed on worker threads (all cores), the format checks' tools running beside them.
  const formatChecks: { id: string; ok: boolean }[] = [];
  const pool = new HashPool(opts.concurrency);
  try {
    await Promise.all([
      mapLimit(entries, pool.size * 4, async (e) => {
        const f = await verifyArtifact(setDir, e, pool);
        if (f) findings.push(f);
      }),
      opts.formatChecks ?? true ? runFormatChecks(setDir, manifest, opts, findings, formatChecks) : undefined,
      (async () => {
        const listed = new Set(entries.map((e) => e.path));
        const onDisk = await listFilesReporting(setDir, setDir);
        for (const u of onDisk.unreadable) findings.push({ path: u.path, verdict: "unreadable", detail: `directory cannot be read: ${u.code}` });
        for (const path of onDisk.files) {
          if (!listed.has(path) && !SET_META_FILES.has(path) && !SET_ADDENDA.has(path) && !DRILL_TEMP_PATTERN.test(path)) {
            findings.push({ path, verdict: "extra", detail: "on disk, not in the manifest" });
          }
        }
        await checkSums(setDir, manifest, findings);
        drillRecord = await checkDrillSummary(setDir);
        await checkListings(setDir, manifest, findings);
      })(),
    ]);
  } finally {
    await pool.close();
  }
  findings.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return report(manifest, formatChecks);
}

/** SHA256SUMS must say exactly what the manifest says (it is derived from it). */
async function checkSums(setDir: string, manifest: Manifest, findings: Finding[]): Promise<void> {
  let lines;
  try {
    lines = parseSha256sums(await readFile(join(setDir, SUMS_FILE), "utf8"));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    findings.push({ path: SUMS_FILE, verdict: code === "ENOENT" ? "missing" : "unreadable", detail: code ?? (err as Error).message });
    return;
  }
  const inSums = new Map(lines.map((l) => [l.path, l.sha256]));
  const inManifest = new Set(manifest.files.map((f) => f.path));
  const disagree = manifest.files.filter((f) => inSums.get(f.path) !== f.sha256).length;
  const unknown = lines.filter((l) => l.path !== MANIFEST_FILE && !inManifest.has(l.path)).length;
  if (disagree > 0 || unknown > 0 || !inSums.has(MANIFEST_FILE)) {
    findings.push({ path: SUMS_FILE, verdict: "checksum-mismatch", detail: `disagrees with the manifest on ${disagree + unknown} path(s)` });
  }
}

async function checkDrillSummary(setDir: string): Promise<VerifyReport["drillRecord"]> {
  try {
    return (await readDrillSummary(setDir)) ? { status: "ok" } : { status: "none" };
  } catch (err) {
    return { status: "invalid", problem: (err as Error).message };
  }
}

async function runFormatChecks(
  setDir: string,
  manifest: Manifest,
  opts: VerifyOptions,
  findings: Finding[],
  results: { id: string; ok: boolean }[],
): Promise<void> {
  const steps = planFormatChecks(manifest.services.postgres, manifest.services.redis);
  if (steps.length === 0) return;
  const runner = new HostRunner({ tools: opts.tools, secrets: {}, progress: opts.progress, ...(opts.timeouts ? { timeouts: opts.timeouts } : {}) });
  try {
    // Side by side: each tool reads its own file.
    const outcomes = await Promise.all(
      steps.map((step) =>
        runner.run(step, setDir).then(
          () => undefined,
          (err: unknown) => err as Error,
        ),
      ),
    );
    steps.forEach((step, i) => {
      const err = outcomes[i];
      results.push({ id: step.id, ok: err === undefined });
      if (err) findings.push({ path: step.argv[step.argv.length - 1]!, verdict: "format-invalid", detail: err.message });
    });
  } finally {
    runner.dispose();
  }
}

/** Each bucket listing parses, has the object count the manifest recorded, and points at files the manifest holds (read as a stream). */
async function checkListings(setDir: string, manifest: Manifest, findings: Finding[]): Promise<void> {
  const files = new Map(manifest.files.map((f) => [f.path, f]));
  for (const bucket of manifest.services.minio?.buckets ?? []) {
    let count = 0;
    try {
      await forEachListed(join(setDir, bucket.listing), (e) => {
        count++;
        if (e.path === null) return;
        const f = files.get(e.path);
        if (!f) findings.push({ path: e.path, verdict: "missing", detail: `object ${JSON.stringify(e.key)} of ${bucket.name} is not in the manifest` });
        else if (f.sha256 !== e.sha256 || f.size !== e.size) {
          findings.push({ path: e.path, verdict: "checksum-mismatch", detail: `object ${JSON.stringify(e.key)}: listing and manifest disagree` });
        }
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") continue; // already reported as missing
      findings.push({ path: bucket.listing, verdict: "format-invalid", detail: (err as Error).message });
      continue;
    }
    if (count !== bucket.objects) {
      findings.push({ path: bucket.listing, verdict: "format-invalid", detail: `${count} objects listed, manifest recorded ${bucket.objects}` });
    }
  }
}

/**
 * Verify a set before restoring from it: any finding is an IntegrityError
 * (exit 3) naming the first few, and nothing is restored.
 */
export async function requireVerified(id: string, setDir: string, opts: VerifyOptions): Promise<void> {
  const verified = await verifySet(id, setDir, opts);
  if (verified.ok) return;
  const names = verified.findings.slice(0, 5).map((f) => `${f.path} (${f.verdict})`).join(", ");
  const more = verified.findings.length > 5 ? ` and ${verified.findings.length - 5} more` : "";
  throw new IntegrityError(`set ${id} failed verification, nothing restored: ${names}${more}`);
}
