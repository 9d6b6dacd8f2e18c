import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { z } from "zod";
import { TextFileWriter } from "./store/fsync.js";

/**
 * minio/<bucket>.objects.jsonl: one line per object (per version and delete
 * marker for a versioned bucket), holding what `mc mirror` loses
 * (Content-Type, Content-Encoding, Cache-Control, user metadata, tags,
 * folder/ markers) and where the object's bytes are in the set.
 */
export const ObjectEntrySchema = z.strictObject({
  key: z.string(),
  size: z.number().int().min(0),
  etag: z.string(),
  lastModified: z.string(),
  contentType: z.string().optional(),
  contentEncoding: z.string().optional(),
  cacheControl: z.string().optional(),
  contentDisposition: z.string().optional(),
  contentLanguage: z.string().optional(),
  userMetadata: z.record(z.string(), z.string()),
  tags: z.record(z.string(), z.string()),
  /** A zero-byte "folder/" object: it has no file in the set. */
  marker: z.boolean(),
  /** Set-relative path of the object's bytes; null for a marker. */
  path: z.string().nullable(),
  /** Why the key is not stored at its own path (then `path` is under <bucket>.unmapped/). */
  pathReason: z.string().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /**
   * Versioned buckets only: the source's version ID (information: no S3 server lets a restore
   * choose version IDs), whether it was the key's latest, and whether it is a delete marker.
   * A versioned listing holds every version and delete marker, by key, oldest first.
   */
  versionId: z.string().optional(),
  isLatest: z.boolean().optional(),
  deleteMarker: z.boolean().optional(),
});
export type ObjectEntry = z.infer<typeof ObjectEntrySchema>;

/** JSONL text of a listing; each entry is validated on the way out, as readListing will on the way in. */
export function listingText(entries: ObjectEntry[]): string {
  return entries.map((e) => `${JSON.stringify(ObjectEntrySchema.parse(e))}\n`).join("");
}

/** Read and validate a listing; a bad line throws naming its line number. */
export async function readListing(path: string): Promise<ObjectEntry[]> {
  const out: ObjectEntry[] = [];
  await forEachListed(path, (e) => {
    out.push(e);
  });
  return out;
}

/** One line of a listing, validated; the error names the line. */
function parseListed(line: string, n: number): ObjectEntry {
  let parsed;
  try {
    parsed = ObjectEntrySchema.safeParse(JSON.parse(line));
  } catch (err) {
    throw new Error(`line ${n}: not JSON: ${(err as Error).message}`);
  }
  if (!parsed.success) throw new Error(`line ${n}: ${parsed.error.issues[0]!.path.join(".")}: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** The entries of a listing as it is read, each validated, with its line number (memory: one line). */
async function* parsedLines(input: Readable): AsyncGenerator<[ObjectEntry, number]> {
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (line !== "") yield [parseListed(line, n), n];
  }
}

/**
 * Stream a listing line by line (memory: one line), validating each entry
 * as readListing does; returns the file's size and sha256, read in the same
 * pass, so a caller can check the listing against a manifest.
 */
export async function forEachListed(path: string, fn: (e: ObjectEntry, line: number) => void | Promise<void>): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  const input = createReadStream(path);
  input.on("data", (chunk) => {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  });
  for await (const [e, n] of parsedLines(input)) await fn(e, n);
  return { size, sha256: hash.digest("hex") };
}

/** A listing's entries one at a time, validated as readListing does (memory: one line). */
export async function* listedEntries(path: string): AsyncGenerator<ObjectEntry> {
  for await (const [e] of parsedLines(createReadStream(path))) yield e;
}

/**
 * A listing written as a stream (memory: a batch of lines), each entry
 * validated as readListing will, the bytes hashed as they are written, the
 * file fsynced when closed. close() gives the file's size and sha256.
 */
export class ListingWriter {
  private constructor(
    readonly file: TextFileWriter,
    readonly hash: Hash,
  ) {}

  static async open(path: string): Promise<ListingWriter> {
    const hash = createHash("sha256");
    return new ListingWriter(await TextFileWriter.open(path, { tap: (b) => hash.update(b) }), hash);
  }

  async write(e: ObjectEntry): Promise<void> {
    await this.file.write(`${JSON.stringify(ObjectEntrySchema.parse(e))}\n`);
  }

  async close(): Promise<{ size: number; sha256: string }> {
    const size = await this.file.close({ durable: true });
    return { size, sha256: this.hash.digest("hex") };
  }

  /** Close without caring for the result (an error path). */
  async abandon(): Promise<void> {
    await this.file.abandon();
  }
}

/** Write a whole listing (see ListingWriter). */
export async function writeListing(path: string, entries: Iterable<ObjectEntry>): Promise<{ size: number; sha256: string }> {
  const w = await ListingWriter.open(path);
  try {
    for (const e of entries) await w.write(e);
  } catch (err) {
    await w.abandon();
    throw err;
  }
  return w.close();
}
