import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  CANARY_PREFIX,
  describeObjects,
  mapLimit,
  minioClient,
  putKnownObject,
  minioError,
  runCanary,
  type MinioTarget,
  type ObjectAttributes,
} from "../../probes/minio.js";
import type { BucketFacts } from "../manifest.js";
import type { DrillCheck } from "../drill-summary.js";
import { OperationError } from "../errors.js";
import { readListing, type ObjectEntry } from "../listing.js";
import { check, nameSome } from "./checks.js";
import type { LoadedSet } from "./set.js";

export type MinioSelection = {
  /** Buckets of the set to restore (default: all). */
  buckets?: string[];
  /** Only keys under this prefix. */
  prefix?: string;
};

const CONCURRENCY = 8;

export function bucketsToRestore(set: LoadedSet, sel: MinioSelection): BucketFacts[] {
  const all = set.manifest.services.minio?.buckets ?? [];
  if (!sel.buckets) return all;
  return sel.buckets.map((name) => {
    const b = all.find((x) => x.name === name);
    if (!b) throw new OperationError(`set ${set.id} has no bucket "${name}" (it has: ${all.map((x) => x.name).join(", ")})`);
    return b;
  });
}

/** The listing of a bucket in the set, limited to a prefix. */
export async function selectedEntries(set: LoadedSet, bucket: BucketFacts, sel: MinioSelection): Promise<ObjectEntry[]> {
  const entries = await readListing(join(set.dir, bucket.listing));
  return sel.prefix ? entries.filter((e) => e.key.startsWith(sel.prefix!)) : entries;
}

/** S3 headers that put back what the listing recorded (what `mc mirror` back would lose). */
export function putHeaders(e: ObjectEntry): Record<string, string> {
  const h: Record<string, string> = {};
  if (e.contentType !== undefined) h["Content-Type"] = e.contentType;
  if (e.contentEncoding !== undefined) h["Content-Encoding"] = e.contentEncoding;
  if (e.cacheControl !== undefined) h["Cache-Control"] = e.cacheControl;
  if (e.contentDisposition !== undefined) h["Content-Disposition"] = e.contentDisposition;
  if (e.contentLanguage !== undefined) h["Content-Language"] = e.contentLanguage;
  for (const [k, v] of Object.entries(e.userMetadata)) h[`X-Amz-Meta-${k}`] = v;
  return h;
}

/**
 * Put every selected object of the set into the target at its recorded key,
 * with its recorded headers, user metadata and tags; folder/ markers
 * included; a missing bucket is created.
 */
export async function restoreMinio(
  set: LoadedSet,
  target: MinioTarget,
  sel: MinioSelection,
  onProgress?: (bucket: string, done: number, total: number) => void,
): Promise<{ restoreMs: number; objects: number; bytes: number }> {
  const t0 = Date.now();
  const client = minioClient(target);
  let objects = 0;
  let bytes = 0;
  for (const bucket of bucketsToRestore(set, sel)) {
    try {
      if (!(await client.bucketExists(bucket.name))) await client.makeBucket(bucket.name, target.region);
    } catch (err) {
      throw minioError(target, `cannot create bucket ${bucket.name}`, err);
    }
    const entries = await selectedEntries(set, bucket, sel);
    let done = 0;
    await mapLimit(entries, CONCURRENCY, async (e) => {
      try {
        await putKnownObject(client, bucket.name, e.key, e.path === null ? undefined : { path: join(set.dir, e.path), size: e.size, sha256: e.sha256 }, putHeaders(e));
        if (Object.keys(e.tags).length > 0) await client.setObjectTagging(bucket.name, e.key, e.tags);
      } catch (err) {
        throw minioError(target, `cannot put ${bucket.name}/${JSON.stringify(e.key)}`, err);
      }
      objects++;
      bytes += e.size;
      if (++done % 500 === 0) onProgress?.(bucket.name, done, entries.length);
    });
  }
  return { restoreMs: Date.now() - t0, objects, bytes };
}

/**
 * A single-part upload's ETag is the MD5 of its bytes, computed by the source
 * server: matching it on the target proves the bytes are the source's, not
 * just the set's. Multipart ETags depend on part sizes, so only single-part
 * objects small enough to be put back in one part are compared.
 */
export function etagAgrees(e: ObjectEntry, restoredEtag: string): boolean {
  const md5 = /^[0-9a-f]{32}$/;
  if (!md5.test(e.etag) || e.size >= SINGLE_PUT_LIMIT) return true;
  return restoredEtag === e.etag;
}

