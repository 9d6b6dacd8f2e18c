import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { Writable, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decryptStream } from "./age.js";
import { isNotFound, remoteError, type Remote } from "./s3.js";
import { HashCounter } from "./streams.js";

export type Fetched =
  | { ok: true; storedBytes: number; storedSha256: string; plainBytes: number; plainSha256: string }
  /** The stored bytes do not decrypt (wrong key, altered or cut-off ciphertext). */
  | { ok: false; reason: "undecryptable"; error: string }
  | { ok: false; reason: "missing" };

/**
 * Stream one object down: hash what is stored, decrypt it when identities
 * are given, hash the plaintext, and write it to `dest` (temp name, then
 * rename) or discard it. Nothing is held in memory beyond a few chunks.
 */
export async function fetchObject(r: Remote, key: string, identities: string[] | undefined, dest: string | undefined): Promise<Fetched> {
  let body: Readable;
  try {
    body = await r.client.getObject(r.dest.bucket, key);
  } catch (err) {
    if (isNotFound(err)) return { ok: false, reason: "missing" };
    throw remoteError(r.dest, `cannot read ${key}`, err);
  }
  const stored = new HashCounter();
  const plain = new HashCounter();
  const tmp = dest ? `${dest}.backup-drill-part` : undefined;
  if (dest) await mkdir(dirname(dest), { recursive: true });
  const sink = tmp ? createWriteStream(tmp) : new Writable({ write: (_c, _e, cb) => cb() });
  body.once("error", (err) => stored.destroy(err));
  const storedStream = body.pipe(stored);
  try {
    const plaintext = identities ? await decryptStream(identities, storedStream) : storedStream;
    await pipeline(plaintext, plain, sink);
  } catch (err) {
    body.destroy();
    if (tmp) await rm(tmp, { force: true });
    if (body.errored) throw remoteError(r.dest, `cannot read ${key}`, body.errored);
    if (identities) return { ok: false, reason: "undecryptable", error: (err as Error).message };
    throw err;
  }
  if (tmp) await rename(tmp, dest!);
  return { ok: true, storedBytes: stored.bytes, storedSha256: stored.digest(), plainBytes: plain.bytes, plainSha256: plain.digest() };
}
