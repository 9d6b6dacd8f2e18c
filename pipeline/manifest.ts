import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { IntegrityError } from "./errors.js";
import { parseSha256sums, sha256Hex, sha256sumLine } from "./hash.js";
import { hostname } from "node:os";
import { checkpoint } from "./checkpoint.js";
import { writeFileDurable, writeStreamDurable } from "./store/fsync.js";
import { TOOL_VERSION } from "./version.js";

export const MANIFEST_FILE = "manifest.json";
export const MANIFEST_SHA_FILE = "manifest.sha256";
export const SUMS_FILE = "SHA256SUMS";
export const SCHEMA_VERSION = 1;

const iso = z.iso.datetime({ offset: true });
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const FileEntrySchema = z.strictObject({
  path: z.string().min(1),
  size: z.number().int().min(0),
  sha256,
});

export const TableFactsSchema = z.strictObject({
  schema: z.string(),
  name: z.string(),
  kind: z
    .literal("matview")
    .optional()
    .meta({ description: "A materialized view; absent for an ordinary table." }),
  rows: z.number().int().min(0).meta({
    description:
      "Rows the restore must give back: a table's rows; for a populated materialized view, the rows its query returns in the backup's snapshot (what pg_restore's REFRESH recreates); 0 when not populated.",
  }),
  populated: z.boolean().optional().meta({ description: "Materialized views: whether it holds data (false: WITH NO DATA, must come back unpopulated)." }),
  storedRows: z
    .number()
    .int()
    .min(0)
    .optional()
    .meta({ description: "Materialized views: the rows it held at backup time (information; differs from rows when it was not refreshed since its tables changed)." }),
  bytes: z.number().int().min(0),
});

export const LargeObjectFactsSchema = z
  .strictObject({
    count: z.number().int().min(1),
    bytes: z.number().int().min(0),
    digest: sha256.meta({ description: 'sha256 of one "<oid> <size> <md5>" line per large object, in oid order.' }),
  })
  .meta({ description: "Large objects (pg_largeobject) in the backup's snapshot; absent when the database has none." });

export const PostgresFactsSchema = z.strictObject({
  serverVersion: z.string(),
  serverVersionNum: z.number().int(),
  systemIdentifier: z.string(),
  pgDumpVersion: z.string(),
  compression: z
    .string()
    .optional()
    .meta({ description: "postgres.compression the data files were dumped with (none, gzip[:level], lz4[:level], zstd[:level]); absent in sets of versions that did not record it (pg_dump's default, gzip)." }),
  jobs: z.number().int().min(1).optional().meta({ description: "pg_dump --jobs the dump ran with." }),
  globals: z.string().optional().meta({ description: "Path of pg_dumpall --globals-only output, when taken." }),
  databases: z.array(
    z.strictObject({
      name: z.string(),
      dir: z.string(),
      schemaFile: z.string(),
      sizeBytes: z.number().int().min(0),
      tables: z.array(TableFactsSchema),
      largeObjects: LargeObjectFactsSchema.optional(),
    }),
  ),
});

export const RedisSampleSchema = z.strictObject({
  db: z.number().int().min(0),
  key: z.string().meta({ description: "The key; base64 when keyEncoding is base64." }),
  keyEncoding: z.enum(["utf8", "base64"]),
  type: z.string(),
  digest: sha256,
  ttlMs: z.number().int().meta({ description: "PTTL when read from the snapshot; -1 when the key has no expiry." }),
});

const KeyspaceSchema = z.array(z.strictObject({ db: z.number().int().min(0), keys: z.number().int().min(0), expires: z.number().int().min(0) }));

export const RedisFunctionLibrarySchema = z.strictObject({
  name: z.string(),
  engine: z.string(),
  codeSha256: sha256,
  functions: z.array(z.strictObject({ name: z.string(), flags: z.array(z.string()) })),
});

export const RedisStreamGroupsSchema = z.strictObject({
  db: z.number().int().min(0),
  key: z.string().meta({ description: "The stream's key; base64 when keyEncoding is base64." }),
  keyEncoding: z.enum(["utf8", "base64"]),
  groups: z.array(
    z.strictObject({
      name: z.string(),
      lastDeliveredId: z.string(),
      pending: z.number().int().min(0),
      consumers: z.number().int().min(0),
    }),
  ),
});

