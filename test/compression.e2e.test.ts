import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManifestSchema } from "../pipeline/manifest.js";
import { seedPostgres } from "../pipeline/seed.js";
import { startPostgres, type PostgresServer } from "../pipeline/throwaway/servers.js";
import { toolVersion, resolveTool } from "../pipeline/tools.js";
import { runCli } from "./cli.js";
import { requireTools, useTempDir } from "./services/index.js";

/**
 * postgres.compression with the real pg_dump 15 (the only major Debian 12
 * installs): none and gzip levels dump and drill; lz4 and zstd are refused
 * before anything is staged, in one line naming the field and the version.
 */
const tmp = useTempDir("compression");
let pg: PostgresServer;
const env = () => ({ TEST_PG: pg.password.reveal() });

beforeAll(async () => {
  requireTools();
  pg = await startPostgres({ tools: {}, fast: true });
  await seedPostgres(pg);
});
afterAll(async () => {
  await pg?.stop();
});

function config(name: string, postgres: Record<string, unknown>): { path: string; output: string } {
  const output = join(tmp(), name);
  const path = join(tmp(), `${name}.json`);
  writeFileSync(path, JSON.stringify({ output, retention: "off", postgres: { host: pg.host, port: pg.port, password: "env:TEST_PG", databases: ["app"], ...postgres } }));
  return { path, output };
}

function dataFiles(setDir: string): string[] {
  return readdirSync(join(setDir, "postgres/app")).filter((f) => f !== "toc.dat" && f !== "blobs.toc");
}

describe("postgres.compression with pg_dump 15", () => {
  it.each([
    ["none", "--compress=0", /^(blob_)?\d+\.dat$/],
    ["gzip:1", "--compress=1", /^(blob_)?\d+\.dat\.gz$/],
    ["gzip:9", "--compress=9", /^(blob_)?\d+\.dat\.gz$/],
  ])("%s: dumps with %s, records it in the manifest, verifies and drills", async (spec, flag, fileName) => {
    const c = config(`set-${spec.replace(":", "-")}`, { compression: spec, jobs: 2 });
    const b = await runCli(["backup", "--config", c.path, "--json"], { env: env() });
    expect(b.code, b.stderr).toBe(0);
    const id = JSON.parse(b.stdout).id as string;
    const setDir = join(c.output, id);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(setDir, "manifest.json"), "utf8")));
    expect(manifest.services.postgres).toMatchObject({ compression: spec, jobs: 2 });
    const dump = manifest.steps.find((s) => s.id === "postgres/dump/app")!;
    expect(dump.argv.slice(0, 4)).toEqual(["pg_dump", "--format=directory", "--jobs=2", flag]);
    const files = dataFiles(setDir);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect(f).toMatch(fileName);
    const d = await runCli(["restore-drill", "--config", c.path, "--set", id, "--json"], { env: env() });
    expect(d.code, d.stderr + d.stdout.slice(0, 2000)).toBe(0);
    const summary = JSON.parse(d.stdout);
    expect(summary.services.postgres.checks.filter((x: { check: string }) => x.check === "row-count").length).toBeGreaterThan(3);
  });

  it("gzip:9 makes smaller data files than none", async () => {
    const size = (spec: string) => {
      const root = join(tmp(), `set-${spec.replace(":", "-")}`);
      const [id] = readdirSync(root).filter((n) => /^\d{4}-/.test(n));
      const dir = join(root, id!, "postgres/app");
      return readdirSync(dir).reduce((a, f) => a + readFileSync(join(dir, f)).length, 0);
    };
    expect(size("gzip:9")).toBeLessThan(size("none") * 0.8);
  });

  it.each(["lz4", "zstd:3"])("%s is refused before anything is staged (exit 2), by check and by backup", async (spec) => {
    const version = await toolVersion(resolveTool("pg_dump"));
    expect(version).toMatch(/^15\./);
    const c = config(`refused-${spec.replace(":", "-")}`, { compression: spec });
    const method = spec.split(":")[0];
    const line = `postgres.compression: ${method} needs pg_dump 16 or newer, and pg_dump ${version} is in use`;

    const check = await runCli(["check", "--config", c.path], { env: env() });
    expect(check.code).toBe(1);
    const failures = check.stderr.split("\n").filter((l) => l.startsWith("check failed: "));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toContain(line);

    const b = await runCli(["backup", "--config", c.path], { env: env() });
    expect(b.code).toBe(2);
    const errors = b.stderr.split("\n").filter((l) => l.includes("postgres.compression"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(line);
    expect(b.stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect(readdirSync(c.output).filter((n) => !n.startsWith("."))).toEqual([]);
  });
});
