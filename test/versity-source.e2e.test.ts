/**
 * The object-store source on a second, independent S3 server: Versity
 * Gateway over a plain directory. A bucket it serves is backed up, verified,
 * drilled and restored into another Versity exactly like one MinIO serves.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeObjects, minioClient } from "../probes/minio.js";
import { DrillSummarySchema } from "../pipeline/drill-summary.js";
import { readListing } from "../pipeline/listing.js";
import { AWKWARD_KEYS, seedMinio } from "../pipeline/seed.js";
import { startVersity, type VersityServer } from "../pipeline/throwaway/versity.js";
import { runCli } from "./cli.js";
import { requireTools, useTempDir } from "./services/index.js";

const tmp = useTempDir("versity-source");

describe("a bucket served by Versity Gateway", () => {
  let source: VersityServer;
  let target: VersityServer;
  let seeded: Awaited<ReturnType<typeof seedMinio>>;
  let config: string;
  let env: Record<string, string>;
  const output = () => join(tmp(), "out");

  beforeAll(async () => {
    requireTools();
    [source, target] = await Promise.all([startVersity({ tools: {} }), startVersity({ tools: {} })]);
    // Versity keeps versions only with --versioning-dir: this source has none, so no versioned bucket.
    seeded = await seedMinio(minioClient({ ...source, region: "us-east-1" }, { partSize: 5 * 1024 * 1024 }), { versioned: false });
    config = join(tmp(), "config.json");
    writeFileSync(config, JSON.stringify({ output: output(), minio: { endpoint: source.endpoint, accessKey: "env:SRC_ACCESS", secretKey: "env:SRC_SECRET" } }));
    env = { SRC_ACCESS: source.accessKey.reveal(), SRC_SECRET: source.secretKey.reveal(), TGT_ACCESS: target.accessKey.reveal(), TGT_SECRET: target.secretKey.reveal() };
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("backs up with keys, content headers, user metadata and tags intact; verify, restore-drill and restore all pass", async () => {
    const b = await runCli(["backup", "--config", config, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    const setId: string = JSON.parse(b.stdout).id;
    const setDir = join(output(), setId);

    // Keys as the server holds them: "+" and "%" survive (a listing decoded as if the server had URL-encoded it loses them).
    const live = await describeObjects(minioClient({ ...source, region: "us-east-1" }), "assets");
    const listing = await readListing(join(setDir, "minio/assets.objects.jsonl"));
    expect(listing.map((e) => e.key).sort()).toEqual(live.map((o) => o.key).filter((k) => !k.startsWith(".backup-drill-canary/")).sort());
    for (const k of ["a+b=c.txt", "100%.txt", "with space.txt", "unicodé/ключ/文件.txt"]) expect(listing.map((e) => e.key), k).toContain(k);
    expect(AWKWARD_KEYS.length - seeded.rejected.length).toBeGreaterThan(0);
    const pdf = listing.find((e) => e.key === "docs/manual.pdf")!;
    expect(pdf).toMatchObject({
      contentType: "application/pdf",
      contentDisposition: 'attachment; filename="manual.pdf"',
      contentLanguage: "de-CH",
      userMetadata: { reviewed: "yes" },
      tags: { "owner team": "docs/ops@corp: +1", rev: "a=b+c" },
    });
    expect(listing.find((e) => e.key === "images/img-3.png")).toMatchObject({ contentType: "image/png", cacheControl: "public, max-age=86400", userMetadata: { "uploaded-by": "user-3" }, tags: { project: "shop", index: "3" } });
    expect(listing.find((e) => e.key === "videos/intro.mp4")!.size).toBe(12 * 1024 * 1024);
    expect(listing.filter((e) => e.marker).map((e) => e.key).sort()).toEqual(["empty-folder/", "folder/"]);

    expect((await runCli(["verify", "--config", config], { env })).code).toBe(0);
    const d = await runCli(["restore-drill", "--config", config, "--json"], { env });
    expect(d.code, d.stdout + d.stderr).toBe(0);
    const summary = DrillSummarySchema.parse(JSON.parse(d.stdout));
    expect(summary.ok).toBe(true);
    expect(new Set(summary.services.minio!.checks.map((c) => c.check))).toEqual(new Set(["object-count", "object-keys", "object-content", "object-attributes", "canary"]));

    // Restore into another Versity: the drill's checks run against it.
    const r = await runCli(
      ["restore", "--config", config, "--target-minio-endpoint", target.endpoint, "--target-minio-access-key", "env:TGT_ACCESS", "--target-minio-secret-key", "env:TGT_SECRET", "--json"],
      { env },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, totals: { failed: 0 } });
    const restored = await describeObjects(minioClient({ ...target, region: "us-east-1" }), "assets");
    expect(restored.find((o) => o.key === "docs/manual.pdf")!.attrs.tags).toEqual({ "owner team": "docs/ops@corp: +1", rev: "a=b+c" });
  });
});