/** minio-js puts objects below its default part size (64 MiB) in one request. */
const SINGLE_PUT_LIMIT = 64 * 1024 * 1024;

const ATTRIBUTES = ["contentType", "contentEncoding", "cacheControl", "contentDisposition", "contentLanguage"] as const;

/** Which recorded attributes an object on the target lost or changed. */
export function attributeDifferences(e: ObjectEntry, got: ObjectAttributes): string[] {
  const out: string[] = [];
  for (const a of ATTRIBUTES) if (e[a] !== undefined && e[a] !== got[a]) out.push(a);
  if (JSON.stringify(sortKeys(e.userMetadata)) !== JSON.stringify(sortKeys(got.userMetadata))) out.push("userMetadata");
  if (JSON.stringify(sortKeys(e.tags)) !== JSON.stringify(sortKeys(got.tags))) out.push("tags");
  return out;
}

function sortKeys(o: Record<string, string>): [string, string][] {
  return Object.entries(o).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/**
 * The drill's MinIO checks on a restored target, per bucket: object count,
 * keys, every object's size and sha256 read back, recorded attributes and
 * tags, and the integrity canary.
 */
export async function checkMinio(
  set: LoadedSet,
  target: MinioTarget,
  sel: MinioSelection,
  opts: { allowExtra?: boolean } = {},
): Promise<DrillCheck[]> {
  const client = minioClient(target);
  const checks: DrillCheck[] = [];
  for (const bucket of bucketsToRestore(set, sel)) {
    const entries = await selectedEntries(set, bucket, sel);
    let t = Date.now();
    const live = (await describeObjects(client, bucket.name).catch((err) => {
      throw minioError(target, `cannot list ${bucket.name}`, err);
    })).filter((o) => !o.key.startsWith(CANARY_PREFIX) && (!sel.prefix || o.key.startsWith(sel.prefix)));
    const liveByKey = new Map(live.map((o) => [o.key, o]));
    const liveKeys = new Set(liveByKey.keys());
    const wantKeys = new Set(entries.map((e) => e.key));
    const missing = entries.filter((e) => !liveKeys.has(e.key)).map((e) => e.key);
    // A restore into a bucket that already held other objects keeps them: they are not failures there.
    const extra = opts.allowExtra ? [] : live.filter((o) => !wantKeys.has(o.key)).map((o) => o.key);
    checks.push(
      check("minio", "object-count", bucket.name, entries.length, opts.allowExtra ? entries.length - missing.length : live.length, t),
    );

    t = Date.now();
    checks.push(
      check("minio", "object-keys", bucket.name, { missing: 0, extra: 0 }, { missing: missing.length, extra: extra.length }, t, {
        ...(missing.length || extra.length
          ? { detail: [missing.length ? `missing: ${nameSome(missing)}` : "", extra.length ? `extra: ${nameSome(extra)}` : ""].filter(Boolean).join("; ") }
          : {}),
      }),
    );

    t = Date.now();
    const present = entries.filter((e) => liveKeys.has(e.key));
    const contentBad: string[] = [];
    const attrBad: string[] = [];
    await mapLimit(present, CONCURRENCY, async (e) => {
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of await client.getObject(bucket.name, e.key)) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
      const sha = hash.digest("hex");
      const attrs = liveByKey.get(e.key)!.attrs;
      if (size !== e.size || sha !== e.sha256) contentBad.push(`${e.key} (${size !== e.size ? `${size} bytes, backup has ${e.size}` : "sha256 differs"})`);
      else if (!etagAgrees(e, attrs.etag)) contentBad.push(`${e.key} (ETag differs from the source's)`);
      const diffs = attributeDifferences(e, attrs);
      if (diffs.length) attrBad.push(`${e.key} (${diffs.join(", ")})`);
    });
    checks.push(
      check("minio", "object-content", bucket.name, present.length, present.length - contentBad.length, t, {
        ok: contentBad.length === 0,
        ...(contentBad.length ? { detail: `size or sha256 differs: ${nameSome(contentBad.sort())}` } : {}),
      }),
    );
    checks.push(
      check("minio", "object-attributes", bucket.name, present.length, present.length - attrBad.length, t, {
        ok: attrBad.length === 0,
        ...(attrBad.length ? { detail: `attributes differ: ${nameSome(attrBad.sort())}` } : {}),
      }),
    );

    t = Date.now();
    const canary = await runCanary(client, bucket.name);
    checks.push(check("minio", "canary", bucket.name, "write, read back, delete", canary.ok ? "ok" : "failed", t, { ok: canary.ok, ...(canary.error ? { detail: canary.error } : {}) }));
  }
  return checks;
}
