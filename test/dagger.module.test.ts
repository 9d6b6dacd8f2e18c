import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, OVERRIDES } from "../pipeline/config.js";
import { MC_MODULE, MC_VERSION, MINIO_MODULE, MINIO_VERSION } from "../pipeline/versions.js";
import { sourceConfig, targetConfig, parseConfig } from "../src/config.js";
import { ALIAS, MC_MODULE as BOX_MC, MINIO_MODULE as BOX_MINIO, SECRET_VAR } from "../src/toolbox.js";

/**
 * Engine-free checks for each class of defect the first real engine run
 * found (issue 14): what the module's runtime installs, what the bundled
 * module library exports, secret variables against config overrides. The
 * staging/seal classes (EXDEV, modes) are in test/store.test.ts, the
 * src-alone scan in test/dagger.introspect.test.ts.
 */

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), "utf8");
const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
const srcFiles = readdirSync(fileURLToPath(new URL("../src/", import.meta.url))).filter((f) => f.endsWith(".ts"));

describe("defect 1: the SDK runtime installs dependencies only", () => {
  it("typescript, which the SDK loads at run time, is a dependency (not a devDependency), in the SDK's own major", () => {
    const sdk = JSON.parse(read("node_modules/@dagger.io/dagger/package.json")) as { dependencies: Record<string, string> };
    expect(pkg.dependencies.typescript).toBeDefined();
    expect(pkg.devDependencies.typescript).toBeUndefined();
    const major = (range: string) => /(\d+)/.exec(range)![1];
    expect(major(pkg.dependencies.typescript!)).toBe(major(sdk.dependencies.typescript!));
  });

  it("the module's sources import no package that is not a dependency (node: builtins and the SDK aside)", () => {
    for (const f of srcFiles) {
      for (const spec of moduleSpecifiers(read(`src/${f}`))) {
        if (spec.startsWith(".") || spec.startsWith("node:") || spec === "@dagger.io/dagger") continue;
        expect(Object.keys(pkg.dependencies), `${f} imports ${spec}`).toContain(spec);
      }
    }
  });
});

/** Names the bundled module library exports (runtime/tsutils/module/index.ts): core.js's and the generated client's. */
function bundledValueExports(): Set<string> {
  const core = ["connection", "connect", "Context", "func", "argument", "object", "field", "enumType", "entrypoint"];
  const client = read("node_modules/@dagger.io/dagger/dist/src/api/client.gen.d.ts");
  const names = [...client.matchAll(/^export declare (?:class|enum|const|function|let|var) (\w+)/gm)].map((m) => m[1]!);
  return new Set([...core, ...names]);
}

function moduleSpecifiers(text: string): string[] {
  const sf = ts.createSourceFile("x.ts", text, ts.ScriptTarget.ES2022, true);
  return sf.statements.filter(ts.isImportDeclaration).map((d) => (d.moduleSpecifier as ts.StringLiteral).text);
}

