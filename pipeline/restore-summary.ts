import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { DrillServiceSchema } from "./drill-summary.js";
import { writeFileAtomic } from "./store/fsync.js";
import { setIdFor } from "./store/ids.js";

/** restores/<timestamp>.json under the output root: what a restore into a real server did and proved. */
export const RESTORES_DIR = "restores";

const service = z.enum(["postgres", "redis", "minio"]);

export const RestoreSummarySchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    setId: z.string(),
    manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
    startedAt: z.iso.datetime({ offset: true }),
    finishedAt: z.iso.datetime({ offset: true }),
    dryRun: z.boolean(),
    force: z.boolean(),
    targets: z.strictObject({ postgres: z.string().optional(), redis: z.string().optional(), minio: z.string().optional() }),
    selection: z.strictObject({
      services: z.array(service),
      databases: z.array(z.string()).optional(),
      renames: z.record(z.string(), z.string()),
      globals: z.boolean(),
      redisDbs: z.array(z.number().int()).optional(),
      keyPattern: z.string().optional(),
      buckets: z.array(z.string()).optional(),
      prefix: z.string().optional(),
    }),
    plan: z.array(z.strictObject({ service, kind: z.enum(["create", "restore", "overwrite", "skip"]), subject: z.string(), detail: z.string() })),
    ok: z.boolean(),
    services: z.strictObject({
      postgres: DrillServiceSchema.optional(),
      redis: DrillServiceSchema.optional(),
      minio: DrillServiceSchema.optional(),
    }),
    totals: z.strictObject({ checks: z.number().int(), passed: z.number().int(), failed: z.number().int() }),
  })
  .meta({ title: "backup-drill restore summary" });
export type RestoreSummary = z.infer<typeof RestoreSummarySchema>;

export async function writeRestoreSummary(outputRoot: string, summary: RestoreSummary): Promise<string> {
  const dir = join(outputRoot, RESTORES_DIR);
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${setIdFor(new Date(summary.startedAt))}.json`);
  await writeFileAtomic(path, `${JSON.stringify(RestoreSummarySchema.parse(summary), null, 2)}\n`);
  return path;
}
