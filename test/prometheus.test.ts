import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import parsePrometheusTextFormat, { type PrometheusFamily } from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { assessFreshness, type FreshnessPolicy } from "../pipeline/freshness.js";
import { prometheusText, writePrometheusFile } from "../pipeline/prometheus.js";
import type { SetFacts } from "../pipeline/set-facts.js";
import { runCli } from "./cli.js";
import { writeDrill, writeSet } from "./fixtures/sets.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("prometheus");
const NOW = new Date("2026-03-10T12:00:00Z");
const H = 3_600_000;
const th = { warnAfterMs: 26 * H, criticalAfterMs: 50 * H, minSizeBytes: 1 };
const policy: FreshnessPolicy = { expected: ["postgres", "redis", "minio"], thresholds: { postgres: th, redis: th, minio: th }, drillMaxAgeMs: 8 * 24 * H };

const setAt = (ageMs: number, id: string, services: SetFacts["services"], drillAgeMs?: number): SetFacts => ({
  id,
  time: new Date(NOW.getTime() - ageMs),
  valid: true,
  manifestSha256: id.padEnd(64, "0"),
  services,
  ...(drillAgeMs !== undefined
    ? { drill: { ok: true, finishedAt: new Date(NOW.getTime() - drillAgeMs), manifestSha256: id.padEnd(64, "0"), services: { postgres: true, redis: true } } }
    : {}),
});

/** postgres fresh and proven, redis stale (WARNING), minio never backed up (CRITICAL). */
const report = assessFreshness(
  [setAt(30 * H, "a", { postgres: { bytes: 100, files: 1 }, redis: { bytes: 7, files: 1 } }, 29 * H), setAt(2 * H, "b", { postgres: { bytes: 4096, files: 3 } }, 1 * H)],
  policy,
  NOW,
);

const byName = (families: PrometheusFamily[]) => Object.fromEntries(families.map((f) => [f.name, f]));
const values = (f: PrometheusFamily | undefined) => Object.fromEntries((f?.metrics ?? []).map((m) => [m.labels?.service ?? m.labels?.state ?? "", Number(m.value)]));

describe("Prometheus textfile", () => {
  it("parses with a Prometheus text-format parser and carries the named metrics with their values", () => {
    const text = prometheusText(report);
    expect(text.endsWith("\n")).toBe(true);
    const m = byName(parsePrometheusTextFormat(text));
    for (const f of Object.values(m)) expect(f.type).toBe("GAUGE");
    expect(values(m.backup_drill_last_success_timestamp_seconds)).toEqual({
      postgres: (NOW.getTime() - 2 * H) / 1000,
      redis: (NOW.getTime() - 30 * H) / 1000,
      minio: 0,
    });
    expect(values(m.backup_drill_last_drill_success_timestamp_seconds)).toEqual({ "": (NOW.getTime() - 1 * H) / 1000 });
    expect(values(m.backup_drill_set_size_bytes)).toEqual({ postgres: 4096, redis: 7, minio: 0 });
    expect(values(m.backup_drill_freshness_status)).toEqual({ postgres: 0, redis: 1, minio: 2 });
    expect(values(m.backup_drill_freshness_overall_status)).toEqual({ "": 2 });
    expect(values(m.backup_drill_freshness_age_seconds)).toMatchObject({ postgres: 7200, redis: 108000 });
    expect(m.backup_drill_freshness_age_seconds!.metrics.find((x) => x.labels?.service === "minio")!.value).toBe("NaN");
    expect(values(m.backup_drill_sets)).toEqual({ valid: 2, rejected: 0 });
    // Every sample line is well-formed (the parser skips what it cannot read, so check the lines too).
    for (const line of text.trim().split("\n")) expect(line).toMatch(/^(# (HELP|TYPE) backup_drill_\w+ .+|backup_drill_\w+(\{(\w+="[^"]*",?)+\})? (-?[\d.e+]+|NaN))$/);
  });

  it("the CLI writes it with --prometheus", async () => {
    const root = join(tmp(), "cli", "backups");
    const taken = new Date(Date.now() - H);
    const set = await writeSet(root, { time: taken, services: { postgres: 300, redis: 200 } });
    const drilled = new Date(Date.now() - H / 2);
    await writeDrill(set, { finishedAt: drilled });
    const prom = join(tmp(), "cli", "backup_drill.prom");
    const r = await runCli(["freshness", "--output", root, "--prometheus", prom, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).outputs).toEqual({ prometheus: prom });
    const m = byName(parsePrometheusTextFormat(readFileSync(prom, "utf8")));
    expect(values(m.backup_drill_set_size_bytes)).toEqual({ postgres: 300, redis: 200 });
    expect(values(m.backup_drill_freshness_status)).toEqual({ postgres: 0, redis: 0 });
    expect(values(m.backup_drill_last_success_timestamp_seconds)).toEqual({ postgres: taken.getTime() / 1000, redis: taken.getTime() / 1000 });
    expect(values(m.backup_drill_last_drill_success_timestamp_seconds)).toEqual({ "": drilled.getTime() / 1000 });
  });

  it("a reader never sees a half-written file while it is rewritten over and over", async () => {
    const path = join(tmp(), "concurrent.prom");
    // Two different documents, so a torn read could also show up as a mix of both.
    const other = assessFreshness([setAt(60 * H, "c", { redis: { bytes: 12345678, files: 9 } })], { ...policy, expected: ["redis"] }, NOW);
    const expected = [report, other].map((r) => JSON.stringify(parsePrometheusTextFormat(prometheusText(r))));
    await writePrometheusFile(path, report);

    const stop = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       const { readFileSync } = require("node:fs");
       const parse = require(workerData.parser);
       const stop = new Int32Array(workerData.stop);
       let reads = 0; const bad = [];
       while (Atomics.load(stop, 0) === 0) {
         let text;
         try { text = readFileSync(workerData.path, "utf8"); } catch (e) { bad.push("read failed: " + e.code); continue; }
         reads++;
         const got = JSON.stringify(parse(text));
         if (!workerData.expected.includes(got) && bad.length < 5) bad.push(text.length + " bytes: " + text.slice(-80));
       }
       parentPort.postMessage({ reads, bad });`,
      { eval: true, workerData: { path, expected, stop: stop.buffer, parser: createRequire(import.meta.url).resolve("parse-prometheus-text-format") } },
    );
    const result = new Promise<{ reads: number; bad: string[] }>((res, rej) => {
      worker.once("message", res);
      worker.once("error", rej);
    });
    for (let i = 0; i < 300; i++) await writePrometheusFile(path, i % 2 ? report : other);
    Atomics.store(stop, 0, 1);
    const { reads, bad } = await result;
    await worker.terminate();
    expect(bad).toEqual([]);
    expect(reads).toBeGreaterThan(300); // the reader really ran alongside the writes
  });
});
