import { createHash } from "node:crypto";
import { z } from "zod";
import { IntegrityError } from "../errors.js";
import { parseSha256sums, sha256Hex, sha256sumLine } from "../hash.js";
import { isSetId } from "../store/ids.js";
import { TOOL_VERSION } from "../version.js";

/**
 * Where a set lives at a destination, and the offsite record that says what
 * a complete copy holds:
 *
 *   <prefix><set id>/files/<path>[.age]   every file of the set, manifest.json uploaded last
 *   <prefix><set id>/offsite.json         the record, written after every file: the copy counts only once it is there
 *   <prefix><set id>/offsite.json.sha256  sha256sum line of the record
 *   <prefix><set id>/restore-drill.json   the outcome of the last `restore-drill --from` this destination
 *
 * The record is clear text (verify, prune and freshness read it without the
 * key): paths, sizes, and the stored objects' sha256 and ETag. With
 * encryption on, the plaintext sha256 of every file is in the set's own
 * manifest.json, stored encrypted and bound to the record by manifestSha256:
 * a plaintext hash in the clear would let anyone with read access confirm a
 * guess of a small file's content.
 */

export const RECORD_FILE = "offsite.json";
export const RECORD_SHA_FILE = "offsite.json.sha256";
export const REMOTE_DRILL_FILE = "restore-drill.json";
export const FILES_DIR = "files/";
export const AGE_SUFFIX = ".age";
/** S3 allows keys up to 1024 bytes; longer set paths are stored by sha256(path). */
const MAX_KEY_BYTES = 1024;

/** Key prefix of one set at a destination (prefix is "" or ends in "/"). */
export function setPrefix(prefix: string, setId: string): string {
  return `${prefix}${setId}/`;
}

/** Key of one set file, relative to the set's prefix. */
export function objectKeyFor(prefix: string, setId: string, path: string, encrypted: boolean): string {
  const suffix = encrypted ? AGE_SUFFIX : "";
  const key = `${FILES_DIR}${path}${suffix}`;
  if (Buffer.byteLength(setPrefix(prefix, setId) + key) <= MAX_KEY_BYTES) return key;
  return `${FILES_DIR}.long/${sha256Hex(path)}${suffix}`;
}

/** The set id a listed key belongs to, and the key relative to the set, or undefined for keys that are not ours. */
export function splitKey(prefix: string, key: string): { setId: string; rel: string } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf("/");
  if (slash < 0) return undefined;
  const setId = rest.slice(0, slash);
  if (!isSetId(setId)) return undefined;
  return { setId, rel: rest.slice(slash + 1) };
}

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const StoredFileSchema = z.strictObject({
  path: z.string().min(1).meta({ description: "Path in the set." }),
  size: z.number().int().min(0).meta({ description: "Plaintext size (the set's manifest has its sha256)." }),
  key: z.string().min(1).meta({ description: "Object key relative to the set's prefix." }),
  storedSize: z.number().int().min(0),
  storedSha256: sha256.meta({ description: "sha256 of the stored object (the ciphertext when encrypted)." }),
  etag: z.string().meta({ description: "ETag the server gave the stored object." }),
});
export type StoredFile = z.infer<typeof StoredFileSchema>;

export const OffsiteRecordSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    setId: z.string(),
    manifestSha256: sha256.meta({ description: "sha256 of the set's plaintext manifest.json." }),
    setStartedAt: z.iso.datetime({ offset: true }),
    setFinishedAt: z.iso.datetime({ offset: true }),
    services: z.array(z.enum(["postgres", "redis", "minio"])),
    pushedAt: z.iso.datetime({ offset: true }),
    tool: z.strictObject({ name: z.literal("backup-drill"), version: z.string() }),
    encryption: z.union([z.strictObject({ format: z.literal("age"), recipients: z.array(z.string()).min(1) }), z.null()]),
    files: z.array(StoredFileSchema),
    totals: z.strictObject({ files: z.number().int().min(0), bytes: z.number().int().min(0), storedBytes: z.number().int().min(0) }),
  })
  .meta({ title: "backup-drill offsite record" });
export type OffsiteRecord = z.infer<typeof OffsiteRecordSchema>;

export function recordBytes(r: OffsiteRecord): { bytes: Buffer; sha: Buffer } {
  const bytes = Buffer.from(`${JSON.stringify(OffsiteRecordSchema.parse(r), null, 2)}\n`);
  return { bytes, sha: Buffer.from(sha256sumLine(sha256Hex(bytes), RECORD_FILE)) };
}

export function buildRecord(input: Omit<OffsiteRecord, "schemaVersion" | "tool" | "totals">): OffsiteRecord {
  return {
    schemaVersion: 1,
    ...input,
    tool: { name: "backup-drill", version: TOOL_VERSION },
    totals: {
      files: input.files.length,
      bytes: input.files.reduce((a, f) => a + f.size, 0),
      storedBytes: input.files.reduce((a, f) => a + f.storedSize, 0),
    },
  };
}

/** Trust a record only when it matches its .sha256, its schema and its set id; IntegrityError naming what failed. */
export function parseRecord(setId: string, bytes: Buffer, shaText: string | undefined): OffsiteRecord {
  if (shaText === undefined) throw new IntegrityError(`${RECORD_SHA_FILE}: missing`);
  let expected: string | undefined;
  try {
    expected = parseSha256sums(shaText).find((l) => l.path === RECORD_FILE)?.sha256;
  } catch {
    expected = undefined;
  }
  if (!expected) throw new IntegrityError(`${RECORD_SHA_FILE}: malformed`);
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== expected) throw new IntegrityError(`${RECORD_FILE}: checksum mismatch (${RECORD_SHA_FILE} says ${expected.slice(0, 12)}…, record is ${actual.slice(0, 12)}…)`);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new IntegrityError(`${RECORD_FILE}: not valid JSON: ${(err as Error).message}`);
  }
  const parsed = OffsiteRecordSchema.safeParse(json);
  if (!parsed.success) throw new IntegrityError(`${RECORD_FILE}: ${parsed.error.issues[0]!.path.join(".") || "(top level)"}: ${parsed.error.issues[0]!.message}`);
  if (parsed.data.setId !== setId) throw new IntegrityError(`${RECORD_FILE}: names set ${parsed.data.setId}, stored under ${setId}`);
  return parsed.data;
}

/** What `restore-drill --from` leaves at the destination: the verdict, no data values. */
export const RemoteDrillSchema = z.strictObject({
  schemaVersion: z.literal(1),
  setId: z.string(),
  manifestSha256: sha256,
  ok: z.boolean(),
  startedAt: z.iso.datetime({ offset: true }),
  finishedAt: z.iso.datetime({ offset: true }),
  services: z.strictObject({ postgres: z.boolean().optional(), redis: z.boolean().optional(), minio: z.boolean().optional() }),
  totals: z.strictObject({ checks: z.number().int().min(0), passed: z.number().int().min(0), failed: z.number().int().min(0), restoreMs: z.number().int().min(0) }),
});
export type RemoteDrill = z.infer<typeof RemoteDrillSchema>;
