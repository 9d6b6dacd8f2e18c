import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { IntegrityError } from "./errors.js";
import { checkpoint } from "./checkpoint.js";
import { parseSha256sums, sha256Hex } from "./hash.js";
import { writeFileAtomic } from "./store/fsync.js";
import { TOOL_VERSION } from "./version.js";

/**
 * restore-drill-summary.json: what a restore drill proved about one set. It
 * is the only file added to a sealed set. It is one file carrying its own
 * checksum (the `sha256` field, over the file's JSON without that field),
 * replaced atomically: a crash or a second drill can never leave a summary
 * and a checksum that disagree. Sets drilled by older versions have a
 * separate `.sha256` beside it, still read.
 */
export const DRILL_SUMMARY_FILE = "restore-drill-summary.json";
/** The separate checksum file of older versions (read, then removed by the next drill). */
export const DRILL_SUMMARY_SHA_FILE = `${DRILL_SUMMARY_FILE}.sha256`;

const service = z.enum(["postgres", "redis", "minio"]);

export const DrillCheckSchema = z.strictObject({
  service,
  /** What kind of check: "row-count", "schema-roundtrip", "sanity-query", "keyspace", "key-value", "object", "canary", ... */
  check: z.string(),
  /** What it looked at: a table, a db, a key, an object. */
  subject: z.string(),
  ok: z.boolean(),
  expected: z.unknown(),
  actual: z.unknown(),
  durationMs: z.number().int().min(0),
  detail: z.string().optional(),
  /** A passing check with a caveat the operator must know: a source feature this set does not carry, a check that could not run. */
  warning: z.string().optional(),
});
export type DrillCheck = z.infer<typeof DrillCheckSchema>;

const ms = z.number().int().min(0);

export const DrillServiceProfileSchema = z
  .strictObject({
    serverStartMs: ms.optional().meta({ description: "Starting the throwaway server (for Redis: on the set's dump.rdb, which is its restore); absent for a target that was given." }),
    restoreMs: ms.meta({ description: "The restore itself (as restoreMs)." }),
    checksMs: ms.meta({ description: "All checks (as checksMs)." }),
    checks: z
      .record(z.string(), z.strictObject({ count: z.number().int().min(0), ms }))
      .meta({ description: "Per kind of check: how many, and the wall time from the first one's start to the last one's end (kinds run side by side, so spans overlap)." }),
  })
  .meta({ description: "Where a service's drill time went." });
export type DrillServiceProfile = z.infer<typeof DrillServiceProfileSchema>;

export const DrillServiceSchema = z.strictObject({
  ok: z.boolean(),
  /** Wall time to restore this service into an empty server: the RTO a team can expect. */
  restoreMs: ms,
  /** Wall time of the checks after the restore. */
  checksMs: ms,
  target: z.strictObject({ version: z.string() }),
  checks: z.array(DrillCheckSchema),
  profile: DrillServiceProfileSchema.optional(),
});
export type DrillService = z.infer<typeof DrillServiceSchema>;

export const DrillSummarySchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    setId: z.string(),
    manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
    tool: z.strictObject({ name: z.literal("backup-drill"), version: z.string() }),
    runner: z.enum(["host", "dagger"]),
    startedAt: z.iso.datetime({ offset: true }),
    finishedAt: z.iso.datetime({ offset: true }),
    ok: z.boolean(),
    services: z.strictObject({
      postgres: DrillServiceSchema.optional(),
      redis: DrillServiceSchema.optional(),
      minio: DrillServiceSchema.optional(),
    }),
    totals: z.strictObject({
      checks: z.number().int().min(0),
      passed: z.number().int().min(0),
      failed: z.number().int().min(0),
      restoreMs: z.number().int().min(0),
    }),
    profile: z
      .strictObject({
        verifyMs: ms.meta({ description: "Checking the set's checksums before anything is restored (the throwaway servers start meanwhile)." }),
        wallMs: ms.meta({ description: "The whole drill, from its start to the summary." }),
      })
      .optional()
      .meta({ description: "Where the drill's time went; each service's own profile is under services.<name>.profile. Absent in drills of older versions." }),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional()
      .meta({ description: "sha256 of this document serialised (JSON, 2-space indent, newline) without this field. Written last in the object." }),
  })
  .meta({ title: "backup-drill restore drill summary" });
