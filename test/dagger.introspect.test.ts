import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POSTGRES_MAJOR, DEFAULT_REDIS_VERSION, GO_IMAGE, NODE_IMAGE } from "../src/toolbox.js";
import { copySrcAlone, moduleFunctions, type ScannedFunction } from "./dagger-module.js";

/**
 * What `dagger functions` / `dagger call --help` would show, from the SDK's
 * own introspector (`scan()`), run the way the engine runs it: over a copy
 * of src/ alone (no pipeline/ beside it) plus a client.gen.ts (here the
 * 0.21.9 package's generated client, copied to that name), without loading
 * the module.
 */

let fns: Record<string, ScannedFunction>;
let ctor: ScannedFunction;
let description: string | undefined;

beforeAll(async () => {
  const scanned = await moduleFunctions();
  fns = scanned.functions;
  ctor = scanned.constructor;
  description = scanned.description;
});

type ArgSpec = { type: string; optional?: boolean; default?: unknown };

const opt = (type: string): ArgSpec => ({ type, optional: true });
const SOURCES: Record<string, ArgSpec> = {
  pg: opt("Service"),
  pgUser: { type: "STRING_KIND", default: "postgres" },
  pgPassword: opt("Secret"),
  pgDatabases: opt("[STRING_KIND]"),
  pgGlobals: opt("BOOLEAN_KIND"),
};
const REDIS_MINIO: Record<string, ArgSpec> = {
  redis: opt("Service"),
  redisUsername: opt("STRING_KIND"),
  redisPassword: opt("Secret"),
  minio: opt("Service"),
  minioEndpoint: opt("STRING_KIND"),
  minioAccessKey: opt("Secret"),
  minioSecretKey: opt("Secret"),
  minioBuckets: opt("[STRING_KIND]"),
};

const OFFSITE_PULL: Record<string, ArgSpec> = {
  offsiteEndpoint: opt("STRING_KIND"),
  offsiteBucket: opt("STRING_KIND"),
  offsiteAccessKey: opt("Secret"),
  offsiteSecretKey: opt("Secret"),
  offsitePrefix: opt("STRING_KIND"),
  offsiteRegion: opt("STRING_KIND"),
  offsitePathStyle: opt("BOOLEAN_KIND"),
  offsiteIdentity: opt("Secret"),
};