/** Value (not type-only) names a file imports from @dagger.io/dagger. */
function daggerValueImports(text: string): string[] {
  const sf = ts.createSourceFile("x.ts", text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  for (const d of sf.statements.filter(ts.isImportDeclaration)) {
    if ((d.moduleSpecifier as ts.StringLiteral).text !== "@dagger.io/dagger" || d.importClause?.isTypeOnly) continue;
    const b = d.importClause?.namedBindings;
    if (d.importClause?.name) out.push("default");
    if (b && ts.isNamespaceImport(b)) out.push("* as namespace");
    if (b && ts.isNamedImports(b)) for (const e of b.elements) if (!e.isTypeOnly) out.push((e.propertyName ?? e.name).text);
  }
  return out;
}

describe("defect 2: only values the bundled module library exports", () => {
  const allowed = bundledValueExports();

  it("the bundled library's export list is what this check thinks it is (ExecError is not in it; dag, ReturnType are)", () => {
    expect(allowed.has("dag")).toBe(true);
    expect(allowed.has("ReturnType")).toBe(true);
    expect(allowed.has("object")).toBe(true);
    expect(allowed.has("ExecError")).toBe(false);
  });

  it.each(srcFiles)("src/%s imports from @dagger.io/dagger only bundled values (everything else as types)", (f) => {
    for (const name of daggerValueImports(read(`src/${f}`))) expect(allowed.has(name), `${f}: ${name}`).toBe(true);
  });

  it("the check catches a value import the bundle lacks", () => {
    expect(daggerValueImports('import { dag, ExecError, type Container } from "@dagger.io/dagger";').filter((n) => !allowed.has(n))).toEqual(["ExecError"]);
  });

  it("no module outside src/ imports @dagger.io/dagger (the pipeline runs the same on a host and in the toolbox)", () => {
    const offenders: string[] = [];
    for (const dir of ["pipeline", "probes", "bin"]) {
      for (const f of readdirSync(fileURLToPath(new URL(`../${dir}/`, import.meta.url)), { recursive: true }) as string[]) {
        if (/\.(ts|js)$/.test(f) && read(`${dir}/${f}`).includes("@dagger.io/dagger")) offenders.push(`${dir}/${f}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

/** Every environment variable name the CLI reads: the config overrides and each process.env.X / env.X in pipeline/. */
function envNamesTheCliReads(): Set<string> {
  const names = new Set(OVERRIDES.map((o) => o.env));
  for (const f of readdirSync(fileURLToPath(new URL("../pipeline/", import.meta.url)), { recursive: true }) as string[]) {
    if (!f.endsWith(".ts")) continue;
    for (const m of read(`pipeline/${f}`).matchAll(/\benv(?:\?)?(?:\.|\[")([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
  }
  return names;
}

describe("defect 3: a secret variable the module sets is never a setting the CLI reads", () => {
  const read = envNamesTheCliReads();

  it("the CLI's env names were found (BACKUP_DRILL_MINIO_SECRET_KEY, BACKUP_DRILL_CONFIG, BACKUP_DRILL_RUNNER)", () => {
    for (const n of ["BACKUP_DRILL_MINIO_SECRET_KEY", "BACKUP_DRILL_CONFIG", "BACKUP_DRILL_RUNNER"]) expect(read.has(n), n).toBe(true);
  });

  it.each(Object.values(SECRET_VAR))("%s is not read by the CLI as a setting", (name) => {
    expect(read.has(name)).toBe(false);
    expect(name.startsWith("BACKUP_DRILL_")).toBe(false);
  });

  it("why it matters: a secret value in a variable the CLI reads as an override is refused (the first engine run's failure)", () => {
    const dir = mkdtempSync(join(tmpdir(), "bd-dagger-cfg-"));
    try {
      const path = join(dir, "config.json");
      writeFileSync(path, JSON.stringify(sourceConfig({}, { minio: { port: 9000 } })));
      expect(() => loadConfig({ configPath: path, env: { BACKUP_DRILL_MINIO_SECRET_KEY: "s3cr3t-value", [SECRET_VAR.minioAccessKey]: "a", [SECRET_VAR.minioSecretKey]: "b" } })).toThrow(
        /minio.secretKey: must be a reference/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the generated config is one the CLI loads, naming the bound aliases and only references", () => {
  const dir = mkdtempSync(join(tmpdir(), "bd-dagger-cfg-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = Object.fromEntries(Object.values(SECRET_VAR).map((n) => [n, `value-of-${n}`]));

  it("sources: hosts are aliases, secrets env: references to the secret variables, the caller's other settings kept", () => {
    const base = parseConfig(JSON.stringify({ redis: { sampleSize: 7, password: "env:HOST_ONLY" }, retention: { keepLast: 2 }, postgres: { sanityQueries: [], password: "env:HOST_ONLY" } }));
    const cfgJson = sourceConfig(base, {
      postgres: { port: 5433, user: "backup", password: true, databases: ["app"], globals: true, jobs: 3 },
      redis: { port: 6380, username: "bk", password: true },
      minio: { port: 9001, buckets: ["assets"], region: "eu-west-1" },
    });
    expect(JSON.stringify(cfgJson)).not.toContain("value-of");
    const path = join(dir, "sources.json");
    writeFileSync(path, JSON.stringify(cfgJson));
    const cfg = loadConfig({ configPath: path, env });
    expect(cfg.postgres).toMatchObject({ host: ALIAS.pg, port: 5433, user: "backup", databases: ["app"], globals: true, jobs: 3 });
    expect(cfg.postgres!.password!.reveal()).toBe(`value-of-${SECRET_VAR.pgPassword}`);
    expect(cfg.redis).toMatchObject({ host: ALIAS.redis, port: 6380, username: "bk", sampleSize: 7 });
    expect(cfg.redis!.password!.reveal()).toBe(`value-of-${SECRET_VAR.redisPassword}`);
    expect(cfg.minio).toMatchObject({ endpoint: `http://${ALIAS.minio}:9001`, buckets: ["assets"], region: "eu-west-1" });
    expect(cfg.minio!.accessKey.reveal()).toBe(`value-of-${SECRET_VAR.minioAccessKey}`);
    expect(cfg.minio!.secretKey.reveal()).toBe(`value-of-${SECRET_VAR.minioSecretKey}`);
    expect(cfg.retention).toMatchObject({ keepLast: 2 });
  });

  it("a server without a password gets no password reference (the caller's host-side reference is dropped)", () => {
    const cfgJson = sourceConfig({ postgres: { password: "env:HOST_ONLY" } }, { postgres: { port: 5432, user: "postgres", password: false } });
    expect((cfgJson.postgres as Record<string, unknown>).password).toBeUndefined();
  });

  it("restore targets: the target aliases, secrets by reference", () => {
    const path = join(dir, "targets.json");
    writeFileSync(path, JSON.stringify(targetConfig({ postgres: { port: 5432, user: "u", password: true }, redis: { port: 6379, password: true }, minio: { endpoint: "https://s3.example.com" } })));
    const text = readFileSync(path, "utf8");
    expect(text).not.toContain("value-of");
    const raw = JSON.parse(text) as Record<string, Record<string, unknown>>;
    expect(raw.postgres).toEqual({ host: ALIAS.targetPg, port: 5432, user: "u", password: `env:${SECRET_VAR.targetPgPassword}` });
    expect(raw.redis).toEqual({ host: ALIAS.targetRedis, port: 6379, password: `env:${SECRET_VAR.targetRedisPassword}` });
    expect(raw.minio).toEqual({ endpoint: "https://s3.example.com", accessKey: `env:${SECRET_VAR.targetMinioAccessKey}`, secretKey: `env:${SECRET_VAR.targetMinioSecretKey}` });
  });

  it("a caller's config that is not JSON is refused with one line", () => {
    expect(() => parseConfig("{nope")).toThrow(/^--config: not valid JSON/);
  });
});

describe("the toolbox builds the pinned tools", () => {
  it("mc and minio at the versions ensure-tools.sh installs on a host", () => {
    expect(BOX_MC).toBe(`${MC_MODULE}@${MC_VERSION}`);
    expect(BOX_MINIO).toBe(`${MINIO_MODULE}@${MINIO_VERSION}`);
  });
});
