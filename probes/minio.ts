import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import * as http from "node:http";
import * as https from "node:https";
import { XMLParser } from "fast-xml-parser";
import * as Minio from "minio";
import { clientTimeouts } from "../pipeline/timeouts.js";
import { OperationError } from "../pipeline/errors.js";
import { sha256Hex } from "../pipeline/hash.js";
import type { Secret } from "../pipeline/secret.js";
import { listObjectPages, listObjectsAll } from "./s3-list.js";
import { mapLimit } from "../pipeline/concurrency.js";

export type MinioTarget = { endpoint: string; accessKey: Secret; secretKey: Secret; region: string };

/**
 * http(s).request with an idle deadline: a request that sends or receives
 * no byte for timeouts.s3Request fails naming the endpoint, so a stopped or
 * black-holed S3 server never hangs a run.
 */
function boundedTransport(base: typeof http | typeof https, label: string): Pick<typeof http, "request"> {
  return {
    request: ((opts: http.RequestOptions, cb?: (res: http.IncomingMessage) => void) => {
      const ms = clientTimeouts().s3RequestMs;
      const req = base.request(opts, (res) => {
        res.setTimeout?.(ms, () => res.destroy(new Error(`S3 ${label}: no data for ${Math.round(ms / 1000)}s (timeouts.s3Request)`)));
        cb?.(res);
      });
      req.setTimeout(ms, () => req.destroy(new Error(`S3 ${label}: no answer within ${Math.round(ms / 1000)}s (timeouts.s3Request)`)));
      return req;
    }) as typeof http.request,
  };
}

export function minioClient(t: MinioTarget, opts: { partSize?: number } = {}): Minio.Client {
  const url = new URL(t.endpoint);
  const useSSL = url.protocol === "https:";
  return new Minio.Client({
    transport: boundedTransport(useSSL ? https : http, url.host),
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    accessKey: t.accessKey.reveal(),
    secretKey: t.secretKey.reveal(),
    region: t.region,
    ...(opts.partSize ? { partSize: opts.partSize } : {}),
  });
}

/** The endpoint as safe-to-print text (no credentials). */
export function endpointLabel(t: Pick<MinioTarget, "endpoint">): string {
  const url = new URL(t.endpoint);
  url.username = "";
  url.password = "";
  return url.toString().replace(/\/$/, "");
}

export function minioError(t: Pick<MinioTarget, "endpoint">, what: string, err: unknown): OperationError {
  const e = err as { code?: string; message?: string };
  return new OperationError(`minio ${endpointLabel(t)}: ${what}: ${e.code ? `${e.code}: ` : ""}${e.message ?? String(err)}`, { cause: err });
}

export async function listBucketNames(client: Minio.Client): Promise<string[]> {
  return (await client.listBuckets()).map((b) => b.name).sort();
}

export type ListedObject = { key: string; size: number; etag: string; lastModified: string };

export async function listObjects(client: Minio.Client, bucket: string): Promise<ListedObject[]> {
  return (await listObjectsAll(client, bucket)).items.map((o) => ({ key: o.key, size: o.size, etag: o.etag, lastModified: o.lastModified }));
}

/** Attributes that S3 stores per object and `mc mirror` to a filesystem loses. */
export type ObjectAttributes = {
  size: number;
  etag: string;
  lastModified: string;
  contentType?: string;
  contentEncoding?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  userMetadata: Record<string, string>;
  tags: Record<string, string>;
};

const STANDARD_HEADERS: Record<string, keyof ObjectAttributes> = {
  "content-type": "contentType",
  "content-encoding": "contentEncoding",
  "cache-control": "cacheControl",
  "content-disposition": "contentDisposition",
  "content-language": "contentLanguage",
};