export const RedisFactsSchema = z.strictObject({
  version: z.string(),
  runId: z.string(),
  role: z.string(),
  keyspace: KeyspaceSchema.meta({
    description: "Keys per db in dump.rdb itself (read from the snapshot loaded into a throwaway server): what the drill checks.",
  }),
  snapshot: z
    .strictObject({
      pulledAt: iso.meta({ description: "When redis-cli --rdb finished pulling the snapshot." }),
      describedWith: z.string().meta({ description: "The redis-server version that loaded dump.rdb to read the expectations from it." }),
    })
    .optional(),
  live: z
    .strictObject({
      at: iso,
      keyspace: KeyspaceSchema,
      drift: z
        .array(z.strictObject({ db: z.number().int().min(0), keys: z.number().int(), expires: z.number().int() }))
        .meta({ description: "Snapshot minus live per db (negative when keys went away): writes between the request and the snapshot; information, never a failure." }),
    })
    .optional()
    .meta({ description: "The source's own keyspace when the snapshot was requested (information)." }),
  bgsave: z
    .strictObject({
      lastsaveBefore: z.number().int(),
      lastsaveAfter: z.number().int(),
      status: z.string(),
      waitedMs: z.number().int().min(0),
      joinedRunning: z.boolean().meta({ description: "A BGSAVE was already running and was waited for." }),
    })
    .optional()
    .meta({ description: "Sets taken before snapshots were described from dump.rdb: the BGSAVE waited for." }),
  rdb: z.string(),
  rdbCheck: z.literal("ok"),
  sample: z.array(RedisSampleSchema),
  functions: z.array(RedisFunctionLibrarySchema).optional().meta({ description: "FUNCTION libraries in dump.rdb, by name." }),
  streamGroups: z
    .array(RedisStreamGroupsSchema)
    .optional()
    .meta({ description: "Every stream in dump.rdb that has consumer groups, with its groups." }),
});

const CountSchema = z.strictObject({ objects: z.number().int().min(0), bytes: z.number().int().min(0) });

export const BucketFactsSchema = z.strictObject({
  name: z.string(),
  dir: z.string(),
  listing: z.string(),
  objects: z.number().int().min(0).meta({ description: "Lines in the listing: objects, or for a versioned bucket every version and delete marker." }),
  bytes: z.number().int().min(0),
  markers: z.number().int().min(0).meta({ description: "Zero-byte folder/ marker objects (no file; in the listing only)." }),
  unmapped: z
    .number()
    .int()
    .min(0)
    .meta({ description: "Objects whose key is not a safe relative path; stored by sha256(key) under <bucket>.unmapped/." }),
  canary: z
    .strictObject({
      ok: z.boolean(),
      key: z.string(),
      sha256,
      bytes: z.number().int(),
      durationMs: z.number().int(),
      versionId: z.string().optional().meta({ description: "The version the canary created and removed again (versioned buckets)." }),
    })
    .optional(),
  versioning: z
    .enum(["Enabled", "Suspended"])
    .optional()
    .meta({ description: "The bucket's versioning state; absent for a bucket that never had versioning. A versioned bucket's listing holds every version and delete marker." }),
  versions: z
    .strictObject({ keys: z.number().int().min(0), versions: z.number().int().min(0), deleteMarkers: z.number().int().min(0) })
    .optional()
    .meta({ description: "Versioned buckets: keys, object versions and delete markers in the listing (objects counts them all)." }),
  configs: z
    .strictObject({
      versioning: z.string().optional(),
      objectLock: z.string().optional(),
      lifecycle: z.string().optional(),
    })
    .optional()
    .meta({ description: "Bucket configurations as the server gave them (XML), put back by a restore: versioning, object lock, lifecycle." }),
  warnings: z
    .array(z.string())
    .optional()
    .meta({ description: "Bucket features this set does not carry, each named (policy, tags, encryption, replication, notifications, per-version retention)." }),
  transfer: z
    .strictObject({
      base: z.string().optional().meta({ description: "The set unchanged objects were taken from (absent: nothing was)." }),
      linked: CountSchema.meta({ description: "Objects (versions) equal to the base set's by key, size, ETag and attributes, hard-linked from it; checksums carried over from its manifest." }),
      copied: CountSchema.meta({ description: "Objects equal to the base set's that were copied from it because a hard link was refused (another filesystem)." }),
      fetched: CountSchema.meta({ description: "Objects (versions) downloaded from the server: new, changed, or all of them in a full backup." }),
    })
    .optional()
    .meta({ description: "How the bucket's object files came into the set. Every set is self-contained: a linked file is the same bytes, and deleting either set leaves the other whole." }),
});

