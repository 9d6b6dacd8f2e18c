import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { IntegrityError, OperationError } from "../errors.js";
import { MANIFEST_FILE, MANIFEST_SHA_FILE, SUMS_FILE, loadManifest } from "../manifest.js";
import type { Progress } from "../progress.js";
import { requireVerified } from "../verify.js";
import type { ToolPaths } from "../config.js";
import { checkRecipients, encryptStream } from "./age.js";
import type { Destination } from "./config.js";
import { openJournal } from "./journal.js";
import { readRecord } from "./remote-set.js";
import { buildRecord, FILES_DIR, objectKeyFor, recordBytes, RECORD_FILE, RECORD_SHA_FILE, REMOTE_DRILL_FILE, setPrefix, type StoredFile } from "./record.js";
import { abortIncompleteUploads, checkBucket, listRemote, normalizeEtag, putSmall, remoteError, remoteFor, removeKeys, type Remote } from "./s3.js";
import { eachLimit } from "../concurrency.js";
import { HashCounter } from "./streams.js";

export type PushOptions = {
  output: string;
  tools: ToolPaths;
  progress: Progress;
  signal?: AbortSignal;
  now?: () => Date;
};

export type PushResult = {
  ok: true;
  destination: string;
  setId: string;
  manifestSha256: string;
  encrypted: boolean;
  /** Every file was already there (record included): nothing was written. */
  alreadyComplete: boolean;
  files: number;
  uploaded: { files: number; bytes: number };
  skipped: { files: number; bytes: number };
  storedBytes: number;
  abortedUploads: number;
  removedStrays: number;
  durationMs: number;
  pushedAt: string;
};

type SetFile = { path: string; size: number };

/**
 * Copy a sealed set to a destination. The local set is verified first (a
 * corrupt set is never pushed: exit 3). Files go up side by side, encrypted
 * on the way when the destination has recipients; objects a previous,
 * interrupted push completed (journal + listing agree on size and ETag) are
 * kept. manifest.json goes up after every other file, and the record after
 * it: a copy without a record is incomplete and never read as a set.
 */
