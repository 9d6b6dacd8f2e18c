import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type * as Minio from "minio";
import {
  bucketFeatures,
  CANARY_PREFIX,
  hasDefaultRetention,
  listVersions,
  type ListedVersion,
  endpointLabel,
  fetchObject,
  insideDir,
  listBucketNames,
  describeObjects,
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
import { listFiles, sha256Hex } from "../hash.js";
import { writeListing, type ObjectEntry } from "../listing.js";
import type { BucketFacts, FileEntry, MinioFacts } from "../manifest.js";
import { bucketLayout, planMinio } from "../plan.js";
import type { StepResult } from "../runners/host.js";
import { linkOrCopy } from "../store/link.js";
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
 */
async function backupObjects(ctx: ServiceBackupContext, client: Minio.Client, bucket: string, base: BaseBucket | undefined): Promise<BucketBackup> {
  const src = ctx.cfg.minio!;
  const layout = bucketLayout(bucket);
  const bucketDir = join(ctx.setDir, layout.dir);
  // One listing with attributes (MinIO's metadata=true; HEAD + tagging per object elsewhere).
  const listed = (await describeObjects(client, bucket, STAT_CONCURRENCY).catch((err) => {
    throw minioError(src, `cannot list ${bucket}`, err);
  })).filter((o) => !o.key.startsWith(CANARY_PREFIX));
  const paths = mapKeysToPaths(listed);
  const unmappable = [...paths.values()].filter((p) => "problem" in p).length;
  const entries = listed.map((o) => {
    const mapped = paths.get(o.key)!;
    return "problem" in mapped ? entryFor(o, o.attrs, `${layout.unmapped}/${sha256Hex(o.key)}`, mapped.problem) : entryFor(o, o.attrs, `${layout.dir}/${mapped.path}`);
  });
  await mkdir(bucketDir, { recursive: true });
  const transfer = emptyTransfer(base);
  const stopIfAborted = () => {
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new OperationError(`minio: ${bucket}: cancelled`);
  };

  const matches = base ? entries.map((e) => (e.path === null ? undefined : base.match(e))) : [];
  const total = entries.reduce((a, e) => a + (e.path === null ? 0 : e.size), 0);
  const unchanged = matches.reduce((a, m) => a + (m ? m.size : 0), 0);
  const incremental = base !== undefined && matches.some((m) => m) && (unmappable > 0 || unchanged >= total * LINK_MIN_SHARE);

  const steps: StepResult[] = [];
  let kept: ObjectEntry[];
  if (incremental || unmappable > 0) {
    if (!incremental) ctx.progress.warn(`minio: ${bucket}: ${unmappable} key(s) cannot be stored as paths; fetching the bucket object by object`);
    const got = await mapLimit(entries, STAT_CONCURRENCY, async (e, i) => {
      stopIfAborted();
      if (e.path === null) return e;
      return takeObject(ctx, client, bucket, e, matches[i], transfer);
    });
    kept = got.filter((e): e is ObjectEntry => e !== undefined);
  } else {
    kept = await mirrorBucket(ctx, client, bucket, entries, transfer, steps, stopIfAborted);
  }
  kept.sort(byKey);
  const listingFile = { path: layout.listing, ...(await writeListing(join(ctx.setDir, layout.listing), kept)) };
  const facts = { ...bucketFacts(bucket, kept), transfer };
  ctx.progress.info(`minio: ${bucket}: ${kept.length} objects, ${facts.bytes} bytes${transferText(transfer)}`);
  return { facts, steps, files: [...kept.filter((e) => e.path !== null).map((e) => ({ path: e.path!, size: e.size, sha256: e.sha256 })), listingFile] };
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

/**
 * mc mirror of a bucket whose keys are all safe paths. mc writes each object
 * to a temporary name and renames it into place: each file is hashed (and
 * fsynced) as soon as it is there, while mc goes on. Then each listed object
 * is reconciled with what mc wrote (an object that changed meanwhile is
 * fetched again), and objects that appeared during the mirror are described.
 */
async function mirrorBucket(
  ctx: ServiceBackupContext,
  client: Minio.Client,
  bucket: string,
  entries: ObjectEntry[],
  transfer: Transfer,
  steps: StepResult[],
  stopIfAborted: () => void,
): Promise<ObjectEntry[]> {
  const src = ctx.cfg.minio!;
  const layout = bucketLayout(bucket);
  const expected = entries.filter((e) => e.path !== null).map((e) => e.path!);
  const hasher = new LiveHasher({
    root: ctx.setDir,
    candidates: async () => expected,
    writers: () => ctx.runner.livePids(),
    pool: ctx.pool,
    durable: true,
    stopAfterMissing: 64,
  }).start();
  try {
    for (const step of planMinio(src, { buckets: [bucket] })) steps.push(await ctx.runner.run(step, ctx.setDir));
  } finally {
    await hasher.stop();
  }

  // What mc wrote with the listed size is the listed object; anything else is fetched again.
  const fetched = new Map<string, ObjectEntry>();
  const kept = await mapLimit(entries, STAT_CONCURRENCY, async (e): Promise<ObjectEntry | undefined> => {
    stopIfAborted();
    if (e.path === null) return e;
    const onDisk = await stat(join(ctx.setDir, e.path)).catch(() => undefined);
    if (onDisk?.isFile() && onDisk.size === e.size) return e;
    const fresh = await attributesIfExists(client, bucket, e.key);
    await rm(join(ctx.setDir, e.path), { force: true });
    if (!fresh) {
      ctx.progress.warn(`minio: ${bucket}: ${JSON.stringify(e.key)} was deleted during the backup; not in this set`);
      return undefined;
    }
    const got = await takeObject(ctx, client, bucket, entryFor({ key: e.key, ...fresh }, fresh, e.path), undefined, transfer);
    if (got) fetched.set(got.path!, got);
    return got;
  });
  const out = kept.filter((e): e is ObjectEntry => e !== undefined);

  // Objects that appeared while mc mirror ran are on disk but not in the listing: describe them too.
  const known = new Set(out.filter((e) => e.path).map((e) => e.path!));
  for (const rel of await listFiles(join(ctx.setDir, layout.dir), ctx.setDir)) {
    stopIfAborted();
    if (known.has(rel)) continue;
    const key = rel.slice(layout.dir.length + 1);
    const attrs = await attributesIfExists(client, bucket, key);
    if (!attrs) {
      await rm(join(ctx.setDir, rel), { force: true }); // gone again, or not an object at all
      continue;
    }
    out.push(entryFor({ key, ...attrs }, attrs, rel));
  }

  // Digests: mc's files hashed as they appeared (checked unchanged since) or now; ours as they streamed in.
  const mirrored = out.filter((e) => e.path !== null && !fetched.has(e.path));
  const digests = await hasher.settle(mirrored.map((e) => e.path!));
  mirrored.forEach((e, i) => {
    e.size = digests[i]!.size;
    e.sha256 = digests[i]!.sha256;
    transfer.fetched.objects++;
    transfer.fetched.bytes += e.size;
  });
  return out;
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
