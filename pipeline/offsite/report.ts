import { planJson } from "../health-report.js";
import { humanBytes } from "../report.js";
import type { RemotePruneResult } from "./prune.js";
import type { PushResult } from "./push.js";
import type { RemoteVerifyReport } from "./verify.js";

/** Human and JSON shapes of push, remote verify and remote prune. Pure. */

export function pushHuman(r: PushResult): string {
  if (r.alreadyComplete) return `push ${r.setId} -> ${r.destination}: already complete (${r.files} objects, ${humanBytes(r.storedBytes)})`;
  return [
    `push ${r.setId} -> ${r.destination}: complete in ${(r.durationMs / 1000).toFixed(1)}s${r.encrypted ? ", encrypted (age)" : ""}`,
    `  uploaded ${r.uploaded.files} file(s), ${humanBytes(r.uploaded.bytes)}; already there ${r.skipped.files}, ${humanBytes(r.skipped.bytes)}; stored ${humanBytes(r.storedBytes)}`,
  ].join("\n");
}

export type PushOutcome = { destination: string; ok: true; result: PushResult } | { destination: string; ok: false; error: string };

export function pushOutcomeJson(o: PushOutcome) {
  return o.ok ? o.result : { destination: o.destination, ok: false, error: o.error };
}

export function pushOutcomeHuman(o: PushOutcome): string {
  return o.ok ? pushHuman(o.result) : `push -> ${o.destination}: FAILED (the local set is complete): ${o.error}`;
}

export function remoteVerifyHuman(r: RemoteVerifyReport): string {
  const what = r.mode === "read-data" ? "downloaded, decrypted and hashed" : "listed";
  const lines = [
    r.ok
      ? `verify ${r.id} at ${r.destination}: ok — ${r.filesChecked} objects (${humanBytes(r.bytesChecked)}) ${what}, all match the record${r.mode === "read-data" ? " and the manifest" : ""}`
      : `verify ${r.id} at ${r.destination}: FAILED — ${r.findings.length} finding(s)`,
  ];
  for (const f of r.findings) lines.push(`  ${f.verdict.padEnd(17)} ${f.path}: ${f.detail}`);
  return lines.join("\n");
}

export function remotePruneJson(r: RemotePruneResult) {
  return { destination: r.destination, ok: r.errors.length === 0, dryRun: r.dryRun, ...planJson(r.plan), removed: r.removed, errors: r.errors };
}

export function remotePruneHuman(r: RemotePruneResult): string {
  const head = r.dryRun
    ? `prune ${r.destination} (dry run): would keep ${r.plan.keep.length}, would remove ${r.plan.remove.length}`
    : `prune ${r.destination}: kept ${r.plan.keep.length}, removed ${r.removed.length}${r.errors.length ? `, FAILED to remove ${r.errors.length}` : ""}`;
  return [
    head,
    ...r.plan.keep.map((k) => `  keep    ${(k.kind === "partial" ? `(incomplete) ${k.id}` : k.id).padEnd(32)} ${k.reasons.join(", ")}`),
    ...r.plan.remove.map((x) => `  remove  ${(x.kind === "partial" ? `(incomplete) ${x.id}` : x.id).padEnd(32)} ${x.reason}`),
    ...r.errors.map((e) => `  error   ${e.id}: ${e.message}`),
  ].join("\n");
}