export async function objectAttributes(client: Minio.Client, bucket: string, key: string, versionId?: string): Promise<ObjectAttributes> {
  const at = versionId ? { versionId } : {};
  const [stat, tagList] = await Promise.all([client.statObject(bucket, key, at), client.getObjectTagging(bucket, key, at)]);
  const attrs: ObjectAttributes = {
    size: stat.size,
    etag: stat.etag,
    lastModified: new Date(stat.lastModified).toISOString(),
    userMetadata: {},
    tags: {},
  };
  for (const [rawKey, value] of Object.entries(stat.metaData as Record<string, unknown>)) {
    const k = rawKey.toLowerCase();
    const std = STANDARD_HEADERS[k];
    if (std) (attrs as Record<string, unknown>)[std] = String(value);
    else if (!k.startsWith("x-amz-")) attrs.userMetadata[k] = String(value);
  }
  // The XML parser turns numeric-looking tag values into numbers; tags are strings.
  for (const t of tagList as unknown as { Key: unknown; Value: unknown }[]) attrs.tags[String(t.Key)] = String(t.Value ?? "");
  return attrs;
}

/** The attributes a GET (or HEAD) response carries in its headers: content headers, ETag, user metadata; tags only as a count. */
export function attributesFromHeaders(headers: http.IncomingHttpHeaders): ObjectAttributes & { tagCount: number } {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(",") : v);
  const attrs: ObjectAttributes & { tagCount: number } = {
    size: Number(one(headers["content-length"]) ?? 0),
    etag: (one(headers.etag) ?? "").replace(/^"|"$/g, ""),
    lastModified: headers["last-modified"] ? new Date(one(headers["last-modified"])!).toISOString() : "",
    userMetadata: {},
    tags: {},
    tagCount: Number(one(headers["x-amz-tagging-count"]) ?? 0),
  };
  for (const [rawKey, value] of Object.entries(headers)) {
    const k = rawKey.toLowerCase();
    const std = STANDARD_HEADERS[k];
    if (std) (attrs as Record<string, unknown>)[std] = one(value);
    else if (k.startsWith("x-amz-meta-")) attrs.userMetadata[k.slice("x-amz-meta-".length)] = one(value) ?? "";
  }
  return attrs;
}

/**
 * Read an object (or one version) back once: its bytes' size and sha256 and
 * its attributes from the same GET's headers; its tags with one more request
 * only when it has any (x-amz-tagging-count). A server whose GET carries no
 * headers to read is asked with HEAD + GetObjectTagging instead.
 */
export async function readObject(client: Minio.Client, bucket: string, key: string, versionId?: string): Promise<{ size: number; sha256: string; attrs: ObjectAttributes }> {
  const at = versionId ? { versionId } : {};
  const body = await client.getObject(bucket, key, at);
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of body) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const headers = (body as unknown as { headers?: http.IncomingHttpHeaders }).headers;
  let attrs: ObjectAttributes;
  if (headers?.etag !== undefined) {
    const { tagCount, ...fromHeaders } = attributesFromHeaders(headers);
    attrs = fromHeaders;
    if (tagCount > 0) {
      for (const t of (await client.getObjectTagging(bucket, key, at)) as unknown as { Key: unknown; Value: unknown }[]) attrs.tags[String(t.Key)] = String(t.Value ?? "");
    }
  } else {
    attrs = await objectAttributes(client, bucket, key, versionId);
  }
  return { size, sha256: hash.digest("hex"), attrs };
}

/** Parsed listing-with-metadata item (MinIO extension, via minio-js). */
type MetadataListItem = { name?: string; size: number; etag?: string; lastModified?: Date | string; metadata: Record<string, string> | null; tags: Record<string, string> };

