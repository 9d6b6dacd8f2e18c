import { mkdir, rm, stat, writeFile } from "node:fs/promises";
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
  mapLimit,
  minioClient,
  minioError,
  attributesIfExists,
  runCanary,
  type ListedObject,
  type ObjectAttributes,
} from "../../probes/minio.js";
import { OperationError, UserError } from "../errors.js";
import { hashUnder, listFiles, sha256Hex } from "../hash.js";
import { listingText, type ObjectEntry } from "../listing.js";
import type { BucketFacts, FileEntry, MinioFacts } from "../manifest.js";
import { bucketLayout, planMinio } from "../plan.js";
import type { StepResult } from "../runners/host.js";
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
  for (const bucket of buckets) {
    const r = await phase("minio", `bucket ${bucket}`, () => backupBucket(ctx, client, bucket));
    steps.push(...r.steps);
    files.push(...r.files);
    facts.buckets.push(r.facts);
  }
  return { facts, steps, files };
}

type BucketBackup = { facts: BucketFacts; steps: StepResult[]; files: FileEntry[] };

async function backupBucket(ctx: ServiceBackupContext, client: Minio.Client, bucket: string): Promise<BucketBackup> {
  const src = ctx.cfg.minio!;
  const features = await bucketFeatures(client, bucket).catch((err) => {
    throw minioError(src, `cannot read the configuration of ${bucket}`, err);
  });
  const r = features.versioning ? await backupVersions(ctx, client, bucket) : await backupObjects(ctx, client, bucket);
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

/** An unversioned bucket: its objects, mirrored by mc where every key is a safe path. */
async function backupObjects(ctx: ServiceBackupContext, client: Minio.Client, bucket: string): Promise<BucketBackup> {
  const src = ctx.cfg.minio!;
  const layout = bucketLayout(bucket);
  const bucketDir = join(ctx.setDir, layout.dir);
  // One listing with attributes (MinIO's metadata=true; HEAD + tagging per object elsewhere).
  const listed = (await describeObjects(client, bucket, STAT_CONCURRENCY).catch((err) => {
    throw minioError(src, `cannot list ${bucket}`, err);
  })).filter((o) => !o.key.startsWith(CANARY_PREFIX));
  const attributes = listed.map((o) => o.attrs);
  const paths = mapKeysToPaths(listed);
  const unmappable = [...paths.values()].filter((p) => "problem" in p).length;

  // mc mirror writes each key at <dir>/<key>: only safe when every key is a safe relative path.
  // Otherwise every object of the bucket is fetched by us, unsafe keys under <bucket>.unmapped/.
  const steps: StepResult[] = [];
  if (unmappable === 0) {
    for (const step of planMinio(src, { buckets: [bucket] })) steps.push(await ctx.runner.run(step, ctx.setDir));
  } else {
    ctx.progress.warn(`minio: ${bucket}: ${unmappable} key(s) cannot be stored as paths; fetching the bucket object by object`);
  }

  const entries: ObjectEntry[] = [];
  await mkdir(bucketDir, { recursive: true });
  const stopIfAborted = () => {
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : new OperationError(`minio: ${bucket}: cancelled`);
  };
  await mapLimit(listed, STAT_CONCURRENCY, async (o, i) => {
    stopIfAborted();
    const entry = await reconcile(ctx, client, bucket, o, attributes[i], paths.get(o.key)!);
    if (entry) entries[i] = entry;
  });
  const kept = entries.filter((e): e is ObjectEntry => e !== undefined);

  // Objects that appeared while mc mirror ran are on disk but not in the listing: describe them too.
  const known = new Set(kept.filter((e) => e.path).map((e) => e.path!));
  for (const rel of await listFiles(bucketDir, ctx.setDir)) {
    stopIfAborted();
    if (known.has(rel)) continue;
    const key = rel.slice(layout.dir.length + 1);
    const attrs = await attributesIfExists(client, bucket, key);
    if (!attrs) {
      await rm(join(ctx.setDir, rel), { force: true }); // gone again, or not an object at all
      continue;
    }
    kept.push(entryFor({ key, ...attrs }, attrs, rel));
  }

  const hashed = await hashUnder(ctx.setDir, [layout.dir, layout.unmapped], { durable: true });
  const byPath = new Map(hashed.map((f) => [f.path, f]));
  for (const e of kept) {
    if (e.path === null) continue;
    const f = byPath.get(e.path);
    if (!f) throw new OperationError(`object ${JSON.stringify(e.key)}: file ${e.path} is missing after download`);
    e.sha256 = f.sha256;
    e.size = f.size;
  }
  kept.sort(byKey);
  await writeFile(join(ctx.setDir, layout.listing), listingText(kept));
  const [listingFile] = await hashUnder(ctx.setDir, [layout.listing], { durable: true });

  const facts = bucketFacts(bucket, kept);
  ctx.progress.info(`minio: ${bucket}: ${kept.length} objects, ${facts.bytes} bytes`);
  return { facts, steps, files: [...hashed, listingFile!] };
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
async function backupVersions(ctx: ServiceBackupContext, client: Minio.Client, bucket: string): Promise<BucketBackup> {
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
    await fetchObject(client, bucket, v.key, join(ctx.setDir, rel), v.versionId).catch((err) => {
      throw minioError(src, `cannot fetch ${JSON.stringify(v.key)} version ${v.versionId}`, err);
    });
    return entry;
  });
  const kept = entries.filter((e): e is ObjectEntry => e !== undefined);
  const hashed = await hashUnder(ctx.setDir, [layout.dir, layout.unmapped, layout.versions], { durable: true });
  const byPath = new Map(hashed.map((f) => [f.path, f]));
  for (const e of kept) {
    if (e.path === null) continue;
    const f = byPath.get(e.path);
    if (!f) throw new OperationError(`object ${JSON.stringify(e.key)} version ${e.versionId}: file ${e.path} is missing after download`);
    e.sha256 = f.sha256;
    e.size = f.size;
  }
  await writeFile(join(ctx.setDir, layout.listing), listingText(kept));
  const [listingFile] = await hashUnder(ctx.setDir, [layout.listing], { durable: true });
  const deleteMarkers = kept.filter((e) => e.deleteMarker).length;
  const keys = new Set(kept.map((e) => e.key)).size;
  ctx.progress.info(`minio: ${bucket}: versioned, ${keys} keys, ${kept.length - deleteMarkers} versions, ${deleteMarkers} delete markers`);
  return {
    facts: { ...bucketFacts(bucket, kept), versions: { keys, versions: kept.length - deleteMarkers, deleteMarkers } },
    steps: [],
    files: [...hashed, listingFile!],
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

/**
 * Make sure the set holds the listed object's bytes at its path: a file the
 * mirror wrote with the listed size is kept; a missing or different one (the
 * object changed while mirroring, or the bucket is fetched by us) is
 * downloaded. An object deleted meanwhile is dropped with a warning.
 */
async function reconcile(
  ctx: ServiceBackupContext,
  client: Minio.Client,
  bucket: string,
  o: ListedObject,
  attrs: ObjectAttributes | undefined,
  mapped: { path: string } | { problem: string },
): Promise<ObjectEntry | undefined> {
  const layout = bucketLayout(bucket);
  if ("problem" in mapped) {
    const rel = `${layout.unmapped}/${sha256Hex(o.key)}`;
    await fetchObject(client, bucket, o.key, join(ctx.setDir, rel)).catch((err) => {
      throw minioError(ctx.cfg.minio!, `cannot fetch ${JSON.stringify(o.key)}`, err);
    });
    return entryFor(o, attrs, rel, mapped.problem);
  }
  const entry = entryFor(o, attrs, `${layout.dir}/${mapped.path}`);
  if (entry.marker) return entry;
  const abs = insideDir(join(ctx.setDir, layout.dir), mapped.path);
  const onDisk = await stat(abs).catch(() => undefined);
  if (onDisk?.isFile() && onDisk.size === entry.size && attrs) return entry;
  const fresh = await attributesIfExists(client, bucket, o.key);
  if (!fresh) {
    ctx.progress.warn(`minio: ${bucket}: ${JSON.stringify(o.key)} was deleted during the backup; not in this set`);
    await rm(abs, { force: true });
    return undefined;
  }
  await rm(abs, { force: true });
  await fetchObject(client, bucket, o.key, abs).catch((err) => {
    throw minioError(ctx.cfg.minio!, `cannot fetch ${JSON.stringify(o.key)}`, err);
  });
  return entryFor(o, fresh, `${layout.dir}/${mapped.path}`);
}
