import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { minioClient } from "../probes/minio.js";
import { readListing, type ObjectEntry } from "../pipeline/listing.js";
import { ManifestSchema, type Manifest } from "../pipeline/manifest.js";
import { VERSIONED_BUCKET } from "../pipeline/seed.js";
import { runCli } from "./cli.js";
import { secretEnv, useServers, useTempDir, writeCliConfig } from "./services/index.js";

/**
 * Incremental objects against a real MinIO: a second backup after 1 % of a
 * bucket's objects changed fetches exactly those (by the manifest's counts
 * and by the files' inode numbers: every other object file is the very
 * inode of the first set), links the rest, and stays self-contained: with
 * the first set deleted it verifies and drills on its own.
 */
const servers = useServers();
const tmp = useTempDir("incremental");
const BULK = "bulk";
const ino = (path: string) => statSync(path).ino;
const N = 200;

describe("incremental object backups", () => {
  let config: string;
  let output: string;
  let env: Record<string, string>;
  let first: { id: string; dir: string; manifest: Manifest };
  let second: { id: string; dir: string; manifest: Manifest };
  const changed = [`obj/${String(17).padStart(4, "0")}.bin`, `obj/${String(150).padStart(4, "0")}.bin`];

  async function backup(): Promise<{ id: string; dir: string; manifest: Manifest }> {
    const r = await runCli(["backup", "--config", config, "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const id = JSON.parse(r.stdout).id as string;
    const dir = join(output, id);
    return { id, dir, manifest: ManifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"))) };
  }

  const bucket = (m: Manifest, name: string) => m.services.minio!.buckets.find((b) => b.name === name)!;

  beforeAll(async () => {
    const client = minioClient({ ...servers().minio, region: "us-east-1" });
    await client.makeBucket(BULK);
    for (let i = 0; i < N; i++) {
      const body = randomBytes(1000 + i);
      await client.putObject(BULK, `obj/${String(i).padStart(4, "0")}.bin`, body, body.length, { "Content-Type": "application/octet-stream" });
    }
    output = join(tmp(), "out");
    // MinIO only: the object path is what this file is about. Keep every set (retention off): the test deletes by hand.
    const full = JSON.parse(readFileSync(writeCliConfig(tmp(), servers(), output, { retention: "off" }), "utf8"));
    config = join(tmp(), "minio-only.json");
    writeFileSync(config, JSON.stringify({ output, retention: "off", minio: full.minio }));
    env = secretEnv(servers());
    first = await backup();

    // 1 % of the bulk bucket changes: two objects get new bytes (one the same size); a version is added to the versioned bucket.
    await client.putObject(BULK, changed[0]!, randomBytes(1017), 1017, { "Content-Type": "application/octet-stream" });
    await client.putObject(BULK, changed[1]!, randomBytes(4000), 4000, { "Content-Type": "application/octet-stream" });
    await client.putObject(VERSIONED_BUCKET, "reports/q1.csv", Buffer.from("quarter,revenue\nq1,4000\n"), 24, { "Content-Type": "text/csv" });
    second = await backup();
  });

  it("the first backup fetches everything and links nothing", () => {
    const b = bucket(first.manifest, BULK);
    expect(b.transfer).toEqual({ linked: { objects: 0, bytes: 0 }, copied: { objects: 0, bytes: 0 }, fetched: { objects: N, bytes: b.bytes } });
  });

  it("the second fetches exactly the changed objects and links the others, by the manifest's counts", () => {
    const b = bucket(second.manifest, BULK);
    const changedBytes = 1017 + 4000;
    expect(b.transfer).toEqual({
      base: first.id,
      linked: { objects: N - 2, bytes: b.bytes - changedBytes },
      copied: { objects: 0, bytes: 0 },
      fetched: { objects: 2, bytes: changedBytes },
    });
    // The other buckets did not change: all linked, awkward keys and unmapped ones included.
    for (const name of ["assets", "logs"]) {
      const t = bucket(second.manifest, name).transfer!;
      expect(t.fetched, name).toEqual({ objects: 0, bytes: 0 });
      expect(t.linked.objects, name).toBeGreaterThan(0);
    }
    // The versioned bucket: one new version fetched; the version it pushed down is linked at its new path.
    const v = bucket(second.manifest, VERSIONED_BUCKET);
    expect(v.transfer!.fetched).toEqual({ objects: 1, bytes: 24 });
    expect(v.transfer!.linked.objects).toBe(bucket(first.manifest, VERSIONED_BUCKET).transfer!.fetched.objects);
  });

  it("and by the files' inode numbers: only the changed objects are new files", async () => {
    const before = new Map((await readListing(join(first.dir, `minio/${BULK}.objects.jsonl`))).map((e) => [e.key, e]));
    const after = await readListing(join(second.dir, `minio/${BULK}.objects.jsonl`));
    expect(after).toHaveLength(N);
    const fresh = after.filter((e) => ino(join(second.dir, e.path!)) !== ino(join(first.dir, before.get(e.key)!.path!))).map((e) => e.key);
    expect(fresh.sort()).toEqual([...changed].sort());
    for (const e of after) {
      if (changed.includes(e.key)) expect(e.sha256).not.toBe(before.get(e.key)!.sha256);
      else expect(e).toEqual({ ...before.get(e.key)!, lastModified: e.lastModified }); // carried over as it was
    }
    // Versions: the pushed-down version of reports/q1.csv is the first set's latest file, linked under .versions/.
    const vBefore = await readListing(join(first.dir, `minio/${VERSIONED_BUCKET}.objects.jsonl`));
    const vAfter = await readListing(join(second.dir, `minio/${VERSIONED_BUCKET}.objects.jsonl`));
    const q1 = (l: ObjectEntry[]) => l.filter((e) => e.key === "reports/q1.csv");
    const oldLatest = q1(vBefore).find((e) => e.isLatest)!;
    const nowOld = q1(vAfter).find((e) => e.versionId === oldLatest.versionId)!;
    expect(nowOld.isLatest).toBe(false);
    expect(nowOld.path).toMatch(/\.versions\//);
    expect(ino(join(second.dir, nowOld.path!))).toBe(ino(join(first.dir, oldLatest.path!)));
  });

  it("each set is self-contained: with the first deleted, the second verifies and drills", async () => {
    const v1 = await runCli(["verify", "--config", config, "--set", first.id], { env });
    expect(v1.code, v1.stdout + v1.stderr).toBe(0);
    rmSync(first.dir, { recursive: true, force: true });
    const v2 = await runCli(["verify", "--config", config, "--set", second.id, "--json"], { env });
    expect(v2.code, v2.stdout).toBe(0);
    expect(JSON.parse(v2.stdout)).toMatchObject({ ok: true, filesChecked: second.manifest.files.length });
    const d = await runCli(["restore-drill", "--config", config, "--set", second.id, "--json"], { env });
    expect(d.code, d.stderr + d.stdout.slice(0, 3000)).toBe(0);
    const summary = JSON.parse(d.stdout);
    const content = summary.services.minio.checks.filter((c: { check: string }) => c.check === "object-content");
    expect(content.map((c: { subject: string; ok: boolean }) => [c.subject, c.ok]).sort()).toEqual([["archive", true], ["assets", true], [BULK, true], ["logs", true]]);
    expect(content.find((c: { subject: string }) => c.subject === BULK).expected).toBe(N);
  });

  it("a third backup links from the second (the newest set), now the only one", async () => {
    const third = await backup();
    const t = bucket(third.manifest, BULK).transfer!;
    expect(t).toMatchObject({ base: second.id, linked: { objects: N }, fetched: { objects: 0, bytes: 0 } });
  });
});

describe("linkOrCopy", () => {
  it("hard-links on the same filesystem, copies across filesystems, and refuses a base file that is not what its manifest says", async () => {
    const { linkOrCopy } = await import("../pipeline/store/link.js");
    const dir = join(tmp(), "link");
    mkdirSync(dir, { recursive: true });
    const from = join(dir, "from");
    writeFileSync(from, "bytes");
    expect(await linkOrCopy(from, join(dir, "a/b/linked"), 5)).toBe("linked");
    expect(ino(join(dir, "a/b/linked"))).toBe(ino(from));
    expect(await linkOrCopy(from, join(dir, "stale"), 6)).toBe("stale");
    expect(await linkOrCopy(join(dir, "gone"), join(dir, "stale2"), 5)).toBe("stale");
    // /dev/shm is a tmpfs: another filesystem than the test's temp dir, so link(2) says EXDEV.
    const shm = join("/dev/shm", `backup-drill-link-${process.pid}`);
    writeFileSync(shm, "other fs");
    try {
      expect(statSync(shm).dev).not.toBe(statSync(dir).dev);
      expect(await linkOrCopy(shm, join(dir, "copied"), 8)).toBe("copied");
      expect(readFileSync(join(dir, "copied"), "utf8")).toBe("other fs");
      expect(ino(join(dir, "copied"))).not.toBe(ino(shm));
    } finally {
      rmSync(shm, { force: true });
    }
  });
});
