import type { BackupResult } from "./backup.js";
import type { DrillCheck, DrillSummary } from "./drill-summary.js";
import type { RestoreSummary } from "./restore-summary.js";
import type { VerifyReport } from "./verify.js";

/** Human and JSON shapes of command results. Pure: strings and plain objects. */

export function humanBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A fixed-width text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function backupJson(r: BackupResult) {
  const m = r.manifest;
  return {
    ok: true,
    id: r.id,
    dir: r.dir,
    manifestSha256: r.manifestSha256,
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    durationMs: Date.parse(m.finishedAt) - Date.parse(m.startedAt),
    services: {
      ...(m.services.postgres
        ? {
            postgres: {
              serverVersion: m.services.postgres.serverVersion,
              databases: m.services.postgres.databases.map((d) => ({
                name: d.name,
                tables: d.tables.filter((t) => t.kind === undefined).length,
                rows: d.tables.reduce((a, t) => a + (t.kind === undefined ? t.rows : 0), 0),
                ...(d.tables.some((t) => t.kind === "matview") ? { materializedViews: d.tables.filter((t) => t.kind === "matview").length } : {}),
                ...(d.largeObjects ? { largeObjects: d.largeObjects.count } : {}),
              })),
            },
          }
        : {}),
      ...(m.services.redis
        ? { redis: { version: m.services.redis.version, keyspace: m.services.redis.keyspace, sampled: m.services.redis.sample.length } }
        : {}),
      ...(m.services.minio
        ? {
            minio: {
              buckets: m.services.minio.buckets.map((b) => ({
                name: b.name,
                objects: b.objects,
                bytes: b.bytes,
                unmapped: b.unmapped,
                ...(b.versions ? { versioning: b.versioning, versions: b.versions } : {}),
                ...(b.warnings ? { warnings: b.warnings } : {}),
              })),
            },
          }
        : {}),
    },
    totals: m.totals,
    /** Where the time went: each service's backup, side by side, from its start to its files hashed. */
    serviceMs: r.serviceMs,
    ...(r.prune ? { prune: r.prune } : {}),
  };
}

export function backupHuman(r: BackupResult): string {
  const m = r.manifest;
  const rows: string[][] = [];
  const pg = m.services.postgres;
  if (pg) {
    for (const d of pg.databases) {
      const tables = d.tables.filter((t) => t.kind === undefined);
      const views = d.tables.length - tables.length;
      rows.push([
        "postgres",
        d.name,
        `${tables.length} tables, ${tables.reduce((a, t) => a + t.rows, 0)} rows` +
          (views ? `, ${views} materialized view(s)` : "") +
          (d.largeObjects ? `, ${d.largeObjects.count} large object(s)` : ""),
      ]);
    }
    if (pg.globals) rows.push(["postgres", "globals", pg.globals]);
  }
  const rd = m.services.redis;
  if (rd) {
    for (const k of rd.keyspace) {
      const drift = rd.live?.drift.find((d) => d.db === k.db);
      rows.push(["redis", `db${k.db}`, `${k.keys} keys, ${k.expires} with TTL${drift?.keys ? ` (${drift.keys > 0 ? "+" : ""}${drift.keys} while the snapshot was taken)` : ""}`]);
    }
    if (rd.functions?.length) rows.push(["redis", "functions", rd.functions.map((f) => f.name).join(", ")]);
    if (rd.streamGroups?.length) rows.push(["redis", "stream groups", `${rd.streamGroups.reduce((a, s) => a + s.groups.length, 0)} in ${rd.streamGroups.length} stream(s)`]);
  }
  for (const b of m.services.minio?.buckets ?? []) {
    const what = b.versions
      ? `versioning ${b.versioning}: ${b.versions.keys} keys, ${b.versions.versions} versions, ${b.versions.deleteMarkers} delete markers`
      : `${b.objects} objects`;
    rows.push(["minio", b.name, `${what}, ${humanBytes(b.bytes)}${b.unmapped ? `, ${b.unmapped} by hashed name` : ""}`]);
  }
  const warnings = (m.services.minio?.buckets ?? []).flatMap((b) => (b.warnings ?? []).map((w) => `WARNING minio ${b.name}: ${w}`));
  const seconds = ((Date.parse(m.finishedAt) - Date.parse(m.startedAt)) / 1000).toFixed(1);
  return [
    `backup ${r.id} complete in ${seconds}s: ${m.totals.files} files, ${humanBytes(m.totals.bytes)}`,
    table(["service", "item", "contents"], rows),
    `set: ${r.dir}`,
    ...warnings,
    ...(r.prune
      ? [r.prune.ok ? `prune: removed ${r.prune.removed.length} (${r.prune.removed.join(", ") || "nothing"}), kept ${r.prune.kept}` : `prune: FAILED (the set is complete): ${r.prune.error}`]
      : []),
  ].join("\n");
}

