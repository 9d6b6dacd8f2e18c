import type * as Minio from "minio";

/**
 * ListObjectsV2 read the way the S3 API defines it, for any server.
 *
 * minio-js asks for `encoding-type=url` and then URL-decodes every key,
 * whether or not the server encoded it. S3 says the response carries
 * <EncodingType>url</EncodingType> when it did; servers that ignore the
 * parameter (Versity Gateway) return raw keys, and minio-js then turns
 * "a+b.txt" into "a b.txt" and fails on "100%.txt". Here keys are decoded
 * only when the response says they were encoded. With `metadata`, MinIO's
 * extension (UserMetadata, UserTags per object) is read when the server
 * sends it; other servers leave it out and `metadata` is null.
 */

export type ListedItem = {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
  /** MinIO's per-object metadata map (content headers and X-Amz-Meta-*), null when the server sent none. */
  metadata: Record<string, string> | null;
  /** MinIO's UserTags, split but not URL-decoded (as minio-js gives them). */
  tags: Record<string, string>;
};

const ENTITY: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

export function xmlText(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e.startsWith("#x") ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith("#") ? String.fromCodePoint(Number(e.slice(1))) : ENTITY[e]!,
  );
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? m[1] : undefined;
}

function blocks(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, "g"))].map((m) => m[1]!);
}

/** One page of a ListObjectsV2 response body. Exported for tests. */
export function parseListPage(xml: string): { items: ListedItem[]; prefixes: string[]; next?: string } {
  const encoded = tag(xml, "EncodingType")?.trim().toLowerCase() === "url";
  const key = (raw: string) => {
    const text = xmlText(raw);
    return encoded ? decodeURIComponent(text.replace(/\+/g, "%20")) : text;
  };
  const items = blocks(xml, "Contents").map((c): ListedItem => {
    const um = tag(c, "UserMetadata");
    let metadata: Record<string, string> | null = null;
    if (um !== undefined) {
      metadata = {};
      for (const m of um.matchAll(/<([^\s/>]+)>([\s\S]*?)<\/\1>/g)) metadata[m[1]!] = xmlText(m[2]!);
    }
    const tags: Record<string, string> = {};
    const ut = tag(c, "UserTags");
    if (ut) {
      for (const pair of xmlText(ut).split("&")) {
        if (!pair) continue;
        const i = pair.indexOf("=");
        tags[i < 0 ? pair : pair.slice(0, i)] = i < 0 ? "" : pair.slice(i + 1);
      }
    }
    const lm = tag(c, "LastModified");
    return {
      key: key(tag(c, "Key") ?? ""),
      size: Number(tag(c, "Size") ?? 0),
      etag: xmlText(tag(c, "ETag") ?? "").replace(/^"+|"+$/g, ""),
      lastModified: lm ? new Date(xmlText(lm)).toISOString() : "",
      metadata,
      tags,
    };
  });
  const prefixes = blocks(xml, "CommonPrefixes").map((p) => key(tag(p, "Prefix") ?? ""));
  const truncated = tag(xml, "IsTruncated")?.trim() === "true";
  const token = tag(xml, "NextContinuationToken");
  return { items, prefixes, ...(truncated && token ? { next: xmlText(token) } : {}) };
}

/** Percent-encoding as SigV4 canonicalizes it (encodeURIComponent leaves !'()* alone). */
function rfc3986(v: string): string {
  return encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Every object (and, with a delimiter, every common prefix) under `prefix`, page by page. */
export async function listObjectsAll(
  client: Minio.Client,
  bucket: string,
  opts: { prefix?: string; delimiter?: string; metadata?: boolean } = {},
): Promise<{ items: ListedItem[]; prefixes: string[] }> {
  const items: ListedItem[] = [];
  const prefixes: string[] = [];
  for await (const page of listObjectPages(client, bucket, opts)) {
    items.push(...page.items);
    prefixes.push(...page.prefixes);
  }
  return { items, prefixes };
}

/** The pages of a listing as they arrive (up to 1,000 objects each): memory is one page, whatever the bucket holds. */
export async function* listObjectPages(
  client: Minio.Client,
  bucket: string,
  opts: { prefix?: string; delimiter?: string; metadata?: boolean } = {},
): AsyncGenerator<{ items: ListedItem[]; prefixes: string[] }> {
  let token: string | undefined;
  do {
    const q: [string, string][] = [["list-type", "2"], ["encoding-type", "url"], ["max-keys", "1000"], ["prefix", opts.prefix ?? ""]];
    if (opts.delimiter) q.push(["delimiter", opts.delimiter]);
    if (opts.metadata) q.push(["metadata", "true"]);
    if (token) q.push(["continuation-token", token]);
    const query = q.map(([k, v]) => `${k}=${rfc3986(v)}`).join("&");
    const res = await client.makeRequestAsync({ method: "GET", bucketName: bucket, query }, "", [200]);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const page = parseListPage(Buffer.concat(chunks).toString("utf8"));
    token = page.next;
    yield { items: page.items, prefixes: page.prefixes };
  } while (token);
}
