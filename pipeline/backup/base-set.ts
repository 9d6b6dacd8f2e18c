import { createHash } from "node:crypto";
import { join } from "node:path";
import { insideDir } from "../../probes/minio.js";
import { forEachListed, type ObjectEntry } from "../listing.js";
import { loadManifest, type Manifest } from "../manifest.js";
import type { Progress } from "../progress.js";
import { flat } from "../store/live-hash.js";
import { listSetDirs, readLatest } from "../store/sets.js";

/**
 * The set an incremental object backup links unchanged objects from: the
 * newest complete set whose manifest checks out (its manifest.sha256 and
 * schema) — the one latest.json names, else the newest set directory that
 * loads. Undefined when there is none.
 */
export type BaseSet = { id: string; dir: string; manifest: Manifest };

export async function findBaseSet(root: string, progress: Progress): Promise<BaseSet | undefined> {
  const latest = await readLatest(root).catch(() => undefined);
  const dirs = (await listSetDirs(root)).filter((s) => !s.partial).reverse();
  const ordered = latest ? [...dirs.filter((d) => d.id === latest.id), ...dirs.filter((d) => d.id !== latest.id)] : dirs;
  for (const d of ordered) {
    try {
      const { manifest } = await loadManifest(d.dir);
      return { id: d.id, dir: d.dir, manifest };
    } catch (err) {
      progress.warn(`minio: set ${d.id} cannot be a base for linking unchanged objects: ${(err as Error).message}`);
    }
  }
  return undefined;
}

/** What must be equal for an object (or version) to be the same one: size, ETag, attributes, tags, version. */
export function objectSignature(e: ObjectEntry): string {
  const sorted = (o: Record<string, string>) => Object.entries(o).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return createHash("sha256")
    .update(
      JSON.stringify([
        e.size,
        e.etag,
        e.contentType ?? null,
        e.contentEncoding ?? null,
        e.cacheControl ?? null,
        e.contentDisposition ?? null,
        e.contentLanguage ?? null,
        sorted(e.userMetadata),
        sorted(e.tags),
        e.marker,
        e.versionId ?? null,
        e.deleteMarker ?? false,
      ]),
    )
    .digest("base64")
    .slice(0, SIG_CHARS);
}

/** 22 base64 characters: 132 bits of the signature's sha256. */
const SIG_CHARS = 22;

/** An object of the base set: where its bytes are (absolute), their size and sha256 as its manifest records them. */
export type BaseObject = { file: string; size: number; sha256: string };

const lookupKey = (key: string, versionId?: string) => (versionId === undefined ? key : flat(`${key}\u0000${versionId}`));

/**
 * One bucket of the base set, read from its listing: key (and version) ->
 * signature and file. The listing is streamed once and trusted only when its
 * bytes hash to what the base manifest records for it; the sha256 of every
 * object is then the manifest's (verify checks listing and manifest agree).
 */
export class BaseBucket {
  readonly setId: string;
  /**
   * key (and version) -> "<signature><sha256 hex><size> <path>", one string per
   * object (a bucket may hold millions); the path is left out when it is the
   * object's natural one (<bucket dir>/<key>).
   */
  readonly #objects = new Map<string, string>();
  readonly #dir: string;
  readonly #bucketDir: string;

  private constructor(set: BaseSet, bucketDir: string) {
    this.setId = set.id;
    this.#dir = set.dir;
    this.#bucketDir = bucketDir;
  }

  static async load(set: BaseSet, bucket: string): Promise<BaseBucket | undefined> {
    const facts = set.manifest.services.minio?.buckets.find((b) => b.name === bucket);
    if (!facts) return undefined;
    const recorded = set.manifest.files.find((f) => f.path === facts.listing);
    if (!recorded) return undefined;
    const base = new BaseBucket(set, facts.dir);
    const got = await forEachListed(join(set.dir, facts.listing), (e) => {
      if (e.path === null || e.deleteMarker) return;
      const path = e.path === `${facts.dir}/${e.key}` ? "" : e.path;
      base.#objects.set(lookupKey(e.key, e.versionId), flat(`${objectSignature(e)}${e.sha256}${e.size} ${path}`));
    });
    if (got.sha256 !== recorded.sha256 || got.size !== recorded.size) {
      throw new Error(`${facts.listing} of set ${set.id} does not match its manifest`);
    }
    return base;
  }

  get size(): number {
    return this.#objects.size;
  }

  /** The base's copy of `e` when it is the same object (same key, version, signature), else undefined. */
  match(e: ObjectEntry): BaseObject | undefined {
    const b = this.#objects.get(lookupKey(e.key, e.versionId));
    if (b === undefined || b.slice(0, SIG_CHARS) !== objectSignature(e)) return undefined;
    const space = b.indexOf(" ", SIG_CHARS + 64);
    const path = b.slice(space + 1) || `${this.#bucketDir}/${e.key}`;
    return { file: insideDir(this.#dir, path), size: Number(b.slice(SIG_CHARS + 64, space)), sha256: flat(b.slice(SIG_CHARS, SIG_CHARS + 64)) };
  }
}
