import { join } from "node:path";
import type * as Minio from "minio";
import {
  CANARY_PREFIX,
  CARRIED_CONFIGS,
  getBucketConfig,
  hasDefaultRetention,
  listVersions,
  mapLimit,
  minioClient,
  minioError,
  normalizeConfigXml,
  putBucketConfig,
  readObject,
  putKnownObject,
  runCanary,
  versioningStatus,
  type CarriedConfig,
  type ListedVersion,
  type MinioTarget,
  type ObjectAttributes,
} from "../../probes/minio.js";
import type { BucketFacts } from "../manifest.js";
import type { DrillCheck } from "../drill-summary.js";
import { OperationError } from "../errors.js";
import { listedEntries, type ObjectEntry } from "../listing.js";
import { eachLimit } from "../concurrency.js";
import { listObjectPages } from "../../probes/s3-list.js";
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

/** The listing of a bucket in the set, limited to a prefix, one entry at a time (memory: one entry). */
export async function* selectedStream(set: LoadedSet, bucket: BucketFacts, sel: MinioSelection): AsyncGenerator<ObjectEntry> {
  for await (const e of listedEntries(join(set.dir, bucket.listing))) if (!sel.prefix || e.key.startsWith(sel.prefix)) yield e;
}

/** The listing of a bucket in the set, limited to a prefix. */
export async function selectedEntries(set: LoadedSet, bucket: BucketFacts, sel: MinioSelection): Promise<ObjectEntry[]> {
  const entries: ObjectEntry[] = [];
  for await (const e of selectedStream(set, bucket, sel)) entries.push(e);
  return entries;
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

const ENABLED_XML = '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>';

/** The configurations a restore puts on a bucket, in the order it puts them (after the objects). */
export function configsToRestore(bucket: BucketFacts, sel: MinioSelection): [CarriedConfig, string][] {
  if (sel.prefix !== undefined || !bucket.configs) return [];
  const c = bucket.configs;
  return [
    ...(c.versioning ? [["versioning", c.versioning] as [CarriedConfig, string]] : []),
    // Object lock is enabled when the bucket is created; its configuration carries the default retention rule.
    ...(c.objectLock && hasDefaultRetention(c.objectLock) ? [["objectLock", c.objectLock] as [CarriedConfig, string]] : []),
    ...(c.lifecycle ? [["lifecycle", c.lifecycle] as [CarriedConfig, string]] : []),
  ];
}

/** A listing's lines grouped by key, each group in listing order (oldest version first). */
export function versionsByKey(entries: ObjectEntry[]): Map<string, ObjectEntry[]> {
  const out = new Map<string, ObjectEntry[]>();
  for (const e of entries) out.set(e.key, [...(out.get(e.key) ?? []), e]);
  return out;
}

/** Put one listing line back: an object (its bytes, headers and tags) or a delete marker. */
async function putEntry(client: Minio.Client, set: LoadedSet, bucket: string, e: ObjectEntry): Promise<void> {
  if (e.deleteMarker) {
    await client.removeObject(bucket, e.key); // on a versioned bucket: a new delete marker
    return;
  }
  const body = e.path === null ? undefined : { path: join(set.dir, e.path), size: e.size, sha256: e.sha256 };
  const { versionId } = await putKnownObject(client, bucket, e.key, body, putHeaders(e));
  if (Object.keys(e.tags).length > 0) await client.setObjectTagging(bucket, e.key, e.tags, versionId ? { versionId } : undefined);
}

/**
 * Put every selected object of the set into the target at its recorded key,
 * with its recorded headers, user metadata and tags; folder/ markers
 * included; a missing bucket is created (with object lock when the source
 * had it). A versioned bucket gets versioning first, then every version
 * and delete marker of a key in the order they were written (keys side by
 * side); its recorded configurations (versioning state, default retention,
 * lifecycle) are put last, so that none acts on the restore itself.
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
    const locked = bucket.configs?.objectLock !== undefined;
    try {
      if (!(await client.bucketExists(bucket.name))) await client.makeBucket(bucket.name, target.region, locked ? { ObjectLocking: true } : {});
      if (bucket.versioning) await putBucketConfig(client, bucket.name, "versioning", ENABLED_XML);
    } catch (err) {
      throw minioError(target, `cannot create bucket ${bucket.name}`, err);
    }
    let done = 0;
    const total = sel.prefix === undefined ? bucket.objects : undefined;
    const put = async (e: ObjectEntry) => {
      try {
        await putEntry(client, set, bucket.name, e);
      } catch (err) {
        throw minioError(target, `cannot put ${bucket.name}/${JSON.stringify(e.key)}${e.versionId ? ` (version ${e.versionId} of the source)` : ""}`, err);
      }
      objects++;
      bytes += e.size;
      if (++done % 500 === 0) onProgress?.(bucket.name, done, total ?? done);
    };
    if (bucket.versioning) {
      const entries = await selectedEntries(set, bucket, sel);
      await mapLimit([...versionsByKey(entries).values()], CONCURRENCY, async (versions) => {
        for (const e of versions) await put(e);
      });
    } else {
      // Streamed from the listing: a bucket of millions restores in flat memory.
      await eachLimit(selectedStream(set, bucket, sel), CONCURRENCY, put);
    }
    for (const [which, body] of configsToRestore(bucket, sel)) {
      await putBucketConfig(client, bucket.name, which, body).catch((err) => {
        throw minioError(target, `cannot put the ${which} configuration of ${bucket.name}`, err);
      });
    }
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
    checks.push(...(bucket.versioning ? await checkVersions(client, target, bucket, await selectedEntries(set, bucket, sel), sel, opts) : await checkObjects(client, target, set, bucket, sel, opts)));
    checks.push(...(await checkConfigs(client, bucket, sel)));
    for (const w of bucket.warnings ?? []) {
      if (w.startsWith("canary:")) continue; // the drill's own canary says so below
      checks.push(check("minio", "not-carried", bucket.name, null, null, Date.now(), { warning: w }));
    }
    const t = Date.now();
    const lock = bucket.configs?.objectLock;
    if (hasDefaultRetention(lock) && sel.prefix === undefined) {
      checks.push(check("minio", "canary", bucket.name, "write, read back, delete", "skipped", t, { ok: true, warning: "not run: the bucket's default retention would keep the canary's object" }));
    } else {
      const canary = await runCanary(client, bucket.name);
      checks.push(check("minio", "canary", bucket.name, "write, read back, delete", canary.ok ? "ok" : "failed", t, { ok: canary.ok, ...(canary.error ? { detail: canary.error } : {}) }));
    }
  }
  return checks;
}

/**
 * Object count, keys, content and attributes of an unversioned bucket, in
 * flat memory: the target is listed page by page against the set's keys
 * (count, extras), then every object of the set is read back once — its
 * bytes and attributes from one GET (tags only when it has any); one that
 * is not there is missing.
 */
async function checkObjects(client: Minio.Client, target: MinioTarget, set: LoadedSet, bucket: BucketFacts, sel: MinioSelection, opts: { allowExtra?: boolean }): Promise<DrillCheck[]> {
  const checks: DrillCheck[] = [];
  let t = Date.now();
  const want = new Set<string>();
  for await (const e of selectedStream(set, bucket, sel)) want.add(e.key);
  let live = 0;
  const extra: string[] = [];
  try {
    for await (const page of listObjectPages(client, bucket.name)) {
      for (const o of page.items) {
        if (o.key.startsWith(CANARY_PREFIX) || (sel.prefix && !o.key.startsWith(sel.prefix))) continue;
        live++;
        // A restore into a bucket that already held other objects keeps them: they are not failures there.
        if (!want.has(o.key) && !opts.allowExtra) extra.push(o.key);
      }
    }
  } catch (err) {
    throw minioError(target, `cannot list ${bucket.name}`, err);
  }
  const wanted = want.size;
  want.clear();

  const tContent = Date.now();
  const missing: string[] = [];
  const contentBad: string[] = [];
  const attrBad: string[] = [];
  let compared = 0;
  await eachLimit(selectedStream(set, bucket, sel), CONCURRENCY, async (e) => {
    let got;
    try {
      got = await readObject(client, bucket.name, e.key);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "NoSuchKey" || code === "NotFound") {
        missing.push(e.key);
        return;
      }
      throw minioError(target, `cannot read ${bucket.name}/${JSON.stringify(e.key)}`, err);
    }
    compared++;
    const why = contentVerdict(e, got);
    if (why) contentBad.push(`${e.key} (${why})`);
    const diffs = attributeDifferences(e, got.attrs);
    if (diffs.length) attrBad.push(`${e.key} (${diffs.join(", ")})`);
  });
  checks.push(check("minio", "object-count", bucket.name, wanted, opts.allowExtra ? wanted - missing.length : live, t));
  t = Date.now();
  checks.push(keysCheck(bucket.name, missing.sort(), extra.sort(), t));
  checks.push(...contentChecks(bucket.name, compared, contentBad, attrBad, tContent));
  return checks;
}

