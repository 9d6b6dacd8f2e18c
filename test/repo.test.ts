import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { jsonSchemas } from "../pipeline/schemas.js";
import { MC_MODULE, MC_VERSION, MINIO_MODULE, MINIO_VERSION } from "../pipeline/versions.js";

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), "utf8");

describe("repository files stay in step with the code", () => {
  it.each(Object.keys(jsonSchemas()))("schemas/%s matches the zod schema (npm run schemas)", (name) => {
    expect(JSON.parse(read(`schemas/${name}`))).toEqual(JSON.parse(JSON.stringify(jsonSchemas()[name])));
  });

  it("scripts/ensure-tools.sh pins the same mc and minio as pipeline/versions.ts", () => {
    const sh = read("scripts/ensure-tools.sh");
    expect(sh).toContain(`MC_MODULE="${MC_MODULE}"`);
    expect(sh).toContain(`MC_VERSION="${MC_VERSION}"`);
    expect(sh).toContain(`MINIO_MODULE="${MINIO_MODULE}"`);
    expect(sh).toContain(`MINIO_VERSION="${MINIO_VERSION}"`);
  });

  it("dagger.json names the module and the engine version", () => {
    expect(JSON.parse(read("dagger.json"))).toMatchObject({ name: "backup-drill", engineVersion: "v0.21.9", sdk: { source: "typescript" } });
  });

  it("the package does not depend on @dagger.io/dagger at run time", () => {
    const pkg = JSON.parse(read("package.json"));
    expect(Object.keys(pkg.dependencies)).not.toContain("@dagger.io/dagger");
  });
});
