import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type * as Minio from "minio";
import {
  CANARY_PREFIX,
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

async function backupBucket(
  ctx: ServiceBackupContext,
  client: Minio.Client,
  bucket: string,
): Promise<{ facts: BucketFacts; steps: StepResult[]; files: FileEntry[] }> {
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
  kept.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  await writeFile(join(ctx.setDir, layout.listing), listingText(kept));
  const [listingFile] = await hashUnder(ctx.setDir, [layout.listing], { durable: true });

  let canary: BucketFacts["canary"];
  if (src.canary) {
    const c = await runCanary(client, bucket);
    if (!c.ok) throw new OperationError(`canary in bucket ${bucket} failed: ${c.error}`);
    canary = { ok: c.ok, key: c.key, sha256: c.sha256, bytes: c.bytes, durationMs: c.durationMs };
  }
  const objects = kept.filter((e) => !e.marker);
  ctx.progress.info(`minio: ${bucket}: ${kept.length} objects, ${objects.reduce((a, e) => a + e.size, 0)} bytes`);
  return {
    facts: {
      name: bucket,
      dir: layout.dir,
      listing: layout.listing,
      objects: kept.length,
      bytes: objects.reduce((a, e) => a + e.size, 0),
      markers: kept.length - objects.length,
      unmapped: kept.filter((e) => e.pathReason !== undefined).length,
      ...(canary ? { canary } : {}),
    },
    steps,
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