const EXPECTED: Record<string, { args: Record<string, ArgSpec>; returns: string; cache?: string }> = {
  version: { args: {}, returns: "STRING_KIND" },
  backup: {
    cache: "never",
    returns: "Directory",
    args: { backups: opt("Directory"), config: opt("File"), ...SOURCES, pgJobs: opt("INTEGER_KIND"), ...REDIS_MINIO, minioRegion: opt("STRING_KIND") },
  },
  check: {
    cache: "never",
    returns: "STRING_KIND",
    args: { config: opt("File"), ...SOURCES, ...REDIS_MINIO, json: { type: "BOOLEAN_KIND", default: false } },
  },
  restoreDrill: {
    cache: "never",
    returns: "Directory",
    args: {
      backups: opt("Directory"),
      set: opt("STRING_KIND"),
      config: opt("File"),
      fromOffsite: { type: "BOOLEAN_KIND", default: false },
      ...OFFSITE_PULL,
      postgresMajor: opt("INTEGER_KIND"),
      redisVersion: opt("STRING_KIND"),
    },
  },
  push: {
    cache: "never",
    returns: "Directory",
    args: {
      backups: { type: "Directory" },
      offsiteEndpoint: { type: "STRING_KIND" },
      offsiteBucket: { type: "STRING_KIND" },
      offsiteAccessKey: { type: "Secret" },
      offsiteSecretKey: { type: "Secret" },
      set: opt("STRING_KIND"),
      config: opt("File"),
      offsitePrefix: opt("STRING_KIND"),
      offsiteRegion: opt("STRING_KIND"),
      offsitePathStyle: opt("BOOLEAN_KIND"),
      offsiteRecipients: opt("[STRING_KIND]"),
    },
  },
  verify: {
    cache: "never",
    returns: "STRING_KIND",
    args: {
      backups: { type: "Directory" },
      set: opt("STRING_KIND"),
      formats: { type: "BOOLEAN_KIND", default: true },
      json: { type: "BOOLEAN_KIND", default: false },
      remote: { type: "BOOLEAN_KIND", default: false },
      readData: { type: "BOOLEAN_KIND", default: false },
      ...OFFSITE_PULL,
    },
  },
  freshness: {
    cache: "never",
    returns: "Directory",
    args: { backups: { type: "Directory" }, config: opt("File"), deep: { type: "BOOLEAN_KIND", default: false }, now: opt("STRING_KIND") },
  },
  status: {
    cache: "never",
    returns: "STRING_KIND",
    args: { backups: { type: "Directory" }, config: opt("File"), formats: { type: "BOOLEAN_KIND", default: false }, now: opt("STRING_KIND"), json: { type: "BOOLEAN_KIND", default: false } },
  },
  prune: {
    cache: "never",
    returns: "Directory",
    args: { backups: { type: "Directory" }, config: opt("File"), dryRun: { type: "BOOLEAN_KIND", default: false }, now: opt("STRING_KIND") },
  },
  restore: {
    cache: "never",
    returns: "STRING_KIND",
    args: {
      backups: opt("Directory"),
      set: opt("STRING_KIND"),
      config: opt("File"),
      targetPg: opt("Service"),
      targetPgUser: { type: "STRING_KIND", default: "postgres" },
      targetPgPassword: opt("Secret"),
      targetRedis: opt("Service"),
      targetRedisUsername: opt("STRING_KIND"),
      targetRedisPassword: opt("Secret"),
      targetMinio: opt("Service"),
      targetMinioEndpoint: opt("STRING_KIND"),
      targetMinioAccessKey: opt("Secret"),
      targetMinioSecretKey: opt("Secret"),
      services: opt("[STRING_KIND]"),
      db: opt("[STRING_KIND]"),
      renameDb: opt("[STRING_KIND]"),
      globals: { type: "BOOLEAN_KIND", default: false },
      redisDb: opt("[INTEGER_KIND]"),
      keyPattern: opt("STRING_KIND"),
      bucket: opt("[STRING_KIND]"),
      prefix: opt("STRING_KIND"),
      dryRun: { type: "BOOLEAN_KIND", default: false },
      force: { type: "BOOLEAN_KIND", default: false },
      json: { type: "BOOLEAN_KIND", default: false },
      fromOffsite: { type: "BOOLEAN_KIND", default: false },
      ...OFFSITE_PULL,
    },
  },
  sandbox: {
    cache: "never",
    returns: "Directory",
    args: { postgresMajor: { type: "INTEGER_KIND", default: 17 }, redisVersion: { type: "STRING_KIND", default: "7.4" } },
  },
};

