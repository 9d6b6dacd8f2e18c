import { z } from "zod";
import { ConfigSchema } from "./config.js";
import { DrillSummarySchema } from "./drill-summary.js";
import { ObjectEntrySchema } from "./listing.js";
import { ManifestSchema } from "./manifest.js";

/** JSON Schemas of the files backup-drill reads and writes, keyed by their file name under schemas/. */
export function jsonSchemas(): Record<string, unknown> {
  return {
    // io: "input": defaults make fields optional in the file a user writes.
    "config.schema.json": z.toJSONSchema(ConfigSchema, { io: "input" }),
    "manifest.schema.json": z.toJSONSchema(ManifestSchema),
    "listing.schema.json": z.toJSONSchema(ObjectEntrySchema),
    "restore-drill-summary.schema.json": z.toJSONSchema(DrillSummarySchema),
  };
}