/** "a%20b" / "a+b" from MinIO's url-encoded UserTags, which minio-js splits but does not decode. */
function decodeTagPart(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

/** The listing's metadata map in the shape objectAttributes() gives for a HEAD. */
export function attributesFromListing(o: MetadataListItem): ObjectAttributes | undefined {
  if (o.metadata === null || o.metadata === undefined) return undefined; // the server ignored metadata=true
  const attrs: ObjectAttributes = {
    size: o.size,
    etag: o.etag ?? "",
    lastModified: o.lastModified ? new Date(o.lastModified).toISOString() : "",
    userMetadata: {},
    tags: {},
  };
  for (const [rawKey, value] of Object.entries(o.metadata)) {
    const k = rawKey.toLowerCase();
    const std = STANDARD_HEADERS[k];
    if (std) (attrs as Record<string, unknown>)[std] = String(value);
    else if (k.startsWith("x-amz-meta-")) attrs.userMetadata[k.slice("x-amz-meta-".length)] = String(value);
  }
  for (const [k, v] of Object.entries(o.tags ?? {})) attrs.tags[decodeTagPart(k)] = decodeTagPart(String(v ?? ""));
  return attrs;
}

export type DescribedObject = ListedObject & { attrs: ObjectAttributes };

/**
 * Every object of a bucket with its attributes. MinIO answers ListObjectsV2
 * with metadata=true in one request per 1,000 objects — content headers,
 * user metadata and tags included — instead of a HEAD and a tagging GET per
 * object. An object the listing has no metadata for (any other S3 server)
 * is described with HEAD + GetObjectTagging; one gone by then is left out.
 */
export async function describeObjects(client: Minio.Client, bucket: string, concurrency = 16): Promise<DescribedObject[]> {
  const out: DescribedObject[] = [];
  for await (const page of describeObjectPages(client, bucket, concurrency)) out.push(...page);
  return out;
}

/** describeObjects a page (up to 1,000 objects) at a time, as the listing arrives. */
export async function* describeObjectPages(client: Minio.Client, bucket: string, concurrency = 16): AsyncGenerator<DescribedObject[]> {
  // metadata=true is MinIO's extension; other servers ignore it and each object is described by HEAD.
  for await (const page of listObjectPages(client, bucket, { metadata: true })) {
    const described = await mapLimit(page.items, concurrency, async (item): Promise<DescribedObject | undefined> => {
      const o: ListedObject = { key: item.key, size: item.size, etag: item.etag, lastModified: item.lastModified };
      const attrs = attributesFromListing({ name: item.key, size: item.size, etag: item.etag, lastModified: item.lastModified, metadata: item.metadata, tags: item.tags }) ?? (await attributesIfExists(client, bucket, o.key));
      return attrs ? { ...o, attrs } : undefined;
    });
    yield described.filter((d): d is DescribedObject => d !== undefined);
  }
}

/** Attributes of an object (or one version of it), or undefined when it no longer exists; other errors propagate. */
export async function attributesIfExists(client: Minio.Client, bucket: string, key: string, versionId?: string): Promise<ObjectAttributes | undefined> {
  try {
    return await objectAttributes(client, bucket, key, versionId);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "NotFound" || code === "NoSuchKey" || code === "NoSuchVersion") return undefined;
    throw err;
  }
}

export { mapLimit } from "../pipeline/concurrency.js";

// ---------------------------------------------------------------------------
// Keys as paths
// ---------------------------------------------------------------------------

/** Why a key cannot be stored at `<bucket dir>/<key>`, or undefined when it can. */
export function keyPathProblem(key: string, size: number): string | undefined {
  if (key === "") return "empty key";
  if (key.startsWith("/")) return "key starts with /";
  if (key.includes("\0")) return "key contains a NUL byte";
  const isMarker = key.endsWith("/");
  if (isMarker && size > 0) return "key ends with / but has content";
  const segments = (isMarker ? key.slice(0, -1) : key).split("/");
  for (const s of segments) {
    if (s === "") return "key has an empty path segment (//)";
    if (s === "." || s === "..") return `key has a "${s}" path segment`;
    if (Buffer.byteLength(s) > 255) return "a path segment is longer than 255 bytes";
  }
  if (Buffer.byteLength(key) > 3500) return "key is too long for a path";
  return undefined;
}

/** Why a key that is a safe path still cannot be a file: other keys use it as their folder ("x" beside "x/y"). */
export const FOLDER_KEY_PROBLEM = "key is also the folder of other keys";

/** Add the folders a key with a safe path makes ("a/b/c" makes "a" and "a/b") to `folders`. */
export function addKeyFolders(folders: Set<string>, key: string): void {
  const parts = key.split("/");
  for (let i = 1; i < parts.length; i++) folders.add(parts.slice(0, i).join("/"));
}

/**
 * For each key, either its path relative to the bucket directory or the
 * reason it cannot have one. A key that is also the directory of other keys
 * ("x" beside "x/y") cannot be a file there.
 */