describe("the Dagger module as the SDK's introspector sees it", () => {
  it("has a module description", () => {
    expect(description).toMatch(/^backup-drill: provable backups/);
  });

  it("exposes exactly these functions", () => {
    expect(Object.keys(fns).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.keys(EXPECTED))("%s: argument names, order, types, optionality and defaults", (name) => {
    const fn = fns[name]!;
    const want = EXPECTED[name]!;
    expect(Object.keys(fn.args)).toEqual(Object.keys(want.args));
    for (const [arg, spec] of Object.entries(want.args)) {
      const got = fn.args[arg]!;
      expect(got.type, `${name}.${arg}`).toBe(spec.type);
      // The engine makes an argument with a default optional; without one, only `?` does.
      expect(got.optional || got.default !== undefined, `${name}.${arg} optional`).toBe(spec.optional === true || spec.default !== undefined);
      expect(got.default, `${name}.${arg} default`).toEqual(spec.default);
    }
    expect(fn.returns).toBe(want.returns);
  });

  it.each(Object.keys(EXPECTED))("%s: cache policy", (name) => {
    expect(fns[name]!.cache).toBe(EXPECTED[name]!.cache);
  });

  it("every function that talks to servers or reads the clock is never cached (a call never returns a stale result)", () => {
    for (const name of ["backup", "check", "restoreDrill", "push", "verify", "freshness", "status", "prune", "restore", "sandbox"]) expect(fns[name]!.cache, name).toBe("never");
  });

  it("every function has a one-line summary and an `Example: dagger call` line naming itself", () => {
    for (const [name, fn] of Object.entries(fns)) {
      const [summary, ...rest] = fn.description.split("\n");
      expect(summary!.length, name).toBeGreaterThan(10);
      const kebab = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      expect(rest.join("\n"), name).toMatch(new RegExp(`Example: dagger call (--\\S+ )*${kebab}\\b`));
    }
  });

  it("every argument of every function and of the constructor has a description", () => {
    for (const fn of [...Object.values(fns), ctor]) {
      for (const [arg, a] of Object.entries(fn.args)) expect(a.description, `${fn.name}.${arg}`).toMatch(/\S{3,}/);
    }
  });

  it("the constructor takes the builder images, defaulting to the pinned ones (literals the introspector resolves)", () => {
    expect(ctor.args).toEqual({
      nodeImage: expect.objectContaining({ type: "STRING_KIND", default: NODE_IMAGE }),
      goImage: expect.objectContaining({ type: "STRING_KIND", default: GO_IMAGE }),
    });
  });

  it("the sandbox's defaults are the toolbox's default tool versions", () => {
    expect(fns.sandbox!.args.postgresMajor!.default).toBe(DEFAULT_POSTGRES_MAJOR);
    expect(fns.sandbox!.args.redisVersion!.default).toBe(DEFAULT_REDIS_VERSION);
  });
});

describe("the scan sees src/ alone, as the engine does", () => {
  it("a default imported from pipeline/ (defect 6 of the first engine run) is left unresolved by this scan, so the default checks above would catch it", async () => {
    const { scan } = await import("../node_modules/@dagger.io/dagger/dist/src/module/introspector/index.js");
    const dir = mkdtempSync(join(tmpdir(), "bd-scan-"));
    try {
      const files = copySrcAlone(dir);
      const index = files.find((f) => f.endsWith("index.ts"))!;
      const text = readFileSync(index, "utf8");
      writeFileSync(
        index,
        text
          .replace('import { dag, object', 'import { MC_VERSION } from "../pipeline/versions.js";\nimport { dag, object')
          .replace('nodeImage: string = "node:20-bookworm-slim"', "nodeImage: string = MC_VERSION"),
      );
      const client = join(dir, "client.gen.ts");
      copyFileSync(fileURLToPath(new URL("../node_modules/@dagger.io/dagger/dist/src/api/client.gen.d.ts", import.meta.url)), client);
      const mod = await scan([...files, client], "backup-drill", false);
      const ctorArgs = JSON.parse(JSON.stringify((mod.objects.BackupDrill as unknown as { _constructor: { arguments: unknown } })._constructor.arguments)) as Record<string, { defaultValue?: unknown }>;
      expect(ctorArgs.nodeImage!.defaultValue).toBeUndefined();
      expect(ctorArgs.goImage!.defaultValue).toBe(GO_IMAGE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the introspector needs the generated client to resolve core types", () => {
  it("without a client.gen.ts among its inputs it cannot resolve Secret/Service/Directory (so the test above is not vacuous)", async () => {
    const { scan } = await import("../node_modules/@dagger.io/dagger/dist/src/module/introspector/index.js");
    const src = fileURLToPath(new URL("../src/index.ts", import.meta.url));
    await expect(scan([src], "backup-drill", false)).rejects.toThrow(/could not resolve type reference for (Service|Secret|Directory|File)/);
  });
});