function keysCheck(bucket: string, missing: string[], extra: string[], t: number): DrillCheck {
  return check("minio", "object-keys", bucket, { missing: 0, extra: 0 }, { missing: missing.length, extra: extra.length }, t, {
    ...(missing.length || extra.length
      ? { detail: [missing.length ? `missing: ${nameSome(missing)}` : "", extra.length ? `extra: ${nameSome(extra)}` : ""].filter(Boolean).join("; ") }
      : {}),
  });
}

function contentChecks(bucket: string, compared: number, contentBad: string[], attrBad: string[], t: number): DrillCheck[] {
  return [
    check("minio", "object-content", bucket, compared, compared - contentBad.length, t, {
      ok: contentBad.length === 0,
      ...(contentBad.length ? { detail: `size or sha256 differs: ${nameSome(contentBad.sort())}` } : {}),
    }),
    check("minio", "object-attributes", bucket, compared, compared - attrBad.length, t, {
      ok: attrBad.length === 0,
      ...(attrBad.length ? { detail: `attributes differ: ${nameSome(attrBad.sort())}` } : {}),
    }),
  ];
}

/** Size, sha256 and (single-part) ETag of what was read back against the recorded object. */
function contentVerdict(e: ObjectEntry, got: { size: number; sha256: string; attrs: { etag: string } }): string | undefined {
  if (got.size !== e.size) return `${got.size} bytes, backup has ${e.size}`;
  if (got.sha256 !== e.sha256) return "sha256 differs";
  if (!etagAgrees(e, got.attrs.etag)) return "ETag differs from the source's";
  return undefined;
}