export function verifyHuman(r: VerifyReport): string {
  const lines = [
    r.ok
      ? `verify ${r.id}: ok — ${r.filesChecked} files (${humanBytes(r.bytesChecked)}) match the manifest; ${r.formatChecks.length} format checks passed`
      : `verify ${r.id}: FAILED — ${r.findings.length} finding(s)`,
  ];
  for (const f of r.findings) lines.push(`  ${f.verdict.padEnd(17)} ${f.path}: ${f.detail}`);
  if (r.drillRecord.status === "invalid") {
    lines.push(`  drill record invalid (the data is not affected; freshness counts the set as not proven until the next drill): ${r.drillRecord.problem}`);
  }
  return lines.join("\n");
}

function short(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s === undefined ? "" : s.length > 40 ? `${s.slice(0, 39)}…` : s;
}


function verdict(c: DrillCheck): string {
  return c.ok ? (c.warning ? "WARN" : "ok") : "FAIL";
}

/** "  WARN minio not-carried assets: bucket policy: ..." for every passing check with a warning. */
function warningLines(checks: DrillCheck[]): string[] {
  return checks.filter((c) => c.ok && c.warning).map((c) => `  WARN ${c.service} ${c.check} ${c.subject}: ${c.warning}`);
}

/** The drill as a compact table: one line per check, failures first in the detail lines. */
export function drillHuman(s: DrillSummary): string {
  const rows: string[][] = [];
  for (const service of ["postgres", "redis", "minio"] as const) {
    for (const c of s.services[service]?.checks ?? []) {
      rows.push([verdict(c), service, c.check, c.subject, short(c.expected), short(c.actual)]);
    }
  }
  const rto = (["postgres", "redis", "minio"] as const)
    .filter((k) => s.services[k])
    .map((k) => `${k} ${(s.services[k]!.restoreMs / 1000).toFixed(1)}s`)
    .join(", ");
  const failures = (["postgres", "redis", "minio"] as const)
    .flatMap((k) => s.services[k]?.checks ?? [])
    .filter((c) => !c.ok)
    .map((c) => `  FAIL ${c.service} ${c.check} ${c.subject}: expected ${short(c.expected)}, got ${short(c.actual)}${c.detail ? ` — ${c.detail}` : ""}`);
  return [
    `restore drill ${s.setId}: ${s.ok ? "PASSED" : "FAILED"} — ${s.totals.passed}/${s.totals.checks} checks passed`,
    table(["result", "service", "check", "subject", "expected", "actual"], rows),
    `restore time (RTO): ${rto}`,
    ...failures,
    ...warningLines((["postgres", "redis", "minio"] as const).flatMap((k) => s.services[k]?.checks ?? [])),
  ].join("\n");
}

export function restoreHuman(s: RestoreSummary, path?: string): string {
  const lines = [
    `${s.dryRun ? "restore plan (dry run, nothing changed)" : "restore"} of set ${s.setId}:`,
    ...s.plan.map((a) => `  ${a.kind.padEnd(9)} ${a.service.padEnd(8)} ${a.detail}`),
  ];
  if (!s.dryRun) {
    const rows: string[][] = [];
    for (const service of ["postgres", "redis", "minio"] as const) {
      for (const c of s.services[service]?.checks ?? []) rows.push([verdict(c), service, c.check, c.subject, short(c.expected), short(c.actual)]);
    }
    lines.push(`checks: ${s.ok ? "PASSED" : "FAILED"} — ${s.totals.passed}/${s.totals.checks}`, table(["result", "service", "check", "subject", "expected", "actual"], rows));
    for (const service of ["postgres", "redis", "minio"] as const) {
      for (const c of (s.services[service]?.checks ?? []).filter((x) => !x.ok)) {
        lines.push(`  FAIL ${service} ${c.check} ${c.subject}: expected ${short(c.expected)}, got ${short(c.actual)}${c.detail ? ` — ${c.detail}` : ""}`);
      }
    }
    lines.push(...warningLines((["postgres", "redis", "minio"] as const).flatMap((k) => s.services[k]?.checks ?? [])));
    if (path) lines.push(`summary: ${path}`);
  }
  return lines.join("\n");
}
