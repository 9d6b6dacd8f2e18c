import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { sha256Hex, sha256sumLine } from "../pipeline/hash.js";
import { listingText, readListing, writeListing, type ObjectEntry } from "../pipeline/listing.js";
import { buildManifest, loadManifest, manifestBytes, writeManifest, type FileEntry } from "../pipeline/manifest.js";

/**
 * The set's big files are written as streams, a batch at a time (a set may
 * list millions of files): the bytes must be exactly those of the whole
 * document, across many batches, and the digests those of the bytes written.
 */

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "bd-streamed-"));
  made.push(d);
  return d;
};

/** Paths that sha256sum escapes, non-ASCII names, and enough of them to span several 1 MiB batches. */
function files(n: number): FileEntry[] {
  const odd = ["a\\b.bin", "line\nbreak.bin", "ключ.bin", 'quote".bin'];
  return Array.from({ length: n }, (_, i) => ({ path: `minio/assets/${String(i).padStart(6, "0")}-${odd[i % odd.length]}`, size: i, sha256: sha256Hex(String(i)) })).sort((a, b) => (a.path < b.path ? -1 : 1));
}

const manifestOf = (list: FileEntry[]) =>
  buildManifest({ id: "2026-11-30T10-00-00Z", runner: "host", startedAt: "2026-11-30T10:00:00.000Z", finishedAt: "2026-11-30T10:01:00.000Z", services: {}, steps: [], files: list });

describe("streamed writes of a set's big files", () => {
  it.each([0, 1, 20_000])("writeManifest with %i files: manifest.json, SHA256SUMS and manifest.sha256 byte for byte as the whole documents", async (n) => {
    const dir = tempDir();
    const manifest = manifestOf(files(n));
    const sha = await writeManifest(dir, manifest);
    const bytes = readFileSync(join(dir, "manifest.json"));
    expect(bytes.equals(manifestBytes(manifest))).toBe(true);
    expect(sha).toBe(sha256Hex(bytes));
    expect(readFileSync(join(dir, "SHA256SUMS"), "utf8")).toBe([...manifest.files.map((f) => sha256sumLine(f.sha256, f.path)), sha256sumLine(sha, "manifest.json")].join(""));
    expect(readFileSync(join(dir, "manifest.sha256"), "utf8")).toBe(sha256sumLine(sha, "manifest.json"));
    expect((await loadManifest(dir)).manifest).toEqual(manifest);
  });

  it("writeListing of entries spanning several batches: the bytes of listingText, their size and sha256, read back as written", async () => {
    const dir = tempDir();
    const entries: ObjectEntry[] = files(20_000).map((f) => ({
      key: f.path.slice("minio/assets/".length),
      size: f.size,
      etag: f.sha256.slice(0, 32),
      lastModified: "2026-11-30T10:00:00.000Z",
      userMetadata: { owner: "ops" },
      tags: {},
      marker: false,
      path: f.path,
      sha256: f.sha256,
    }));
    const path = join(dir, "assets.objects.jsonl");
    const got = await writeListing(path, entries);
    const bytes = readFileSync(path);
    expect(bytes.length).toBeGreaterThan(2 * 1024 * 1024);
    expect(bytes.toString("utf8")).toBe(listingText(entries));
    expect(got).toEqual({ size: bytes.length, sha256: sha256Hex(bytes) });
    expect(await readListing(path)).toEqual(entries);
  });
});