/** A key's versions as a sequence the drill compares: a delete marker, or a version's size. */
function shape(versions: { deleteMarker?: boolean; size: number }[]): string {
  return versions.map((v) => (v.deleteMarker ? "delete-marker" : String(v.size))).join(",");
}

/**
 * A versioned bucket, per key: the number of versions, their order, which
 * are delete markers, and every version's size, sha256 and attributes, read
 * back by version ID (the IDs themselves are new: no S3 server keeps them).
 */
async function checkVersions(
  client: Minio.Client,
  target: MinioTarget,
  bucket: BucketFacts,
  entries: ObjectEntry[],
  sel: MinioSelection,
  opts: { allowExtra?: boolean },
): Promise<DrillCheck[]> {
  const checks: DrillCheck[] = [];
  let t = Date.now();
  const versioning = await versioningStatus(client, bucket.name);
  checks.push(check("minio", "versioning", bucket.name, bucket.versioning, versioning ?? "off", t));
  const live = (await listVersions(client, bucket.name, sel.prefix ?? "").catch((err) => {
    throw minioError(target, `cannot list the versions in ${bucket.name}`, err);
  })).filter((v) => !v.key.startsWith(CANARY_PREFIX));
  const want = versionsByKey(entries);
  const got = new Map<string, ListedVersion[]>();
  for (const v of live) got.set(v.key, [v, ...(got.get(v.key) ?? [])]); // newest first on the wire: oldest first here
  const missing = [...want.keys()].filter((k) => !got.has(k));
  const extra = opts.allowExtra ? [] : [...got.keys()].filter((k) => !want.has(k));
  if (opts.allowExtra) {
    // A restore into a bucket that held versions already puts the set's on top of them: compare the newest.
    for (const [k, vs] of got) if (want.has(k)) got.set(k, vs.slice(-want.get(k)!.length));
  }
  const counted = opts.allowExtra ? [...got.entries()].filter(([k]) => want.has(k)).reduce((a, [, vs]) => a + vs.length, 0) : live.length;
  checks.push(check("minio", "object-count", bucket.name, entries.length, counted, t, { detail: "versions and delete markers" }));
  checks.push(keysCheck(bucket.name, missing, extra, t));

  t = Date.now();
  const sequenceBad: string[] = [];
  const pairs: [ObjectEntry, ListedVersion][] = [];
  for (const [key, versions] of want) {
    const restored = got.get(key);
    if (!restored) continue;
    if (shape(versions) !== shape(restored)) {
      const markers = (vs: { deleteMarker?: boolean }[]) => vs.filter((v) => v.deleteMarker).length;
      sequenceBad.push(
        `${key} (${restored.length !== versions.length ? `${restored.length} versions, backup has ${versions.length}` : markers(restored) !== markers(versions) ? `${markers(restored)} delete markers, backup has ${markers(versions)}` : "sizes or order differ"})`,
      );
      continue;
    }
    versions.forEach((e, i) => pairs.push([e, restored[i]!]));
  }
  const keysCompared = [...want.keys()].filter((k) => got.has(k)).length;
  checks.push(
    check("minio", "object-versions", bucket.name, `${keysCompared} keys, ${shapeCount(want, got)}`, `${keysCompared - sequenceBad.length} keys in order`, t, {
      ok: sequenceBad.length === 0,
      ...(sequenceBad.length ? { detail: `version history differs: ${nameSome(sequenceBad.sort())}` } : {}),
    }),
  );

  t = Date.now();
  const objects = pairs.filter(([e]) => !e.deleteMarker);
  const contentBad: string[] = [];
  const attrBad: string[] = [];
  await mapLimit(objects, CONCURRENCY, async ([e, v]) => {
    const label = `${e.key} version ${nthOf(want.get(e.key)!, e)}`;
    // One GET: the bytes and the attributes together (tags only when the version has any).
    const got = await readObject(client, bucket.name, e.key, v.versionId);
    const why = contentVerdict(e, got);
    if (why) contentBad.push(`${label} (${why})`);
    const diffs = attributeDifferences(e, got.attrs);
    if (diffs.length) attrBad.push(`${label} (${diffs.join(", ")})`);
  });
  checks.push(...contentChecks(bucket.name, objects.length, contentBad, attrBad, t));
  return checks;
}