export function mapKeysToPaths(objects: { key: string; size: number }[]): Map<string, { path: string } | { problem: string }> {
  const out = new Map<string, { path: string } | { problem: string }>();
  const dirs = new Set<string>();
  for (const { key, size } of objects) if (!keyPathProblem(key, size)) addKeyFolders(dirs, key);
  for (const { key, size } of objects) {
    const problem = keyPathProblem(key, size);
    if (problem) out.set(key, { problem });
    else if (!key.endsWith("/") && dirs.has(key)) out.set(key, { problem: FOLDER_KEY_PROBLEM });
    else out.set(key, { path: key.endsWith("/") ? key.slice(0, -1) : key });
  }
  return out;
}

/** Join a relative path under `base`, refusing anything that would land outside it. */
export function insideDir(base: string, rel: string): string {
  const full = resolve(base, rel);
  const back = relative(resolve(base), full);
  if (back === "" || back === ".." || back.startsWith("../") || isAbsolute(back)) {
    throw new OperationError(`refusing to write outside ${base}: ${JSON.stringify(rel)}`);
  }
  return full;
}

/**
 * Download one object (or one version of it) to `dest`: written to a temp
 * name, hashed as it streams in (no second read), fsynced, then renamed.
 * Returns the bytes' size and sha256.
 */
export async function fetchObject(client: Minio.Client, bucket: string, key: string, dest: string, versionId?: string): Promise<{ size: number; sha256: string }> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.backup-drill-part`;
  try {
    const body = await client.getObject(bucket, key, versionId ? { versionId } : {});
    const hash = createHash("sha256");
    let size = 0;
    body.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
    });
    await pipeline(body, createWriteStream(tmp, { flags: "wx" }));
    const fh = await open(tmp, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
    return { size, sha256: hash.digest("hex") };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** S3's limit for a single PUT. */
const SINGLE_PUT_MAX = 5 * 1024 ** 3;

/**
 * Put an object whose sha256 is already known (from a verified listing):
 * one streamed PUT signed with that sha256, so the client hashes nothing
 * and the server checks the body against it (over plain HTTP; over HTTPS the
 * payload is sent unsigned, as minio-js does). Bodies over 5 GiB go through
 * minio-js's multipart upload instead. Returns the version the PUT created
 * (null on an unversioned bucket).
 */
export async function putKnownObject(
  client: Minio.Client,
  bucket: string,
  key: string,
  body: { path: string; size: number; sha256: string } | undefined,
  headers: Record<string, string>,
): Promise<{ versionId: string | null }> {
  if (body && body.size > SINGLE_PUT_MAX) {
    const up = await client.putObject(bucket, key, createReadStream(body.path), body.size, headers);
    return { versionId: up.versionId ?? null };
  }
  const https = (client as unknown as { protocol?: string }).protocol === "https:";
  const res = await client.makeRequestStreamAsync(
    { method: "PUT", bucketName: bucket, objectName: key, headers: { ...headers, "Content-Length": String(body?.size ?? 0) } },
    body ? createReadStream(body.path, { highWaterMark: 1024 * 1024 }) : Buffer.alloc(0),
    https ? "" : (body?.sha256 ?? sha256Hex("")),
    [200],
    "",
  );
  res.resume();
  await new Promise<void>((resolve, reject) => res.on("end", resolve).on("error", reject));
  const v = res.headers["x-amz-version-id"];
  return { versionId: typeof v === "string" && v !== "" ? v : null };
}

// ---------------------------------------------------------------------------
// Canary: prove a bucket takes a write and gives the same bytes back
// ---------------------------------------------------------------------------

export const CANARY_PREFIX = ".backup-drill-canary/";

export type CanaryResult = {
  ok: boolean;
  key: string;
  sha256: string;
  bytes: number;
  durationMs: number;
  /** The version the canary created (versioned buckets), removed again by this id. */
  versionId?: string;
  error?: string;
};

export type VersioningStatus = "Enabled" | "Suspended";

/**
 * Put a random object under .backup-drill-canary/, read it back, and remove
 * exactly what the put created: on a versioned bucket the version by its
 * id (a plain DELETE would leave the version and add a delete marker), on a
 * suspended one the "null" version. Whatever is left at the key afterwards
 * fails the canary, and so does a failed clean-up: it is never swallowed.
 * `versioning` is the bucket's state when the caller knows it.
 */
export async function runCanary(client: Minio.Client, bucket: string, opts: { bytes?: number; versioning?: VersioningStatus | null } = {}): Promise<CanaryResult> {
  const bytes = opts.bytes ?? 64 * 1024;
  const t0 = Date.now();
  const key = `${CANARY_PREFIX}${randomUUID()}`;
  const body = randomBytes(bytes);
  const sha256 = sha256Hex(body);
  let versionId: string | undefined;
  const result = (ok: boolean, error?: string): CanaryResult => ({ ok, key, sha256, bytes, durationMs: Date.now() - t0, ...(versionId ? { versionId } : {}), ...(error ? { error } : {}) });
  let outcome: CanaryResult;
  let put = false;
  try {
    const up = await client.putObject(bucket, key, body, bytes, { "Content-Type": "application/octet-stream" });
    put = true;
    versionId = up.versionId ?? undefined;
    const at = versionId ? { versionId } : {};
    const stat = await client.statObject(bucket, key, at);
    if (stat.size !== bytes) outcome = result(false, `stat size ${stat.size} != ${bytes}`);
    else {
      const chunks: Buffer[] = [];
      for await (const c of await client.getObject(bucket, key, at)) chunks.push(c as Buffer);
      const back = sha256Hex(Buffer.concat(chunks));
      outcome = back === sha256 ? result(true) : result(false, `read back sha256 ${back.slice(0, 12)}… != written ${sha256.slice(0, 12)}…`);
    }
  } catch (err) {
    outcome = result(false, (err as Error).message);
  }
  if (!put) return outcome;
  try {
    const versioning = versionId ? "Enabled" : opts.versioning === undefined ? await versioningStatus(client, bucket) : opts.versioning;
    await client.removeObject(bucket, key, versionId ? { versionId } : versioning === "Suspended" ? { versionId: "null" } : {});
    const left = versioning ? (await listVersions(client, bucket, key)).filter((v) => v.key === key) : (await statIfExists(client, bucket, key)) ? [{}] : [];
    if (left.length > 0) return result(false, `clean-up left ${left.length} version(s) or delete marker(s) at ${key}`);
  } catch (err) {
    return result(false, `clean-up of ${key}${versionId ? ` version ${versionId}` : ""} failed: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }
  return outcome;
}

