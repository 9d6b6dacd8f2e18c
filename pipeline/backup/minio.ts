import { createReadStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { join } from "node:path";
import type * as Minio from "minio";
import {
  bucketFeatures,
  CANARY_PREFIX,
  hasDefaultRetention,
  listVersions,
  type ListedVersion,
  endpointLabel,
  addKeyFolders,
  FOLDER_KEY_PROBLEM,
  fetchObject,
  insideDir,
  listBucketNames,
  describeObjectPages,
  keyPathProblem,
  mapKeysToPaths,
  minioClient,
  minioError,
  attributesIfExists,
  runCanary,
  type ListedObject,
  type ObjectAttributes,
} from "../../probes/minio.js";
import { mapLimit } from "../concurrency.js";
import { OperationError, UserError } from "../errors.js";
import { sha256Hex, walkFiles } from "../hash.js";
import { ListingWriter, writeListing, type ObjectEntry } from "../listing.js";
import type { BucketFacts, FileEntry, MinioFacts } from "../manifest.js";
import { bucketLayout, pathSegment, planMinio } from "../plan.js";
import type { StepResult } from "../runners/host.js";
import { linkOrCopy } from "../store/link.js";
import { TextFileWriter } from "../store/fsync.js";
import { LiveHasher } from "../store/live-hash.js";
import { BaseBucket, findBaseSet, type BaseObject } from "./base-set.js";
import { phase, type ServiceBackupContext, type ServiceBackupResult } from "./context.js";

const EMPTY_SHA256 = sha256Hex("");
const STAT_CONCURRENCY = 16;

export async function backupMinio(ctx: ServiceBackupContext): Promise<ServiceBackupResult<MinioFacts>> {
  const src = ctx.cfg.minio!;
  const client = minioClient(src);
  const available = await phase("minio", "list buckets", () =>
    listBucketNames(client).catch((err) => {
      throw minioError(src, "cannot list buckets", err);
    }),
  );
  const buckets = src.buckets ?? available;
  for (const b of buckets) {
    if (!available.includes(b)) {
      throw new UserError(`minio.buckets: bucket "${b}" does not exist at ${endpointLabel(src)} (it has: ${available.join(", ") || "none"})`);
    }
  }
  ctx.progress.info(`minio: ${endpointLabel(src)}, buckets: ${buckets.join(", ") || "none"}`);
  const steps: StepResult[] = [];
  const files: FileEntry[] = [];
  const facts: MinioFacts = { endpoint: endpointLabel(src), buckets: [] };
  await mkdir(join(ctx.setDir, "minio"), { recursive: true });
  // Objects unchanged since the newest set are linked from it, not fetched again.
  const base = await phase("minio", "base set", () => findBaseSet(ctx.cfg.output, ctx.progress));
  for (const bucket of buckets) {
    const r = await phase("minio", `bucket ${bucket}`, async () => {
      let from: BaseBucket | undefined;
      try {
        from = base ? await BaseBucket.load(base, bucket) : undefined;
      } catch (err) {
        ctx.progress.warn(`minio: ${bucket}: not linking from set ${base!.id}: ${(err as Error).message}`);
      }
      return backupBucket(ctx, client, bucket, from);
    });
    steps.push(...r.steps);
    files.push(...r.files);
    facts.buckets.push(r.facts);
  }
  return { facts, steps, files };
}

type BucketBackup = { facts: BucketFacts; steps: StepResult[]; files: FileEntry[] };

async function backupBucket(ctx: ServiceBackupContext, client: Minio.Client, bucket: string, base: BaseBucket | undefined): Promise<BucketBackup> {
  const src = ctx.cfg.minio!;
  const features = await bucketFeatures(client, bucket).catch((err) => {
    throw minioError(src, `cannot read the configuration of ${bucket}`, err);
  });
  const r = features.versioning ? await backupVersions(ctx, client, bucket, base) : await backupObjects(ctx, client, bucket, base);
  const warnings = [...features.warnings];
  let canary: BucketFacts["canary"];
  if (src.canary && hasDefaultRetention(features.configs.objectLock)) {
    warnings.push("canary: not run: the bucket's default retention would keep the canary's object");
  } else if (src.canary) {
    const c = await runCanary(client, bucket, { versioning: features.versioning });
    if (!c.ok) throw new OperationError(`canary in bucket ${bucket} failed: ${c.error}`);
    canary = { ok: c.ok, key: c.key, sha256: c.sha256, bytes: c.bytes, durationMs: c.durationMs, ...(c.versionId ? { versionId: c.versionId } : {}) };
  }
  for (const w of warnings) ctx.progress.warn(`minio: ${bucket}: WARNING ${w}`);
  const configs = Object.keys(features.configs).length > 0 ? { configs: features.configs } : {};
  return {
    ...r,
    facts: {
      ...r.facts,
      ...(canary ? { canary } : {}),
      ...(features.versioning ? { versioning: features.versioning } : {}),
      ...configs,
      ...(warnings.length ? { warnings } : {}),
    },
  };
}

/**
 * Below this share of the bucket's bytes unchanged since the base set, a
 * full mirror (mc, parallel) beats linking the few and fetching the many
 * one by one.
 */
const LINK_MIN_SHARE = 0.5;

/**
 * An unversioned bucket: one listing with attributes, then the bytes.
 * Incremental when a base set holds at least half the bytes unchanged: those
 * objects are linked from it and the rest fetched by us. Otherwise mirrored
 * by mc (when every key is a safe path), each file hashed as soon as mc has
 * put it in place; or fetched by us.
 *
 * Memory stays flat in the number of objects: the listing is read a page at
 * a time and its entries spilled to a file in the staging directory; the
 * bytes are then taken a batch at a time from that file and the set's
 * listing written as a stream. What stays in memory per object is its path
 * and its file entry (for the manifest).
 */
async function backupObjects(ctx: ServiceBackupContext, client: Minio.Client, bucket: string, base: BaseBucket | undefined): Promise<BucketBackup> {
  const src = ctx.cfg.minio!;
  const layout = bucketLayout(bucket);
  const bucketDir = join(ctx.setDir, layout.dir);
  await mkdir(bucketDir, { recursive: true });
  const stopIfAborted = () => {
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new OperationError(`minio: ${bucket}: cancelled`);
  };

  // Pass 1: the listing, with attributes (MinIO's metadata=true; HEAD + tagging per object elsewhere), spilled to disk.
  const spill = await Spill.open(join(ctx.setDir, `.listing-${pathSegment(bucket)}.jsonl`));
  const dirs = new Set<string>();
  const natural: string[] = []; // where mc puts each object whose key is a safe path
  let total = 0;
  let unchanged = 0;
  let unmappable = 0;
  try {
    for await (const page of describeObjectPages(client, bucket, STAT_CONCURRENCY)) {
      stopIfAborted();
      for (const o of page) {
        if (o.key.startsWith(CANARY_PREFIX)) continue;
        const problem = keyPathProblem(o.key, o.size);
        const e = problem ? entryFor(o, o.attrs, `${layout.unmapped}/${sha256Hex(o.key)}`, problem) : entryFor(o, o.attrs, `${layout.dir}/${o.key}`);
        if (problem) unmappable++;
        else {
          addKeyFolders(dirs, o.key);
          if (e.path !== null) natural.push(e.path);
        }
        if (e.path !== null) {
          total += e.size;
          unchanged += base?.match(e)?.size ?? 0;
        }
        await spill.write(e);
      }
    }
    await spill.finish();
  } catch (err) {
    await spill.remove();
    throw minioError(src, `cannot list ${bucket}`, err);
  }
  // A key that is also the folder of other keys ("x" beside "x/y") cannot be a file there.
  const isFolder = (e: ObjectEntry) => e.path !== null && e.pathReason === undefined && dirs.has(e.key);
  const folders = natural.filter((p) => dirs.has(p.slice(layout.dir.length + 1))).length;
  unmappable += folders;

  const transfer = emptyTransfer(base);
  const incremental = base !== undefined && unchanged > 0 && (unmappable > 0 || unchanged >= total * LINK_MIN_SHARE);
  const mode = incremental ? "link" : unmappable > 0 ? "fetch" : "mirror";
  if (mode === "fetch") ctx.progress.warn(`minio: ${bucket}: ${unmappable} key(s) cannot be stored as paths; fetching the bucket object by object`);

  const steps: StepResult[] = [];
  let hasher: LiveHasher | undefined;
  try {
    if (mode === "mirror") {
      // mc writes each object to a temporary name and renames it into place: each file is hashed (and
      // fsynced) as soon as it is there, while mc goes on.
      hasher = new LiveHasher({ root: ctx.setDir, candidates: async () => natural, writers: () => ctx.runner.livePids(), pool: ctx.pool, durable: true, stopAfterMissing: 64 }).start();
      try {
        for (const step of planMinio(src, { buckets: [bucket] })) steps.push(await ctx.runner.run(step, ctx.setDir));
      } finally {
        await hasher.stop();
      }
    }
    natural.length = 0;

    // Pass 2: each object's bytes, a batch at a time, in listing order; the set's listing written as it goes.
    const listing = await ListingWriter.open(join(ctx.setDir, layout.listing));
    const files: FileEntry[] = [];
    const counts = { objects: 0, bytes: 0, markers: 0, unmapped: 0 };
    const known = mode === "mirror" ? new Set<string>() : undefined;
    const keep = async (e: ObjectEntry) => {
      await listing.write(e);
      counts.objects++;
      if (e.marker) counts.markers++;
      else counts.bytes += e.size;
      if (e.pathReason !== undefined) counts.unmapped++;
      if (e.path !== null) {
        files.push({ path: e.path, size: e.size, sha256: e.sha256 });
        known?.add(e.path);
      }
    };
    try {
      for await (const batch of spill.batches(BATCH)) {
        stopIfAborted();
        const taken = await mapLimit(batch, STAT_CONCURRENCY, async (listed): Promise<ObjectEntry | undefined> => {
          const e = isFolder(listed) ? { ...listed, path: `${layout.unmapped}/${sha256Hex(listed.key)}`, pathReason: FOLDER_KEY_PROBLEM } : listed;
          if (e.path === null) return e;
          if (mode !== "mirror") return takeObject(ctx, client, bucket, e, base?.match(e), transfer);
          return reconcileMirrored(ctx, client, bucket, e, hasher!, transfer);
        });
        for (const e of taken) if (e) await keep(e);
      }
      if (mode === "mirror") {
        // Objects that appeared while mc mirror ran are on disk but not in the listing: describe them too.
        const extra: string[] = [];
        await walkFiles(bucketDir, ctx.setDir, (rel) => {
          if (!known!.has(rel)) extra.push(rel);
        });
        known!.clear();
        for (const rel of extra) {
          stopIfAborted();
          const key = rel.slice(layout.dir.length + 1);
          const attrs = await attributesIfExists(client, bucket, key);
          if (!attrs) {
            await rm(join(ctx.setDir, rel), { force: true }); // gone again, or not an object at all
            continue;
          }
          const d = await hasher!.digestOf(rel);
          transfer.fetched.objects++;
          transfer.fetched.bytes += d.size;
          await keep({ ...entryFor({ key, ...attrs }, attrs, rel), size: d.size, sha256: d.sha256 });
        }
      }
    } catch (err) {
      await listing.abandon();
      throw err;
    }
    const listingFile = { path: layout.listing, ...(await listing.close()) };
    const facts: BucketFacts = { name: bucket, dir: layout.dir, listing: layout.listing, ...counts, transfer };
    ctx.progress.info(`minio: ${bucket}: ${counts.objects} objects, ${counts.bytes} bytes${transferText(transfer)}`);
    return { facts, steps, files: [...files, listingFile] };
  } finally {
    await spill.remove();
  }
}

/** Objects taken from the spilled listing at a time (and in flight at once, up to STAT_CONCURRENCY). */
const BATCH = 512;

/**
 * What mc wrote with the listed size is the listed object (its digest taken
 * as mc finished it, or now); anything else changed while mc ran and is
 * fetched again, with fresh attributes. An object deleted meanwhile is
 * dropped with a warning.
 */
async function reconcileMirrored(ctx: ServiceBackupContext, client: Minio.Client, bucket: string, e: ObjectEntry, hasher: LiveHasher, transfer: Transfer): Promise<ObjectEntry | undefined> {
  const abs = join(ctx.setDir, e.path!);
  const onDisk = await stat(abs).catch(() => undefined);
  if (onDisk?.isFile() && onDisk.size === e.size) {
    const d = await hasher.digestOf(e.path!);
    transfer.fetched.objects++;
    transfer.fetched.bytes += d.size;
    return { ...e, size: d.size, sha256: d.sha256 };
  }
  const fresh = await attributesIfExists(client, bucket, e.key);
  await rm(abs, { force: true });
  if (!fresh) {
    ctx.progress.warn(`minio: ${bucket}: ${JSON.stringify(e.key)} was deleted during the backup; not in this set`);
    return undefined;
  }
  return takeObject(ctx, client, bucket, entryFor({ key: e.key, ...fresh }, fresh, e.path), undefined, transfer);
}

/**
 * Listing entries spilled to a file while the listing is read, then read
 * back once, in batches: a bucket's listing never has to fit in memory.
 */
class Spill {
  private constructor(
    readonly path: string,
    readonly file: TextFileWriter,
  ) {}

  static async open(path: string): Promise<Spill> {
    return new Spill(path, await TextFileWriter.open(path, { mode: 0o600 }));
  }

  async write(e: ObjectEntry): Promise<void> {
    await this.file.write(`${JSON.stringify(e)}\n`);
  }

  async finish(): Promise<void> {
    await this.file.close({ durable: false });
  }

  async *batches(size: number): AsyncGenerator<ObjectEntry[]> {
    const lines = createInterface({ input: createReadStream(this.path, "utf8"), crlfDelay: Infinity });
    let batch: ObjectEntry[] = [];
    for await (const line of lines) {
      if (line === "") continue;
      batch.push(JSON.parse(line) as ObjectEntry);
      if (batch.length >= size) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  async remove(): Promise<void> {
    await this.file.abandon();
    await rm(this.path, { force: true });
  }
}

type Transfer = NonNullable<BucketFacts["transfer"]>;

function emptyTransfer(base: BaseBucket | undefined): Transfer {
  return { ...(base ? { base: base.setId } : {}), linked: { objects: 0, bytes: 0 }, copied: { objects: 0, bytes: 0 }, fetched: { objects: 0, bytes: 0 } };
}

function transferText(t: Transfer): string {
  const moved = t.linked.objects + t.copied.objects;
  if (moved === 0) return "";
  return `; ${t.linked.objects} unchanged linked${t.copied.objects ? `, ${t.copied.objects} copied` : ""} from set ${t.base}, ${t.fetched.objects} fetched (${t.fetched.bytes} bytes)`;
}

/**
 * Put one object's bytes into the set and complete its entry (size and
 * sha256): linked from the base set when it is unchanged there (the
 * checksum carried over), else fetched and hashed as it streams in.
 * An object deleted meanwhile is dropped with a warning.
 */
async function takeObject(
  ctx: ServiceBackupContext,
  client: Minio.Client,
  bucket: string,
  e: ObjectEntry,
  match: BaseObject | undefined,
  transfer: Transfer,
  versionId?: string,
): Promise<ObjectEntry | undefined> {
  const dest = insideDir(ctx.setDir, e.path!);
  if (match) {
    const how = await linkOrCopy(match.file, dest, match.size);
    if (how !== "stale") {
      transfer[how].objects++;
      transfer[how].bytes += match.size;
      return { ...e, size: match.size, sha256: match.sha256 };
    }
  }
  try {
    const d = await fetchObject(client, bucket, e.key, dest, versionId);
    transfer.fetched.objects++;
    transfer.fetched.bytes += d.size;
    return { ...e, size: d.size, sha256: d.sha256 };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "NoSuchKey" || code === "NotFound" || code === "NoSuchVersion") {
      ctx.progress.warn(`minio: ${bucket}: ${JSON.stringify(e.key)}${versionId ? ` version ${versionId}` : ""} was deleted during the backup; not in this set`);
      return undefined;
    }
    throw minioError(ctx.cfg.minio!, `cannot fetch ${JSON.stringify(e.key)}${versionId ? ` version ${versionId}` : ""}`, err);
  }
}

function bucketFacts(bucket: string, kept: ObjectEntry[]): BucketFacts {
  const layout = bucketLayout(bucket);
  const objects = kept.filter((e) => !e.marker && !e.deleteMarker);
  return {
    name: bucket,
    dir: layout.dir,
    listing: layout.listing,
    objects: kept.length,
    bytes: objects.reduce((a, e) => a + e.size, 0),
    markers: kept.filter((e) => e.marker).length,
    unmapped: kept.filter((e) => e.pathReason !== undefined).length,
  };
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * A versioned bucket: every version and delete marker, each version fetched
 * by its ID (so bytes and listing describe the same version, whatever is
 * written meanwhile) with its own attributes and tags. The latest version of
 * a key is stored at the key's path, as in an unversioned bucket; older
 * ones under <bucket>.versions/<sha256(key)>/<n>. The listing holds them by
 * key, oldest first: the order a restore puts them back in.
 */
async function backupVersions(ctx: ServiceBackupContext, client: Minio.Client, bucket: string, base: BaseBucket | undefined): Promise<BucketBackup> {
  const src = ctx.cfg.minio!;
  const layout = bucketLayout(bucket);
  const listed = (await listVersions(client, bucket).catch((err) => {
    throw minioError(src, `cannot list the versions in ${bucket}`, err);
  })).filter((v) => !v.key.startsWith(CANARY_PREFIX));
  // The server lists a key's versions newest first: put them in the order they were written.
  const perKey = new Map<string, ListedVersion[]>();
  for (const v of listed) perKey.set(v.key, [...(perKey.get(v.key) ?? []), v]);
  const jobs = [...perKey.entries()].sort((a, b) => byKey({ key: a[0] }, { key: b[0] })).flatMap(([, vs]) => vs.reverse().map((v, n) => ({ v, n })));
  const latest = jobs.filter(({ v }) => v.isLatest && !v.deleteMarker).map(({ v }) => ({ key: v.key, size: v.size }));
  const paths = mapKeysToPaths(latest);
  await mkdir(join(ctx.setDir, layout.dir), { recursive: true });
  const transfer = emptyTransfer(base);

  const entries = await mapLimit(jobs, STAT_CONCURRENCY, async ({ v, n }): Promise<ObjectEntry | undefined> => {
    const version = { versionId: v.versionId, isLatest: v.isLatest };
    if (v.deleteMarker) {
      return { key: v.key, size: 0, etag: "", lastModified: v.lastModified, userMetadata: {}, tags: {}, marker: false, path: null, sha256: EMPTY_SHA256, ...version, deleteMarker: true };
    }
    const attrs = await attributesIfExists(client, bucket, v.key, v.versionId);
    if (!attrs) {
      ctx.progress.warn(`minio: ${bucket}: ${JSON.stringify(v.key)} version ${v.versionId} was deleted during the backup; not in this set`);
      return undefined;
    }
    const mapped = v.isLatest ? paths.get(v.key) : undefined;
    const rel =
      mapped && "path" in mapped ? `${layout.dir}/${mapped.path}` : mapped ? `${layout.unmapped}/${sha256Hex(v.key)}` : `${layout.versions}/${sha256Hex(v.key)}/${n}`;
    const entry = { ...entryFor({ key: v.key, ...attrs }, attrs, rel, mapped && "problem" in mapped ? mapped.problem : undefined), ...version, deleteMarker: false };
    if (entry.marker) return entry;
    // A version's bytes never change: the same version, size, ETag and attributes in the base set are linked.
    return takeObject(ctx, client, bucket, entry, base?.match(entry), transfer, v.versionId);
  });
  const kept = entries.filter((e): e is ObjectEntry => e !== undefined);
  const listingFile = { path: layout.listing, ...(await writeListing(join(ctx.setDir, layout.listing), kept)) };
  const deleteMarkers = kept.filter((e) => e.deleteMarker).length;
  const keys = new Set(kept.map((e) => e.key)).size;
  ctx.progress.info(`minio: ${bucket}: versioned, ${keys} keys, ${kept.length - deleteMarkers} versions, ${deleteMarkers} delete markers${transferText(transfer)}`);
  return {
    facts: { ...bucketFacts(bucket, kept), versions: { keys, versions: kept.length - deleteMarkers, deleteMarkers }, transfer },
    steps: [],
    files: [...kept.filter((e) => e.path !== null).map((e) => ({ path: e.path!, size: e.size, sha256: e.sha256 })), listingFile],
  };
}

function entryFor(o: ListedObject, attrs: ObjectAttributes | undefined, path: string | null, pathReason?: string): ObjectEntry {
  const a = attrs ?? { ...o, userMetadata: {}, tags: {} };
  const marker = o.key.endsWith("/") && o.size === 0 && pathReason === undefined;
  return {
    key: o.key,
    size: a.size,
    etag: a.etag,
    lastModified: a.lastModified,
    ...(a.contentType !== undefined ? { contentType: a.contentType } : {}),
    ...(a.contentEncoding !== undefined ? { contentEncoding: a.contentEncoding } : {}),
    ...(a.cacheControl !== undefined ? { cacheControl: a.cacheControl } : {}),
    ...(a.contentDisposition !== undefined ? { contentDisposition: a.contentDisposition } : {}),
    ...(a.contentLanguage !== undefined ? { contentLanguage: a.contentLanguage } : {}),
    userMetadata: a.userMetadata,
    tags: a.tags,
    marker,
    path: marker ? null : path,
    ...(pathReason ? { pathReason } : {}),
    sha256: EMPTY_SHA256,
  };
}