export type DrillSummary = z.infer<typeof DrillSummarySchema>;

function bodyBytes(summary: Omit<DrillSummary, "sha256">): Buffer {
  return Buffer.from(`${JSON.stringify(summary, null, 2)}\n`);
}

/** Write the summary, its checksum inside, into a set directory in one atomic replace. Returns the checksum. */
export async function writeDrillSummary(setDir: string, summary: DrillSummary): Promise<string> {
  const { sha256: _old, ...body } = DrillSummarySchema.parse(summary);
  void _old;
  const sha = sha256Hex(bodyBytes(body));
  checkpoint("drill:summary");
  await writeFileAtomic(join(setDir, DRILL_SUMMARY_FILE), `${JSON.stringify({ ...body, sha256: sha }, null, 2)}\n`);
  await rm(join(setDir, DRILL_SUMMARY_SHA_FILE), { force: true }).catch(() => {});
  return sha;
}

/**
 * The set's drill summary, undefined when no drill has run on it. Throws
 * IntegrityError when the summary does not match its embedded sha256 (or, for
 * older sets, a separate .sha256 file) or its schema.
 */
export async function readDrillSummary(setDir: string): Promise<DrillSummary | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(setDir, DRILL_SUMMARY_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new IntegrityError(`${DRILL_SUMMARY_FILE}: unreadable: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new IntegrityError(`${DRILL_SUMMARY_FILE}: not valid JSON: ${(err as Error).message}`);
  }
  const embedded = json && typeof json === "object" ? (json as { sha256?: unknown }).sha256 : undefined;
  if (typeof embedded === "string") {
    const { sha256: _s, ...body } = json as Record<string, unknown>;
    void _s;
    if (sha256Hex(bodyBytes(body as Omit<DrillSummary, "sha256">)) !== embedded) throw new IntegrityError(`${DRILL_SUMMARY_FILE}: does not match its own sha256`);
  } else {
    let expected: string | undefined;
    try {
      expected = parseSha256sums(await readFile(join(setDir, DRILL_SUMMARY_SHA_FILE), "utf8"))[0]?.sha256;
    } catch {
      expected = undefined;
    }
    if (!expected || expected !== sha256Hex(bytes)) {
      throw new IntegrityError(`${DRILL_SUMMARY_FILE}: carries no sha256 and does not match ${DRILL_SUMMARY_SHA_FILE}`);
    }
  }
  const parsed = DrillSummarySchema.safeParse(json);
  if (!parsed.success) {
    throw new IntegrityError(`${DRILL_SUMMARY_FILE}: ${parsed.error.issues[0]!.path.join(".")}: ${parsed.error.issues[0]!.message}`);
  }
  // The checksum is the file's, not the drill's: the summary is what the drill returned.
  const { sha256: _sum, ...summary } = parsed.data;
  void _sum;
  return summary;
}

/** The summary of a drill from each service's outcome: totals, overall verdict, stack restore time. */
export function buildDrillSummary(input: {
  setId: string;
  manifestSha256: string;
  runner: DrillSummary["runner"];
  startedAt: string;
  finishedAt: string;
  services: { name: "postgres" | "redis" | "minio"; result: DrillService }[];
  profile?: DrillSummary["profile"];
}): DrillSummary {
  const all = input.services.flatMap((s) => s.result.checks);
  return {
    schemaVersion: 1,
    setId: input.setId,
    manifestSha256: input.manifestSha256,
    tool: { name: "backup-drill", version: TOOL_VERSION },
    runner: input.runner,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    ok: all.every((c) => c.ok),
    services: Object.fromEntries(input.services.map((s) => [s.name, s.result])),
    totals: {
      checks: all.length,
      passed: all.filter((c) => c.ok).length,
      failed: all.filter((c) => !c.ok).length,
      // Services restore side by side: the stack is back when the slowest is.
      restoreMs: input.services.reduce((a, s) => Math.max(a, s.result.restoreMs), 0),
    },
    ...(input.profile ? { profile: input.profile } : {}),
  };
}