async function statIfExists(client: Minio.Client, bucket: string, key: string): Promise<boolean> {
  try {
    await client.statObject(bucket, key);
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "NotFound" || code === "NoSuchKey") return false;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Raw S3 requests: bucket subresources and version listings, kept as the server says them
// ---------------------------------------------------------------------------

/** minio-js's query escaping: encodeURIComponent plus !'()*. */
function queryEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

type RawClient = {
  makeRequestAsync(opts: { method: string; bucketName: string; query?: string; headers?: Record<string, string> }, payload?: string | Buffer, statusCodes?: number[]): Promise<NodeJS.ReadableStream>;
};

async function s3Request(client: Minio.Client, bucket: string, method: string, query: string, body = "", headers: Record<string, string> = {}): Promise<string> {
  const res = await (client as unknown as RawClient).makeRequestAsync({ method, bucketName: bucket, query, headers }, body, method === "GET" ? [200] : [200, 204]);
  let text = "";
  for await (const chunk of res) text += String(chunk);
  return text;
}

const xml = new XMLParser({ preserveOrder: true, parseTagValue: false, trimValues: false, htmlEntities: true });

type OrderedNode = Record<string, OrderedNode[] | string>;

/** The text of each direct child element, by tag (the first of each). */
function fields(children: OrderedNode[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const node of children) {
    for (const [tag, value] of Object.entries(node)) {
      if (tag === ":@" || tag in out) continue;
      out[tag] = Array.isArray(value) ? value.map((v) => (typeof v["#text"] === "string" ? v["#text"] : "")).join("") : String(value);
    }
  }
  return out;
}

export type ListedVersion = {
  key: string;
  versionId: string;
  isLatest: boolean;
  deleteMarker: boolean;
  size: number;
  etag: string;
  lastModified: string;
};

/**
 * Every version and delete marker under `prefix`, in the server's order: by
 * key, newest first within a key. Read from the raw ListObjectVersions XML,
 * which interleaves versions and delete markers in that order (minio-js
 * keeps the two apart and loses it).
 */
export async function listVersions(client: Minio.Client, bucket: string, prefix = ""): Promise<ListedVersion[]> {
  const out: ListedVersion[] = [];
  let keyMarker = "";
  let versionIdMarker = "";
  for (;;) {
    const q = [`encoding-type=url`, `prefix=${queryEscape(prefix)}`, "versions"];
    if (keyMarker) q.push(`key-marker=${queryEscape(keyMarker)}`);
    if (versionIdMarker) q.push(`version-id-marker=${queryEscape(versionIdMarker)}`);
    const doc = xml.parse(await s3Request(client, bucket, "GET", q.sort().join("&"))) as OrderedNode[];
    const root = doc.find((n) => "ListVersionsResult" in n)?.ListVersionsResult as OrderedNode[] | undefined;
    if (!root) throw new OperationError(`${bucket}: unexpected ListObjectVersions answer`);
    const top = fields(root);
    const decode = (s: string) => (top.EncodingType === "url" ? decodeURIComponent(s.replace(/\+/g, "%20")) : s);
    for (const node of root) {
      const tag = "Version" in node ? "Version" : "DeleteMarker" in node ? "DeleteMarker" : undefined;
      if (!tag) continue;
      const f = fields(node[tag] as OrderedNode[]);
      out.push({
        key: decode(f.Key ?? ""),
        versionId: f.VersionId ?? "null",
        isLatest: f.IsLatest === "true",
        deleteMarker: tag === "DeleteMarker",
        size: Number(f.Size ?? 0),
        etag: (f.ETag ?? "").replace(/^"|"$/g, ""),
        lastModified: f.LastModified ? new Date(f.LastModified).toISOString() : "",
      });
    }
    if (top.IsTruncated !== "true") return out;
    keyMarker = decode(top.NextKeyMarker ?? "");
    versionIdMarker = top.NextVersionIdMarker ?? "";
  }
}

/** A bucket configuration backup-drill records and puts back, by its S3 subresource. */
export const CARRIED_CONFIGS = { versioning: "versioning", objectLock: "object-lock", lifecycle: "lifecycle" } as const;
export type CarriedConfig = keyof typeof CARRIED_CONFIGS;

/** Bucket features backup-drill cannot put back: reported by name, never dropped in silence. */
const UNCARRIED: { sub: string; name: string; absent: RegExp; why: string; empty?: (body: string) => boolean }[] = [
  { sub: "policy", name: "bucket policy", absent: /^NoSuchBucketPolicy$/, why: "set it again on the restored bucket" },
  { sub: "tagging", name: "bucket tags", absent: /^NoSuchTagSet$/, why: "set them again on the restored bucket" },
  { sub: "encryption", name: "default encryption", absent: /^ServerSideEncryptionConfigurationNotFoundError$/, why: "it depends on the target's KMS; restored objects are written unencrypted-by-default" },
  { sub: "replication", name: "replication", absent: /^ReplicationConfigurationNotFoundError$/, why: "it names remote targets with their own credentials" },
  {
    sub: "notification",
    name: "event notifications",
    absent: /^$/,
    why: "they name targets configured on the server",
    empty: (body) => !/<(QueueConfiguration|TopicConfiguration|CloudFunctionConfiguration)>/.test(body),
  },
];

/** Server answers that mean "this server has no such feature": nothing to carry, nothing to say. */
const UNSUPPORTED = /^(NotImplemented|MethodNotAllowed|XNotImplemented|UnsupportedOperation)$/;

/** The raw XML of a bucket subresource, or undefined when the bucket has none. */
async function subresource(client: Minio.Client, bucket: string, sub: string, absent: RegExp): Promise<string | undefined> {
  try {
    return await s3Request(client, bucket, "GET", sub);
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    if (absent.test(code) || UNSUPPORTED.test(code)) return undefined;
    throw err;
  }
}

/** "Enabled", "Suspended", or null for a bucket that never had versioning. */
export function versioningOf(xmlText: string | undefined): VersioningStatus | null {
  const m = /<Status>(Enabled|Suspended)<\/Status>/.exec(xmlText ?? "");
  return m ? (m[1] as VersioningStatus) : null;
}

export async function versioningStatus(client: Minio.Client, bucket: string): Promise<VersioningStatus | null> {
  return versioningOf(await subresource(client, bucket, "versioning", /^$/));
}

/** Whether an object-lock configuration has a default retention rule (new versions are locked). */
export function hasDefaultRetention(objectLockXml: string | undefined): boolean {
  return /<DefaultRetention>/.test(objectLockXml ?? "");
}

export type BucketFeatures = {
  versioning: VersioningStatus | null;
  /** Raw XML of each configuration the bucket has, as the server gave it. */
  configs: Partial<Record<CarriedConfig, string>>;
  /** Features the tool cannot carry (or could not read), each by name with what to do. */
  warnings: string[];
};

/**
 * What a bucket has beyond its objects: versioning, object lock and
 * lifecycle (recorded to be put back), and every feature the tool cannot
 * carry (policy, tags, default encryption, replication, notifications),
 * named as a warning. A bucket with none of them gives no warning.
 */
export async function bucketFeatures(client: Minio.Client, bucket: string): Promise<BucketFeatures> {
  const warnings: string[] = [];
  const configs: BucketFeatures["configs"] = {};
  const read = async (sub: string, absent: RegExp, name: string): Promise<string | undefined> => {
    try {
      return await subresource(client, bucket, sub, absent);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      warnings.push(`${name}: cannot be read (${e.code ?? e.message}); if the bucket has one, it is not in this set`);
      return undefined;
    }
  };
  const versioningXml = await read("versioning", /^$/, "versioning state");
  const versioning = versioningOf(versioningXml);
  if (versioning) configs.versioning = versioningXml!;
  const lock = await read("object-lock", /^(ObjectLockConfigurationNotFoundError|ObjectLockConfigurationNotFound)$/, "object lock configuration");
  if (lock && /<ObjectLockEnabled>Enabled<\/ObjectLockEnabled>/.test(lock)) {
    configs.objectLock = lock;
    warnings.push("object lock: per-version retention periods and legal holds are not carried; restored versions get the bucket's default retention, if any");
  }
  const lifecycle = await read("lifecycle", /^NoSuchLifecycleConfiguration$/, "lifecycle configuration");
  if (lifecycle) configs.lifecycle = lifecycle;
  for (const f of UNCARRIED) {
    const body = await read(f.sub, f.absent, f.name);
    if (body !== undefined && !(f.empty?.(body) ?? false)) warnings.push(`${f.name}: not carried by backup-drill (${f.why})`);
  }
  return { versioning, configs, warnings };
}

/** Put a recorded configuration back (the server requires Content-MD5 for some). */
export async function putBucketConfig(client: Minio.Client, bucket: string, which: CarriedConfig, body: string): Promise<void> {
  const md5 = createHash("md5").update(body).digest("base64");
  await s3Request(client, bucket, "PUT", CARRIED_CONFIGS[which], body, { "Content-MD5": md5, "Content-Type": "application/xml" });
}

/** A configuration read back, or undefined when the bucket has none of that kind. */
export async function getBucketConfig(client: Minio.Client, bucket: string, which: CarriedConfig): Promise<string | undefined> {
  const absent = { versioning: /^$/, objectLock: /^(ObjectLockConfigurationNotFoundError|ObjectLockConfigurationNotFound)$/, lifecycle: /^NoSuchLifecycleConfiguration$/ }[which];
  const body = await subresource(client, bucket, CARRIED_CONFIGS[which], absent);
  if (which === "versioning" && !versioningOf(body)) return undefined;
  return body;
}

/** A configuration's XML without what servers vary in: the declaration, namespaces, whitespace between tags. */
export function normalizeConfigXml(text: string): string {
  return text
    .replace(/<\?xml[^>]*\?>/, "")
    .replace(/\sxmlns(:\w+)?="[^"]*"/g, "")
    .replace(/>\s+</g, "><")
    .trim();
}
