import { randomBytes, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as Minio from "minio";
import { clientTimeouts } from "../pipeline/timeouts.js";
import { OperationError } from "../pipeline/errors.js";
import { sha256Hex } from "../pipeline/hash.js";
import type { Secret } from "../pipeline/secret.js";

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
  const out: ListedObject[] = [];
  for await (const o of client.listObjectsV2(bucket, "", true) as AsyncIterable<Minio.BucketItem>) {
    if (o.name === undefined) continue; // a common prefix; none with recursive listing
    out.push({
      key: o.name,
      size: o.size,
      etag: o.etag ?? "",
      lastModified: o.lastModified ? new Date(o.lastModified).toISOString() : "",
    });
  }
  return out;
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

export async function objectAttributes(client: Minio.Client, bucket: string, key: string): Promise<ObjectAttributes> {
  const [stat, tagList] = await Promise.all([client.statObject(bucket, key), client.getObjectTagging(bucket, key)]);
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
  // minio-js leaves numeric XML character references (&#34; for '"') undecoded, and a value could
  // hold that text literally: such an object is described by HEAD instead, which is exact.
  if (Object.values(o.metadata).some((v) => String(v).includes("&#"))) return undefined;
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
  const listed: { o: ListedObject; attrs?: ObjectAttributes }[] = [];
  try {
    const stream = (client as unknown as { extensions: { listObjectsV2WithMetadata(b: string, p: string, r: boolean): AsyncIterable<MetadataListItem> } }).extensions.listObjectsV2WithMetadata(bucket, "", true);
    for await (const item of stream) {
      if (item.name === undefined) continue;
      const attrs = attributesFromListing(item);
      listed.push({ o: { key: item.name, size: item.size, etag: item.etag ?? "", lastModified: item.lastModified ? new Date(item.lastModified).toISOString() : "" }, ...(attrs ? { attrs } : {}) });
    }
  } catch {
    listed.length = 0;
    for (const o of await listObjects(client, bucket)) listed.push({ o });
  }
  const described = await mapLimit(listed, concurrency, async ({ o, attrs }) => {
    const a = attrs ?? (await attributesIfExists(client, bucket, o.key));
    return a ? { ...o, attrs: a } : undefined;
  });
  return described.filter((d): d is DescribedObject => d !== undefined);
}

/** Attributes of an object, or undefined when it no longer exists; other errors propagate. */
export async function attributesIfExists(client: Minio.Client, bucket: string, key: string): Promise<ObjectAttributes | undefined> {
  try {
    return await objectAttributes(client, bucket, key);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "NotFound" || code === "NoSuchKey") return undefined;
    throw err;
  }
}

/** Run `fn` over `items` with at most `limit` in flight, keeping order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

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

/**
 * For each key, either its path relative to the bucket directory or the
 * reason it cannot have one. A key that is also the directory of other keys
 * ("x" beside "x/y") cannot be a file there.
 */
export function mapKeysToPaths(objects: { key: string; size: number }[]): Map<string, { path: string } | { problem: string }> {
  const out = new Map<string, { path: string } | { problem: string }>();
  const dirs = new Set<string>();
  for (const { key, size } of objects) {
    if (keyPathProblem(key, size)) continue;
    const parts = key.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  for (const { key, size } of objects) {
    const problem = keyPathProblem(key, size);
    if (problem) out.set(key, { problem });
    else if (!key.endsWith("/") && dirs.has(key)) out.set(key, { problem: "key is also the folder of other keys" });
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

/** Download one object to `dest` (written to a temp name, then renamed). */
export async function fetchObject(client: Minio.Client, bucket: string, key: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.backup-drill-part`;
  try {
    const body = await client.getObject(bucket, key);
    await pipeline(body, createWriteStream(tmp, { flags: "wx" }));
    await rename(tmp, dest);
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
 * minio-js's multipart upload instead.
 */
export async function putKnownObject(
  client: Minio.Client,
  bucket: string,
  key: string,
  body: { path: string; size: number; sha256: string } | undefined,
  headers: Record<string, string>,
): Promise<void> {
  if (body && body.size > SINGLE_PUT_MAX) {
    await client.putObject(bucket, key, createReadStream(body.path), body.size, headers);
    return;
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
}

// ---------------------------------------------------------------------------
// Canary: prove a bucket takes a write and gives the same bytes back
// ---------------------------------------------------------------------------

export const CANARY_PREFIX = ".backup-drill-canary/";

export type CanaryResult = { ok: boolean; key: string; sha256: string; bytes: number; durationMs: number; error?: string };

export async function runCanary(client: Minio.Client, bucket: string, bytes = 64 * 1024): Promise<CanaryResult> {
  const t0 = Date.now();
  const key = `${CANARY_PREFIX}${randomUUID()}`;
  const body = randomBytes(bytes);
  const sha256 = sha256Hex(body);
  const result = (ok: boolean, error?: string): CanaryResult => ({ ok, key, sha256, bytes, durationMs: Date.now() - t0, ...(error ? { error } : {}) });
  try {
    await client.putObject(bucket, key, body, bytes, { "Content-Type": "application/octet-stream" });
    const stat = await client.statObject(bucket, key);
    if (stat.size !== bytes) return result(false, `stat size ${stat.size} != ${bytes}`);
    const chunks: Buffer[] = [];
    for await (const c of await client.getObject(bucket, key)) chunks.push(c as Buffer);
    const back = sha256Hex(Buffer.concat(chunks));
    if (back !== sha256) return result(false, `read back sha256 ${back.slice(0, 12)}… != written ${sha256.slice(0, 12)}…`);
    return result(true);
  } catch (err) {
    return result(false, (err as Error).message);
  } finally {
    await client.removeObject(bucket, key).catch(() => {});
  }
}

