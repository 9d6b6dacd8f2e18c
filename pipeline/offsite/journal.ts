import { appendFile, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { StoredFileSchema, type StoredFile } from "./record.js";

/**
 * The push journal: one line per object whose upload completed, appended as
 * it completes. A rerun after an interruption trusts an object at the
 * destination only when the journal has it with the same size and ETag the
 * listing shows (its ciphertext sha256 is known only once it was streamed up).
 * Kept on the pushing host at <output>/.offsite/<destination>/<set id>.jsonl,
 * removed once the record is written. Losing it costs a re-upload, never a
 * wrong copy.
 */

const JournalLineSchema = StoredFileSchema.extend({
  manifestSha256: z.string(),
  recipients: z.string(),
});

export type Journal = {
  /** Entries recorded for this manifest and these recipients, by path. */
  entries: Map<string, StoredFile>;
  append(f: StoredFile): Promise<void>;
  remove(): Promise<void>;
};

export const JOURNAL_DIR = ".offsite";

export async function openJournal(output: string, dest: string, setId: string, manifestSha256: string, recipients: string[]): Promise<Journal> {
  const dir = join(output, JOURNAL_DIR, dest);
  const path = join(dir, `${setId}.jsonl`);
  const who = [...recipients].sort().join(",");
  const entries = new Map<string, StoredFile>();
  let text = "";
  try {
    text = await readFile(path, "utf8");
  } catch {
    text = "";
  }
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const p = JournalLineSchema.safeParse(JSON.parse(line));
      if (!p.success || p.data.manifestSha256 !== manifestSha256 || p.data.recipients !== who) continue;
      const { manifestSha256: _m, recipients: _r, ...f } = p.data;
      entries.set(f.path, f);
    } catch {
      // a line cut off by a crash: ignored
    }
  }
  let made = false;
  return {
    entries,
    append: async (f) => {
      if (!made) {
        await mkdir(dir, { recursive: true });
        made = true;
      }
      await appendFile(path, `${JSON.stringify({ ...f, manifestSha256, recipients: who })}\n`);
    },
    remove: async () => {
      await rm(path, { force: true });
    },
  };
}