export async function pushSet(dest: Destination, set: { id: string; dir: string }, opts: PushOptions): Promise<PushResult> {
  const t0 = Date.now();
  const now = opts.now ?? (() => new Date());
  const encrypted = dest.recipients.length > 0;
  if (encrypted) checkRecipients(dest.recipients, `offsite.destinations.${dest.name}.encrypt.recipients`);
  await requireVerified(set.id, set.dir, { tools: opts.tools, progress: opts.progress, formatChecks: false });
  const { manifest, sha256: manifestSha256 } = await loadManifest(set.dir);

  const r = remoteFor(dest);
  await checkBucket(r);
  const prefix = setPrefix(dest.prefix, set.id);
  opts.progress.info(`push ${set.id} -> ${dest.name}: ${manifest.files.length + 3} files${encrypted ? ", encrypted (age)" : ""}`);

  const abortedUploads = await abortIncompleteUploads(r, prefix);
  if (abortedUploads > 0) opts.progress.info(`push: aborted ${abortedUploads} multipart upload(s) an interrupted push left`);
  const listed = new Map((await listRemote(r, prefix)).map((o) => [o.key.slice(prefix.length), o]));

  // What is known to be up there: the record of an earlier complete push of this very set, and the journal.
  const journal = await openJournal(opts.output, dest.name, set.id, manifestSha256, dest.recipients);
  const known = new Map(journal.entries);
  const old = listed.has(RECORD_FILE) ? await readRecord(r, set.id).catch(() => undefined) : undefined;
  const sameRecipients = (old?.encryption?.recipients ?? []).slice().sort().join(",") === dest.recipients.slice().sort().join(",");
  if (old && old.manifestSha256 === manifestSha256 && sameRecipients) for (const f of old.files) known.set(f.path, f);

  const metaFiles: SetFile[] = [];
  for (const p of [SUMS_FILE, MANIFEST_SHA_FILE, MANIFEST_FILE]) metaFiles.push({ path: p, size: (await stat(join(set.dir, p))).size });
  const files: SetFile[] = [...manifest.files.map((f) => ({ path: f.path, size: f.size })), metaFiles[0]!, metaFiles[1]!];
  const last = metaFiles[2]!;

  const plan = [...files, last].map((f) => {
    const key = objectKeyFor(dest.prefix, set.id, f.path, encrypted);
    const k = known.get(f.path);
    const o = listed.get(key);
    const keep = k !== undefined && k.key === key && k.size === f.size && o !== undefined && o.size === k.storedSize && o.etag === normalizeEtag(k.etag);
    return { file: f, key, keep: keep ? k : undefined };
  });
  const toUpload = plan.filter((p) => !p.keep);
  const stored = new Map<string, StoredFile>();
  for (const p of plan) if (p.keep) stored.set(p.file.path, p.keep);
  let uploadedBytes = 0;
  const unchanged = toUpload.length === 0 && old !== undefined && old.manifestSha256 === manifestSha256 && sameRecipients && listed.has(RECORD_SHA_FILE);
  if (unchanged) {
    opts.progress.info(`push ${set.id} -> ${dest.name}: already complete`);
    return result(true, old!.pushedAt);
  }
  // The copy is about to change: it must not count as complete until the new record is written.
  if (listed.has(RECORD_SHA_FILE) || listed.has(RECORD_FILE)) await removeKeys(r, [`${prefix}${RECORD_SHA_FILE}`, `${prefix}${RECORD_FILE}`]);

  const active = new Set<Readable>();
  const onAbort = () => active.forEach((s) => s.destroy(new OperationError("push cancelled")));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const upload = async (p: (typeof plan)[number]) => {
      const f = await uploadFile(r, set.dir, prefix + p.key, p.file, dest.recipients, active);
      const entry: StoredFile = { path: p.file.path, size: p.file.size, key: p.key, ...f };
      stored.set(p.file.path, entry);
      uploadedBytes += f.storedSize;
      await journal.append(entry);
    };
    const body = toUpload.filter((p) => p.file.path !== MANIFEST_FILE);
    let done = 0;
    await eachLimit(body, dest.concurrency, async (p) => {
      await upload(p);
      if (++done % 100 === 0) opts.progress.info(`push ${set.id}: ${done}/${body.length} files uploaded`);
    }, () => opts.signal?.aborted === true);
    if (opts.signal?.aborted) throw new OperationError("push cancelled");
    // manifest.json last: until it is up, nothing reads the copy as a set.
    const manifestUpload = toUpload.find((p) => p.file.path === MANIFEST_FILE);
    if (manifestUpload) await upload(manifestUpload);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }

  // Objects under files/ that are not this set's (an earlier push with other recipients) would be "extra".
  const wanted = new Set(plan.map((p) => p.key));
  const strays = [...listed.keys()].filter((k) => k.startsWith(FILES_DIR) && !wanted.has(k)).map((k) => prefix + k);
  if (strays.length > 0) await removeKeys(r, strays);
  // A drill of an earlier, different copy says nothing about this one.
  if (old && old.manifestSha256 !== manifestSha256 && listed.has(REMOTE_DRILL_FILE)) await removeKeys(r, [`${prefix}${REMOTE_DRILL_FILE}`]);

  const pushedAt = now().toISOString();
  const record = buildRecord({
    setId: set.id,
    manifestSha256,
    setStartedAt: manifest.startedAt,
    setFinishedAt: manifest.finishedAt,
    services: (["postgres", "redis", "minio"] as const).filter((s) => manifest.services[s] !== undefined),
    pushedAt,
    encryption: encrypted ? { format: "age", recipients: [...dest.recipients] } : null,
    files: plan.map((p) => stored.get(p.file.path)!),
  });
  const { bytes, sha } = recordBytes(record);
  await putSmall(r, `${prefix}${RECORD_FILE}`, bytes);
  await putSmall(r, `${prefix}${RECORD_SHA_FILE}`, sha, "text/plain");
  await journal.remove();
  opts.progress.info(`push ${set.id} -> ${dest.name}: complete, ${toUpload.length} uploaded, ${plan.length - toUpload.length} already there`);
  return { ...result(false, pushedAt), removedStrays: strays.length };

  function result(alreadyComplete: boolean, at: string): PushResult {
    const skipped = plan.filter((p) => p.keep);
    return {
      ok: true,
      destination: dest.name,
      setId: set.id,
      manifestSha256,
      encrypted,
      alreadyComplete,
      files: plan.length,
      uploaded: { files: alreadyComplete ? 0 : toUpload.length, bytes: uploadedBytes },
      skipped: { files: skipped.length, bytes: skipped.reduce((a, p) => a + p.keep!.storedSize, 0) },
      storedBytes: plan.reduce((a, p) => a + (stored.get(p.file.path) ?? p.keep)!.storedSize, 0),
      abortedUploads,
      removedStrays: 0,
      durationMs: Date.now() - t0,
      pushedAt: at,
    };
  }
}

/** Stream one file up (encrypting on the way when there are recipients); returns what was stored. */
async function uploadFile(
  r: Remote,
  setDir: string,
  key: string,
  f: SetFile,
  recipients: string[],
  active: Set<Readable>,
): Promise<{ storedSize: number; storedSha256: string; etag: string }> {
  const source = createReadStream(join(setDir, f.path), { highWaterMark: 1024 * 1024 });
  active.add(source);
  try {
    const { stream, size } = recipients.length > 0 ? await encryptStream(recipients, source, f.size) : { stream: source as Readable, size: f.size };
    const counter = new HashCounter();
    // minio-js does not see an error of the stream it reads (it pipes it): fail the upload on one ourselves.
    const failed = new Promise<never>((_, reject) => {
      stream.once("error", reject);
      counter.once("error", reject);
    });
    failed.catch(() => {});
    const put = r.client.putObject(r.dest.bucket, key, stream.pipe(counter), size, { "Content-Type": "application/octet-stream" });
    put.catch(() => {});
    const res = await Promise.race([put, failed]).catch((err: unknown) => {
      stream.destroy();
      throw remoteError(r.dest, `cannot upload ${f.path}`, err);
    });
    if (counter.bytes !== size) throw new IntegrityError(`${f.path}: ${counter.bytes} bytes streamed, expected ${size} (the file changed while it was pushed?)`);
    return { storedSize: size, storedSha256: counter.digest(), etag: normalizeEtag(res.etag) };
  } finally {
    active.delete(source);
  }
}
