/**
 * Versioned buckets: every version and delete marker backed up, restored in
 * order and checked; versioning, object lock and lifecycle carried; what the
 * tool cannot carry named as a WARNING; the canary leaves nothing behind.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as Minio from "minio";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minioClient } from "../probes/minio.js";
import { DrillSummarySchema } from "../pipeline/drill-summary.js";
import { ManifestSchema } from "../pipeline/manifest.js";
import { checkMinio, restoreMinio } from "../pipeline/restore/minio.js";
import { loadSet } from "../pipeline/restore/set.js";
import { startMinio, type MinioServer } from "../pipeline/throwaway/servers.js";
import { runCli } from "./cli.js";
import { minioBucketSettingsFingerprint, minioFingerprint, minioVersionsFingerprint } from "./fingerprint.js";
import { requireTools, useTempDir } from "./services/index.js";

const tmp = useTempDir("minio-versions");

/** mc against one server as alias "m", with its own config dir. */
function mc(s: MinioServer, args: string[], input?: string): string {
  const url = new URL(s.endpoint);
  const dir = mkdtempSync(join(tmpdir(), "mc-test-"));
  try {
    return execFileSync("mc", args, {
      env: { ...process.env, MC_CONFIG_DIR: dir, MC_HOST_m: `${url.protocol}//${s.accessKey.reveal()}:${s.secretKey.reveal()}@${url.host}` },
      encoding: "utf8",
      input,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every version and delete marker under the canary prefix, in any bucket. */
function canaryLeftovers(s: MinioServer, buckets: string[]): string[] {
  return buckets.flatMap((b) => mc(s, ["ls", "--versions", "--recursive", `m/${b}/.backup-drill-canary/`]).split("\n").filter(Boolean));
}

async function seed(client: Minio.Client): Promise<void> {
  const put = async (bucket: string, key: string, body: string, meta: Record<string, string> = {}, tags?: Record<string, string>) => {
    const up = await client.putObject(bucket, key, Buffer.from(body), Buffer.byteLength(body), meta);
    if (tags) await client.setObjectTagging(bucket, key, tags, { versionId: up.versionId! });
  };
  await client.makeBucket("docs");
  await client.setBucketVersioning("docs", { Status: "Enabled" });
  for (let v = 1; v <= 3; v++) {
    await put("docs", "handbook.md", `# Handbook v${v}\n${"text ".repeat(v * 100)}`, { "Content-Type": v === 3 ? "text/markdown" : "text/plain", "X-Amz-Meta-Editor": `editor-${v}` }, { rev: String(v) });
  }
  await put("docs", "with space/ü.txt", "one");
  await put("docs", "with space/ü.txt", "two");
  await put("docs", "retired.txt", "retired");
  await client.removeObject("docs", "retired.txt");
  await put("docs", "folder/", "", { "Content-Type": "application/x-directory" });
  await client.setBucketLifecycle("docs", {
    Rule: [{ ID: "old-versions", Status: "Enabled", Filter: { Prefix: "" }, NoncurrentVersionExpiration: { NoncurrentDays: 90 } }],
  });

  await client.makeBucket("locked", "us-east-1", { ObjectLocking: true });
  await client.setObjectLockConfig("locked", { mode: "GOVERNANCE", unit: "Days", validity: 1 });
  await put("locked", "ledger.csv", "a,1\n");
  await put("locked", "ledger.csv", "a,1\nb,2\n");

  await client.makeBucket("paused");
  await client.setBucketVersioning("paused", { Status: "Enabled" });
  await put("paused", "state.json", '{"v":1}');
  await put("paused", "state.json", '{"v":2}');
  await client.setBucketVersioning("paused", { Status: "Suspended" });
  await put("paused", "state.json", '{"v":3}'); // the "null" version

  await client.makeBucket("public");
  await put("public", "logo.svg", "<svg/>", { "Content-Type": "image/svg+xml" });
  await client.setBucketPolicy(
    "public",
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: ["*"] }, Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::public/*"] }] }),
  );

  await client.makeBucket("plain");
  await put("plain", "readme.txt", "nothing special");
}

const VERSIONED = ["docs", "locked", "paused"];
const ALL = [...VERSIONED, "public", "plain"];

describe("MinIO: versioned buckets and the canary", () => {
  let source: MinioServer;
  let target: MinioServer;
  let src: Minio.Client;
  let dst: Minio.Client;
  let output: string;
  let config: string;
  let env: Record<string, string>;
  let backup: { code: number | null; stdout: string; stderr: string };
  let setId: string;

  const minioConfig = (s: MinioServer, prefix: string, extra: Record<string, unknown> = {}) => ({
    endpoint: s.endpoint,
    accessKey: `env:${prefix}_AK`,
    secretKey: `env:${prefix}_SK`,
    ...extra,
  });

  beforeAll(async () => {
    requireTools();
    [source, target] = await Promise.all([startMinio({ tools: {} }), startMinio({ tools: {} })]);
    src = minioClient({ ...source, region: "us-east-1" });
    dst = minioClient({ ...target, region: "us-east-1" });
    await seed(src);
    output = join(tmp(), "out");
    config = join(tmp(), "minio.json");
    writeFileSync(config, JSON.stringify({ output, minio: minioConfig(source, "MV_SRC") }));
    env = {
      MV_SRC_AK: source.accessKey.reveal(),
      MV_SRC_SK: source.secretKey.reveal(),
      MV_TGT_AK: target.accessKey.reveal(),
      MV_TGT_SK: target.secretKey.reveal(),
    };
    backup = await runCli(["backup", "--config", config, "--json"], { env });
    expect(backup.code, backup.stderr).toBe(0);
    setId = JSON.parse(backup.stdout).id;
  }, 300_000);
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("backs up every version and delete marker, oldest first, with the bucket's versioning, object lock and lifecycle", async () => {
    const m = ManifestSchema.parse(JSON.parse(readFileSync(join(output, setId, "manifest.json"), "utf8")));
    const bucket = (name: string) => m.services.minio!.buckets.find((b) => b.name === name)!;
    expect(bucket("docs")).toMatchObject({ versioning: "Enabled", versions: { keys: 4, versions: 7, deleteMarkers: 1 }, objects: 8 });
    expect(bucket("docs").configs!.lifecycle).toMatch(/<NoncurrentDays>90<\/NoncurrentDays>/);
    expect(bucket("locked")).toMatchObject({ versioning: "Enabled", versions: { keys: 1, versions: 2, deleteMarkers: 0 } });
    expect(bucket("locked").configs!.objectLock).toMatch(/<Mode>GOVERNANCE<\/Mode><Days>1<\/Days>/);
    expect(bucket("paused")).toMatchObject({ versioning: "Suspended", versions: { keys: 1, versions: 3, deleteMarkers: 0 } });
    expect(bucket("plain").versioning).toBeUndefined();
    expect(bucket("plain").configs).toBeUndefined();
    const listing = readFileSync(join(output, setId, "minio/docs.objects.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    expect(listing.filter((e) => e.key === "handbook.md").map((e) => [e.userMetadata.editor, e.tags.rev, e.isLatest])).toEqual([
      ["editor-1", "1", false],
      ["editor-2", "2", false],
      ["editor-3", "3", true],
    ]);
    expect(listing.filter((e) => e.key === "retired.txt").map((e) => e.deleteMarker)).toEqual([false, true]);
    expect(listing.find((e) => e.key === "handbook.md" && e.isLatest).path).toBe("minio/docs/handbook.md"); // the current version where a mirror would put it
  });

  it("names each bucket feature it cannot carry as a WARNING, and says nothing for buckets that have none", () => {
    const warnings = backup.stderr.split("\n").filter((l) => /WARNING/.test(l));
    expect(warnings.some((l) => /minio: public: WARNING bucket policy: not carried/.test(l))).toBe(true);
    expect(warnings.some((l) => /minio: locked: WARNING object lock: per-version retention periods and legal holds are not carried/.test(l))).toBe(true);
    expect(warnings.some((l) => /minio: locked: WARNING canary: not run: the bucket's default retention would keep the canary's object/.test(l))).toBe(true);
    expect(warnings.filter((l) => /minio: (docs|paused|plain):/.test(l))).toEqual([]);
  });

  it("the canary of backup and check removes exactly the versions it created: nothing is left under .backup-drill-canary/", async () => {
    expect(canaryLeftovers(source, ALL)).toEqual([]);
    const check = await runCli(["check", "--config", config], { env });
    expect(check.code, check.stderr).toBe(0);
    expect(canaryLeftovers(source, ALL)).toEqual([]);
  });

  it("restore-drill passes with per-key version checks, the configurations, and a WARN line for what is not carried", async () => {
    const r = await runCli(["restore-drill", "--config", config, "--json", "--quiet"], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const checks = DrillSummarySchema.parse(JSON.parse(r.stdout)).services.minio!.checks;
    expect(checks.find((c) => c.check === "object-versions" && c.subject === "docs")).toMatchObject({ ok: true, expected: "4 keys, 7 versions, 1 delete markers" });
    expect(checks.filter((c) => c.check === "bucket-config").map((c) => c.subject).sort()).toEqual(["docs lifecycle", "docs versioning", "locked object-lock", "locked versioning", "paused versioning"]);
    expect(checks.find((c) => c.check === "versioning" && c.subject === "paused")).toMatchObject({ expected: "Suspended", actual: "Suspended", ok: true });
    expect(checks.filter((c) => c.warning).map((c) => `${c.check} ${c.subject}`).sort()).toEqual(["canary locked", "not-carried locked", "not-carried public"]);
    const human = await runCli(["restore-drill", "--config", config, "--quiet"], { env });
    expect(human.stdout).toMatch(/^WARN\s+minio\s+not-carried\s+public/m);
    expect(human.stdout).toMatch(/ {2}WARN minio not-carried public: bucket policy: not carried by backup-drill/);
  });

  it("restore into an empty server gives back every version and delete marker in order, and the bucket settings (compared independently)", async () => {
    const targets = join(tmp(), "targets.json");
    writeFileSync(targets, JSON.stringify({ minio: minioConfig(target, "MV_TGT") }));
    const dry = await runCli(["restore", "--config", config, "--target-config", targets, "--dry-run"], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/create\s+minio\s+create bucket docs and put its 7 versions and 1 delete markers, oldest first; then its versioning, lifecycle configuration/);
    const r = await runCli(["restore", "--config", config, "--target-config", targets, "--quiet"], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const b of VERSIONED) {
      expect(await minioVersionsFingerprint(target, dst, b), b).toEqual(await minioVersionsFingerprint(source, src, b));
      expect(minioBucketSettingsFingerprint(target, b), b).toEqual(minioBucketSettingsFingerprint(source, b));
    }
    expect((await minioVersionsFingerprint(target, dst, "docs"))["handbook.md"]).toHaveLength(3);
    expect(minioBucketSettingsFingerprint(target, "locked")).toMatchObject({ retention: { enabled: "Enabled", mode: "GOVERNANCE" } });
    expect(minioBucketSettingsFingerprint(target, "paused")).toMatchObject({ versioning: "Suspended" });
    for (const b of ["public", "plain"]) expect(await minioFingerprint(dst, b)).toEqual(await minioFingerprint(src, b));
    expect(r.stdout).toMatch(/WARN minio not-carried public: bucket policy/); // the policy stays behind, and the restore says so
  });

  it("the drill's version checks catch a lost version on the target, naming the key", async () => {
    const other = await startMinio({ tools: {} });
    try {
      const t = { endpoint: other.endpoint, accessKey: other.accessKey, secretKey: other.secretKey, region: "us-east-1" };
      const set = await loadSet(setId, join(output, setId));
      await restoreMinio(set, t, { buckets: ["docs"] });
      const c = minioClient(t);
      const oldest = mc(other, ["ls", "--versions", "--json", "m/docs/handbook.md"]).split("\n").filter(Boolean).map((l) => JSON.parse(l)).find((v) => v.versionOrdinal === 1);
      await c.removeObject("docs", "handbook.md", { versionId: oldest.versionId });
      const checks = await checkMinio(set, t, { buckets: ["docs"] });
      expect(checks.find((x) => x.check === "object-versions")).toMatchObject({ ok: false, detail: expect.stringMatching(/handbook\.md \(2 versions, backup has 3\)/) });
    } finally {
      await other.stop();
    }
  });

  it("a canary that cannot remove its version fails the check (not swallowed), naming the bucket", async () => {
    const policy = {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["s3:*"], Resource: ["arn:aws:s3:::*"] },
        { Effect: "Deny", Action: ["s3:DeleteObjectVersion"], Resource: ["arn:aws:s3:::docs/*"] },
      ],
    };
    const file = join(tmp(), "no-version-delete.json");
    writeFileSync(file, JSON.stringify(policy));
    mc(source, ["admin", "user", "add", "m", "canaryuser", "canary-user-secret-1"]);
    mc(source, ["admin", "policy", "create", "m", "no-version-delete", file]);
    mc(source, ["admin", "policy", "attach", "m", "no-version-delete", "--user", "canaryuser"]);
    const cfg = join(tmp(), "restricted.json");
    writeFileSync(cfg, JSON.stringify({ output: join(tmp(), "restricted-out"), minio: minioConfig(source, "MV_RESTRICTED", { buckets: ["docs"] }) }));
    const restricted = { ...env, MV_RESTRICTED_AK: "canaryuser", MV_RESTRICTED_SK: "canary-user-secret-1" };
    try {
      const check = await runCli(["check", "--config", cfg], { env: restricted });
      expect(check.code).toBe(1);
      expect(check.stderr).toMatch(/check failed: minio: clean-up of \.backup-drill-canary\/\S+ version \S+ failed: AccessDenied/);
      const b = await runCli(["backup", "--config", cfg], { env: restricted });
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(/canary in bucket docs failed: clean-up of .* failed: AccessDenied/);
    } finally {
      // What the refused clean-ups left, removed with the root user.
      for (const line of mc(source, ["ls", "--versions", "--recursive", "--json", "m/docs/.backup-drill-canary/"]).split("\n").filter(Boolean)) {
        const v = JSON.parse(line);
        await src.removeObject("docs", `.backup-drill-canary/${v.key}`, { versionId: v.versionId });
      }
    }
    expect(canaryLeftovers(source, ["docs"])).toEqual([]);
  });
});
