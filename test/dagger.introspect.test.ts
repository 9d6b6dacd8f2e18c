import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { GOLANG_IMAGE, NODE_IMAGE } from "../pipeline/versions.js";
import { moduleFunctions, type ScannedFunction } from "./dagger-module.js";

/**
 * What `dagger functions` / `dagger call --help` would show, from the SDK's
 * own introspector (`scan()`), run the way the engine runs it: over src/
 * plus a client.gen.ts (here the 0.21.9 package's generated client, copied
 * to that name), without loading the module.
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

const EXPECTED: Record<string, { args: Record<string, ArgSpec>; returns: string; cache?: string }> = {
  version: { args: {}, returns: "STRING_KIND" },
  backup: {
    cache: "never",
    returns: "Directory",
    args: {
      pg: { type: "Service", optional: true },
      pgUser: { type: "STRING_KIND", default: "postgres" },
      pgPassword: { type: "Secret", optional: true },
      pgDatabases: { type: "[STRING_KIND]", optional: true },
      pgGlobals: { type: "BOOLEAN_KIND", default: false },
      pgJobs: { type: "INTEGER_KIND", default: 2 },
      pgImage: { type: "STRING_KIND", optional: true },
      redis: { type: "Service", optional: true },
      redisUsername: { type: "STRING_KIND", optional: true },
      redisPassword: { type: "Secret", optional: true },
      redisSampleSize: { type: "INTEGER_KIND", default: 1000 },
      redisSamplePatterns: { type: "[STRING_KIND]", default: [] },
      redisBgsaveTimeout: { type: "STRING_KIND", default: "10m" },
      redisImage: { type: "STRING_KIND", optional: true },
      minio: { type: "Service", optional: true },
      minioAccessKey: { type: "Secret", optional: true },
      minioSecretKey: { type: "Secret", optional: true },
      minioBuckets: { type: "[STRING_KIND]", optional: true },
      minioCanary: { type: "BOOLEAN_KIND", default: true },
      minioRegion: { type: "STRING_KIND", default: "us-east-1" },
    },
  },
  restoreDrill: {
    cache: "never",
    returns: "Directory",
    args: {
      backups: { type: "Directory" },
      set: { type: "STRING_KIND", optional: true },
      config: { type: "File", optional: true },
      pgImage: { type: "STRING_KIND", optional: true },
      redisImage: { type: "STRING_KIND", optional: true },
    },
  },
  verify: {
    returns: "STRING_KIND",
    args: {
      backups: { type: "Directory" },
      set: { type: "STRING_KIND", optional: true },
      pgImage: { type: "STRING_KIND", optional: true },
      redisImage: { type: "STRING_KIND", optional: true },
    },
  },
  freshness: {
    cache: "never",
    returns: "Directory",
    args: {
      backups: { type: "Directory" },
      config: { type: "File", optional: true },
      deep: { type: "BOOLEAN_KIND", default: false },
      now: { type: "STRING_KIND", optional: true },
    },
  },
  sandbox: {
    cache: "never",
    returns: "Directory",
    args: {
      pgImage: { type: "STRING_KIND", default: "postgres:17" },
      redisImage: { type: "STRING_KIND", default: "redis:7.4" },
    },
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

  it("backup, restoreDrill and sandbox are never cached (a call never returns a stale set)", () => {
    for (const name of ["backup", "restoreDrill", "sandbox"]) expect(fns[name]!.cache).toBe("never");
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

  it("the constructor takes the builder images, defaulting to the pinned ones", () => {
    expect(ctor.args).toEqual({
      nodeImage: expect.objectContaining({ type: "STRING_KIND", default: NODE_IMAGE }),
      goImage: expect.objectContaining({ type: "STRING_KIND", default: GOLANG_IMAGE }),
      mcImage: expect.objectContaining({ type: "STRING_KIND", optional: true, default: undefined }),
      minioImage: expect.objectContaining({ type: "STRING_KIND", optional: true, default: undefined }),
    });
  });
});

describe("the introspector needs the generated client to resolve core types", () => {
  it("without a client.gen.ts among its inputs it cannot resolve Secret/Service/Directory (so the test above is not vacuous)", async () => {
    const { scan } = await import("../node_modules/@dagger.io/dagger/dist/src/module/introspector/index.js");
    const src = fileURLToPath(new URL("../src/index.ts", import.meta.url));
    await expect(scan([src], "backup-drill", false)).rejects.toThrow(/could not resolve type reference for (Service|Secret|Directory|File)/);
  });
});