export const MinioFactsSchema = z.strictObject({
  endpoint: z.string().meta({ description: "Endpoint URL without credentials." }),
  buckets: z.array(BucketFactsSchema),
});

export const StepRecordSchema = z.strictObject({
  id: z.string(),
  service: z.enum(["postgres", "redis", "minio"]),
  argv: z.array(z.string()),
  exitCode: z.number().int(),
  durationMs: z.number().int().min(0),
});

export const ManifestSchema = z
  .strictObject({
    schemaVersion: z.literal(SCHEMA_VERSION),
    id: z.string(),
    tool: z.strictObject({ name: z.literal("backup-drill"), version: z.string() }),
    runner: z.enum(["host", "dagger"]),
    host: z.string(),
    startedAt: iso,
    finishedAt: iso,
    services: z.strictObject({
      postgres: PostgresFactsSchema.optional(),
      redis: RedisFactsSchema.optional(),
      minio: MinioFactsSchema.optional(),
    }),
    steps: z.array(StepRecordSchema),
    files: z.array(FileEntrySchema),
    totals: z.strictObject({ files: z.number().int().min(0), bytes: z.number().int().min(0) }),
  })
  .meta({ title: "backup-drill manifest" });

export type Manifest = z.infer<typeof ManifestSchema>;
export type FileEntry = z.infer<typeof FileEntrySchema>;
export type PostgresFacts = z.infer<typeof PostgresFactsSchema>;
export type RedisFacts = z.infer<typeof RedisFactsSchema>;
export type RedisSample = z.infer<typeof RedisSampleSchema>;
export type RedisFunctionLibrary = z.infer<typeof RedisFunctionLibrarySchema>;
export type RedisStreamGroups = z.infer<typeof RedisStreamGroupsSchema>;
export type TableFacts = z.infer<typeof TableFactsSchema>;
export type LargeObjectFacts = z.infer<typeof LargeObjectFactsSchema>;
export type MinioFacts = z.infer<typeof MinioFactsSchema>;
export type BucketFacts = z.infer<typeof BucketFactsSchema>;

/** A manifest from a run's parts: tool, host, step records and totals are filled in here, the same for both runners. */
export function buildManifest(input: {
  id: string;
  runner: Manifest["runner"];
  startedAt: string;
  finishedAt: string;
  services: Manifest["services"];
  steps: { id: string; service: "postgres" | "redis" | "minio"; argv: string[]; exitCode: number; durationMs: number }[];
  files: FileEntry[];
}): Manifest {
  return {
    schemaVersion: SCHEMA_VERSION,
    id: input.id,
    tool: { name: "backup-drill", version: TOOL_VERSION },
    runner: input.runner,
    host: hostname(),
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    services: input.services,
    steps: input.steps.map((s) => ({ id: s.id, service: s.service, argv: s.argv, exitCode: s.exitCode, durationMs: s.durationMs })),
    files: input.files,
    totals: { files: input.files.length, bytes: input.files.reduce((a, f) => a + f.size, 0) },
  };
}

/** Files in a set that the manifest does not list, because they describe or follow it. */
export const SET_META_FILES = new Set([MANIFEST_FILE, MANIFEST_SHA_FILE, SUMS_FILE]);

export function manifestBytes(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, "utf8");
}

/** Why a file entry is not a FileEntry (what the schema would say), or undefined: checked by hand, as a set may list millions. */
function fileEntryProblem(f: unknown): string | undefined {
  if (!f || typeof f !== "object" || Array.isArray(f)) return "expected an object";
  const e = f as Record<string, unknown>;
  for (const k of Object.keys(e)) if (k !== "path" && k !== "size" && k !== "sha256") return `${k}: unknown key`;
  if (typeof e.path !== "string" || e.path.length === 0) return "path: expected a non-empty string";
  if (typeof e.size !== "number" || !Number.isInteger(e.size) || e.size < 0) return "size: expected an integer >= 0";
  if (typeof e.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(e.sha256)) return "sha256: expected 64 hex digits";
  return undefined;
}

/**
 * The manifest checked against its schema: everything through zod but the
 * file list, whose entries are checked one by one in place (no copy of a
 * list that may hold millions). Returns the parsed manifest or the first
 * problem as "<path>: <message>".
 */
