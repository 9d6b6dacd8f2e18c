import type { Readable } from "node:stream";
import * as Minio from "minio";
import { listObjectsAll } from "../../probes/s3-list.js";
import { OperationError } from "../errors.js";
import type { Destination } from "./config.js";

/**
 * The destination's S3 API through minio-js (an Apache-2.0 S3 client; it
 * speaks plain S3 to any server). Only standard calls: ListObjectsV2,
 * GET/PUT/DELETE object, multipart uploads and their listing.
 */

export type Remote = { dest: Destination; client: Minio.Client };

export function remoteFor(dest: Destination): Remote {
  const url = new URL(dest.endpoint);
  const useSSL = url.protocol === "https:";
  const client = new Minio.Client({
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    accessKey: dest.accessKey.reveal(),
    secretKey: dest.secretKey.reveal(),
    region: dest.region,
    pathStyle: dest.pathStyle,
    partSize: dest.partSize,
  });
  return { dest, client };
}

/** "s3 offsite (http://host:port/bucket/prefix)" without credentials: for messages. */
export function remoteLabel(dest: Destination): string {
  const url = new URL(dest.endpoint);
  return `${dest.name} (${url.protocol}//${url.host}/${dest.bucket}/${dest.prefix})`;
}

export function remoteError(dest: Destination, what: string, err: unknown): OperationError {
  const e = err as { code?: string; message?: string };
  return new OperationError(`offsite ${remoteLabel(dest)}: ${what}: ${e.code ? `${e.code}: ` : ""}${e.message ?? String(err)}`, { cause: err });
}

export function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "NotFound" || code === "NoSuchKey" || code === "NoSuchObject";
}

export type RemoteObject = { key: string; size: number; etag: string; lastModified: Date };

/** Every object under a key prefix (recursive). */
export async function listRemote(r: Remote, keyPrefix: string): Promise<RemoteObject[]> {
  try {
    const { items } = await listObjectsAll(r.client, r.dest.bucket, { prefix: keyPrefix });
    return items.map((o) => ({ key: o.key, size: o.size, etag: normalizeEtag(o.etag), lastModified: o.lastModified ? new Date(o.lastModified) : new Date(0) }));
  } catch (err) {
    throw remoteError(r.dest, `cannot list ${keyPrefix || "the bucket"}`, err);
  }
}

export function normalizeEtag(etag: string): string {
  return etag.replace(/^"+|"+$/g, "").replace(/^W\//, "").replace(/^"+|"+$/g, "").toLowerCase();
}

/** A whole small object (records), or undefined when there is none. */
export async function getSmall(r: Remote, key: string, limit = 64 * 1024 * 1024): Promise<Buffer | undefined> {
  let body: Readable;
  try {
    body = await r.client.getObject(r.dest.bucket, key);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw remoteError(r.dest, `cannot read ${key}`, err);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > limit) {
      body.destroy();
      throw new OperationError(`offsite ${remoteLabel(r.dest)}: ${key} is larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function putSmall(r: Remote, key: string, body: Buffer, contentType = "application/json"): Promise<string> {
  try {
    const res = await r.client.putObject(r.dest.bucket, key, body, body.length, { "Content-Type": contentType });
    return normalizeEtag(res.etag);
  } catch (err) {
    throw remoteError(r.dest, `cannot write ${key}`, err);
  }
}

export async function removeKeys(r: Remote, keys: string[], concurrency = 8): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      try {
        await r.client.removeObject(r.dest.bucket, key);
      } catch (err) {
        if (!isNotFound(err)) throw remoteError(r.dest, `cannot delete ${key}`, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
}

/** Abort multipart uploads left under a prefix by an interrupted push (their parts cost storage). */
export async function abortIncompleteUploads(r: Remote, keyPrefix: string): Promise<number> {
  const uploads: { key: string; uploadId: string }[] = [];
  try {
    for await (const u of r.client.listIncompleteUploads(r.dest.bucket, keyPrefix, true) as AsyncIterable<{ key: string; uploadId: string }>) {
      uploads.push({ key: u.key, uploadId: u.uploadId });
    }
  } catch (err) {
    // Listing multipart uploads is optional for some servers; a leftover upload then only costs storage.
    if ((err as { code?: string }).code === "NotImplemented") return 0;
    throw remoteError(r.dest, `cannot list incomplete uploads under ${keyPrefix}`, err);
  }
  for (const u of uploads) {
    try {
      await r.client.abortMultipartUpload(r.dest.bucket, u.key, u.uploadId);
    } catch (err) {
      if (!isNotFound(err) && (err as { code?: string }).code !== "NoSuchUpload") throw remoteError(r.dest, `cannot abort the upload of ${u.key}`, err);
    }
  }
  return uploads.length;
}

/** The bucket exists and we may list it; otherwise an OperationError naming the destination. */
export async function checkBucket(r: Remote): Promise<void> {
  let exists: boolean;
  try {
    exists = await r.client.bucketExists(r.dest.bucket);
  } catch (err) {
    throw remoteError(r.dest, "cannot reach the bucket", err);
  }
  if (!exists) throw new OperationError(`offsite ${remoteLabel(r.dest)}: bucket ${r.dest.bucket} does not exist (create it; backup-drill never creates destination buckets)`);
}
