import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runProgram } from "./cli.js";
import { backupDrillTempDirs, processesUnder } from "./procs.js";
import { requireTools, useTempDir } from "./services/index.js";

const tmp = useTempDir("sandbox");

const npmRun = (args: string[]) => runProgram("npm", ["run", "--silent", ...args]);

describe("npm run sandbox", () => {
  it("starts throwaway servers, seeds them, backs up, verifies and drills, then stops them", async () => {
    requireTools();
    const output = join(tmp(), "backups");
    const r = await npmRun(["sandbox", "--", "--output", output, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.verify).toMatchObject({ ok: true, findings: [] });
    expect(doc.drill).toMatchObject({ ok: true, setId: doc.backup.id });
    expect(doc.drill.totals.failed).toBe(0);
    // The seeded features beyond tables, keys and objects are each checked, and pass.
    const checks = (["postgres", "redis", "minio"] as const).flatMap((svc) => doc.drill.services[svc].checks as { check: string; subject: string; ok: boolean }[]);
    const passed = (check: string, subject: string) => checks.some((c) => c.check === check && c.subject === subject && c.ok);
    expect(passed("row-count", "app.public.customer_order_counts"), "a materialized view").toBe(true);
    expect(passed("row-count", "app.public.monthly_revenue"), "a WITH NO DATA materialized view").toBe(true);
    expect(passed("large-objects", "app"), "large objects").toBe(true);
    expect(passed("functions", "libraries"), "a Redis function library").toBe(true);
    expect(passed("stream-groups", "db0"), "a consumer group").toBe(true);
    expect(passed("object-versions", "archive"), "a versioned bucket with delete markers").toBe(true);
    expect(passed("bucket-config", "archive lifecycle"), "its lifecycle").toBe(true);
    expect(readFileSync(join(output, doc.backup.id, "restore-drill-summary.json"), "utf8")).toContain('"ok": true');
    expect(Object.keys(doc.backup.services).sort()).toEqual(["minio", "postgres", "redis"]);
    const latest = JSON.parse(readFileSync(join(output, "latest.json"), "utf8"));
    expect(latest.id).toBe(doc.backup.id);
    // The servers are stopped and their temp directories gone: both would be in this test's own TMPDIR.
    expect(backupDrillTempDirs(tmpdir())).toEqual([]);
    expect(processesUnder(tmpdir()).map((p) => `${p.pid} ${p.cmd}`)).toEqual([]);
  });
});
