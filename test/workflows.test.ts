import { existsSync, readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { kebab, moduleFunctions, type ScannedFunction } from "./dagger-module.js";

/**
 * The GitHub workflows parse as YAML and name only what exists: Dagger
 * functions and their flags (from the SDK's introspector over src/), npm
 * scripts (from package.json), files the steps run, and the engine version
 * of dagger.json.
 */

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), "utf8");

type Step = { name?: string; uses?: string; run?: string; if?: string; with?: Record<string, string> };
type Workflow = { name: string; on: Record<string, unknown>; jobs: Record<string, { steps: Step[]; env?: Record<string, string> }> };

const workflow = (file: string) => parse(read(`.github/workflows/${file}`)) as Workflow;
const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
const daggerSteps = (w: Workflow) => steps(w).filter((s) => s.uses?.startsWith("dagger/dagger-for-github@"));

/** `fn --a=x --b y export --path p` -> the function, its flags, and what is chained after it. */
function parseCall(args: string): { fn: string; flags: string[]; chain: string[] } {
  // A GitHub expression (${{ vars.X }}) is one value, whatever it holds.
  const words = args.replace(/\$\{\{[^}]*\}\}/g, "EXPR").trim().split(/\s+/);
  const fn = words[0]!;
  const flags: string[] = [];
  let i = 1;
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith("--")) break;
    flags.push(w.slice(2).split("=")[0]!);
    if (!w.includes("=") && words[i + 1] && !words[i + 1]!.startsWith("--")) i++; // --flag value
  }
  return { fn, flags, chain: words.slice(i) };
}

let fns: Record<string, ScannedFunction>;
beforeAll(async () => {
  fns = (await moduleFunctions()).functions;
});

function byCliName(name: string): ScannedFunction | undefined {
  return Object.values(fns).find((f) => kebab(f.name) === name);
}

describe(".github/workflows/backup-drill.yml", () => {
  const w = workflow("backup-drill.yml");

  it("runs on a schedule and by hand", () => {
    expect(w.on).toHaveProperty("schedule");
    expect(w.on).toHaveProperty("workflow_dispatch");
  });

  it("calls backup, push (when the offsite secrets are set), restore-drill and freshness, in that order, through the pinned dagger-for-github", () => {
    const calls = daggerSteps(w).map((s) => parseCall(s.with!.args ?? s.with!.call!).fn);
    expect(calls).toEqual(["backup", "push", "restore-drill", "freshness"]);
    const push = daggerSteps(w)[1]!;
    expect(push.if).toContain("env.OFFSITE_ACCESS_KEY != ''");
    expect(push.with!.args).toContain("--offsite-recipients=");
    for (const s of daggerSteps(w)) expect(s.uses).toMatch(/^dagger\/dagger-for-github@v\d+\.\d+\.\d+$/);
  });

  it("pins the Dagger CLI to dagger.json's engineVersion", () => {
    const engine = (JSON.parse(read("dagger.json")) as { engineVersion: string }).engineVersion;
    for (const s of daggerSteps(w)) expect(`v${s.with!.version}`).toBe(engine);
  });

  it("names only functions and flags the module has; export only where a function returns a Directory", () => {
    for (const s of daggerSteps(w)) {
      const { fn, flags, chain } = parseCall(s.with!.args ?? s.with!.call!);
      const f = byCliName(fn);
      expect(f, `function ${fn}`).toBeDefined();
      const known = Object.keys(f!.args).map(kebab);
      for (const flag of flags) expect(known, `${fn} --${flag}`).toContain(flag);
      // Every required argument is given.
      for (const [arg, a] of Object.entries(f!.args)) if (!a.optional && a.default === undefined) expect(flags, `${fn} needs --${kebab(arg)}`).toContain(kebab(arg));
      if (chain.length) {
        expect(f!.returns).toBe("Directory");
        expect(chain.slice(0, 2)).toEqual(["export", "--path"]);
      }
    }
  });

  it("passes every secret as an env:// reference, never as a value", () => {
    for (const s of daggerSteps(w)) {
      const args = s.with!.args ?? s.with!.call!;
      expect(args).not.toMatch(/secrets\./);
      for (const m of args.matchAll(/--([a-z-]*(password|key))=(\S+)/g)) expect(m[3], m[1]).toMatch(/^env:\/\/[A-Z_]+$/);
    }
    const env = Object.values(w.jobs)[0]!.env!;
    for (const name of ["PGPASSWORD", "REDIS_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"]) expect(env[name]).toMatch(/^\$\{\{ secrets\.[A-Z_]+ \}\}$/);
  });

  it("uploads the set, writes the Markdown summary, and fails on a failed drill or CRITICAL freshness", () => {
    const all = steps(w);
    const upload = all.find((s) => s.uses?.startsWith("actions/upload-artifact@"))!;
    expect(upload.with!.path).toBe("output/backups");
    expect(upload.if).toBe("always()");
    const summary = all.map((s) => s.run ?? "").join("\n");
    expect(summary).toContain('cat output/freshness/freshness.md >> "$GITHUB_STEP_SUMMARY"');
    const gate = all.at(-1)!.run!;
    expect(gate).toContain("restore-drill-summary.json");
    expect(gate).toMatch(/\.ok == true/);
    expect(gate).toContain('[ "$status" != "CRITICAL" ]');
  });
});

describe(".github/workflows/ci.yml", () => {
  const w = workflow("ci.yml");
  const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };

  it("runs the suite the way CI does: bash .ci/run", () => {
    expect(steps(w).some((s) => s.run?.trim() === "bash .ci/run")).toBe(true);
    expect(existsSync(new URL("../.ci/run", import.meta.url))).toBe(true);
  });

  it("names only npm scripts that exist", () => {
    const runs = steps(w).map((s) => s.run ?? "").join("\n");
    const named = [...runs.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(0);
    for (const n of named) expect(Object.keys(pkg.scripts), n).toContain(n);
  });
});