function checkManifest(json: unknown): { manifest: Manifest } | { problem: string } {
  const files = (json as { files?: unknown } | null)?.files;
  if (!Array.isArray(files)) return { problem: "files: expected an array" };
  const parsed = ManifestSchema.safeParse({ ...(json as object), files: [] });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { problem: `${issue.path.join(".") || "(top level)"}: ${issue.message}` };
  }
  for (let i = 0; i < files.length; i++) {
    const problem = fileEntryProblem(files[i]);
    if (problem) return { problem: `files.${i}.${problem}` };
  }
  return { manifest: { ...parsed.data, files: files as FileEntry[] } };
}

/** The bytes of one file entry exactly as JSON.stringify(manifest, null, 2) writes it inside "files". */
function fileEntryJson(f: FileEntry): string {
  return `    {\n      "path": ${JSON.stringify(f.path)},\n      "size": ${f.size},\n      "sha256": ${JSON.stringify(f.sha256)}\n    }`;
}

/**
 * Seal a staged set: manifest.json, then SHA256SUMS (every artifact and
 * manifest.json), then manifest.sha256 last — its presence means the rest
 * was written. Returns the manifest's sha256. Both big files are written as
 * streams (hashed on the way), byte for byte what manifestBytes() gives.
 */
export async function writeManifest(dir: string, manifest: Manifest): Promise<string> {
  const checked = checkManifest(manifest);
  if ("problem" in checked) throw new Error(`manifest: ${checked.problem}`);
  const parsed = checked.manifest;
  // The document around the file list, in the schema's key order, as JSON.stringify indents it.
  const MARK = "\u0000files\u0000";
  const [before, after] = JSON.stringify({ ...parsed, files: MARK }, null, 2).split(JSON.stringify(MARK)) as [string, string];
  checkpoint(`seal:${MANIFEST_FILE}`);
  const manifestSha = await writeStreamDurable(join(dir, MANIFEST_FILE), function* () {
    yield before;
    if (parsed.files.length === 0) yield "[]";
    else {
      yield "[\n";
      for (let i = 0; i < parsed.files.length; i++) yield `${fileEntryJson(parsed.files[i]!)}${i + 1 < parsed.files.length ? ",\n" : "\n"}`;
      yield "  ]";
    }
    yield `${after}\n`;
  });
  checkpoint(`seal:${SUMS_FILE}`);
  await writeStreamDurable(join(dir, SUMS_FILE), function* () {
    for (const f of parsed.files) yield sha256sumLine(f.sha256, f.path);
    yield sha256sumLine(manifestSha, MANIFEST_FILE);
  });
  checkpoint(`seal:${MANIFEST_SHA_FILE}`);
  await writeFileDurable(join(dir, MANIFEST_SHA_FILE), sha256sumLine(manifestSha, MANIFEST_FILE));
  return manifestSha;
}

/**
 * Load a set's manifest and trust it only after its own checksum and schema
 * check out. Throws IntegrityError naming the file and what is wrong.
 */
export async function loadManifest(dir: string): Promise<{ manifest: Manifest; sha256: string }> {
  let shaText: string;
  try {
    shaText = await readFile(join(dir, MANIFEST_SHA_FILE), "utf8");
  } catch {
    throw new IntegrityError(`${MANIFEST_SHA_FILE}: missing or unreadable in ${dir}`);
  }
  let expected: string;
  try {
    const lines = parseSha256sums(shaText);
    if (lines.length !== 1 || lines[0]!.path !== MANIFEST_FILE) throw new Error("expected one line for manifest.json");
    expected = lines[0]!.sha256;
  } catch (err) {
    throw new IntegrityError(`${MANIFEST_SHA_FILE}: malformed: ${(err as Error).message}`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, MANIFEST_FILE));
  } catch {
    throw new IntegrityError(`${MANIFEST_FILE}: missing or unreadable in ${dir}`);
  }
  const actual = sha256Hex(bytes);
  if (actual !== expected) {
    throw new IntegrityError(`${MANIFEST_FILE}: checksum mismatch (manifest.sha256 says ${expected.slice(0, 12)}…, file is ${actual.slice(0, 12)}…)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new IntegrityError(`${MANIFEST_FILE}: not valid JSON: ${(err as Error).message}`);
  }
  const version = (json as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (version !== SCHEMA_VERSION) {
    throw new IntegrityError(`${MANIFEST_FILE}: schemaVersion ${String(version)} is not supported (expected ${SCHEMA_VERSION})`);
  }
  const checked = checkManifest(json);
  if ("problem" in checked) throw new IntegrityError(`${MANIFEST_FILE}: ${checked.problem}`);
  return { manifest: checked.manifest, sha256: actual };
}