function shapeCount(want: Map<string, ObjectEntry[]>, got: Map<string, ListedVersion[]>): string {
  let versions = 0;
  let markers = 0;
  for (const [k, vs] of want) {
    if (!got.has(k)) continue;
    for (const v of vs) v.deleteMarker ? markers++ : versions++;
  }
  return `${versions} versions, ${markers} delete markers`;
}

/** "2 of 3": a version's place in its key's history, oldest first. */
function nthOf(versions: ObjectEntry[], e: ObjectEntry): string {
  return `${versions.indexOf(e) + 1} of ${versions.length}`;
}

/**
 * Each configuration the restore put back reads back the same (XML compared
 * without namespaces and whitespace); object lock by whether it is enabled
 * and its default retention.
 */
async function checkConfigs(client: Minio.Client, bucket: BucketFacts, sel: MinioSelection): Promise<DrillCheck[]> {
  if (sel.prefix !== undefined || !bucket.configs) return [];
  const checks: DrillCheck[] = [];
  for (const which of ["versioning", "objectLock", "lifecycle"] as const) {
    const recorded = bucket.configs[which];
    if (recorded === undefined) continue;
    const t = Date.now();
    let actual: string | undefined;
    try {
      actual = await getBucketConfig(client, bucket.name, which);
    } catch (err) {
      checks.push(check("minio", "bucket-config", `${bucket.name} ${CARRIED_CONFIGS[which]}`, normalizeConfigXml(recorded), null, t, { ok: false, detail: (err as Error).message }));
      continue;
    }
    const want = normalizeConfigXml(recorded);
    const have = actual === undefined ? null : normalizeConfigXml(actual);
    checks.push(check("minio", "bucket-config", `${bucket.name} ${CARRIED_CONFIGS[which]}`, want, have, t, want === have ? {} : { detail: have === null ? "missing on the restored bucket" : "differs" }));
  }
  return checks;
}
