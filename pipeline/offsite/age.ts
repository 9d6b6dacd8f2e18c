import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { Decrypter, Encrypter, identityToRecipient, type Recipient } from "age-encryption";
import { UserError } from "../errors.js";
import type { Secret } from "../secret.js";

/**
 * age v1 files (https://age-encryption.org/v1), streamed.
 *
 * The header — the file key wrapped for each X25519 recipient, and the
 * header MAC — comes from the `age-encryption` package. Its payload cipher
 * is pure-JS ChaCha20-Poly1305 at ~16 MB/s here, so the payload (age's
 * STREAM: 64 KiB chunks, each sealed with ChaCha20-Poly1305 under a
 * big-endian chunk counter and a last-chunk flag) is framed here on
 * node:crypto's ChaCha20-Poly1305 (~650 MB/s) with the same key schedule:
 * payload key = HKDF-SHA-256(file key, salt = 16-byte nonce, "payload").
 * Memory stays at one chunk per stream; `age -d` reads the result.
 */

const CHUNK = 64 * 1024;
const TAG = 16;
const NONCE = 16;

function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Buffer {
  return Buffer.from(hkdfSync("sha256", fileKey, nonce, "payload", 32));
}

function chunkNonce(counter: bigint, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(counter, 3); // an 11-byte big-endian counter: the top 3 bytes stay zero below 2^64 chunks
  n[11] = last ? 1 : 0;
  return n;
}

function seal(key: Buffer, counter: bigint, last: boolean, plain: Buffer): Buffer {
  const c = createCipheriv("chacha20-poly1305", key, chunkNonce(counter, last), { authTagLength: TAG });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function open(key: Buffer, counter: bigint, last: boolean, sealed: Buffer): Buffer {
  if (sealed.length < TAG) throw new Error("age: truncated chunk");
  const d = createDecipheriv("chacha20-poly1305", key, chunkNonce(counter, last), { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
}

/** Ciphertext payload size of `size` plaintext bytes (the empty file is one empty final chunk). */
export function payloadSize(size: number): number {
  return size + TAG * Math.max(1, Math.ceil(size / CHUNK));
}

/** Header and nonce for a new file, and its payload key: the library wraps the file key, we capture it. */
async function newFile(recipients: string[]): Promise<{ prefix: Buffer; key: Buffer }> {
  let fileKey: Uint8Array | undefined;
  const capture: Recipient = {
    wrapFileKey: (k) => {
      fileKey = k;
      return []; // adds no stanza: the header holds only the real recipients
    },
  };
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  e.addRecipient(capture);
  // An empty file: header, nonce, one empty final chunk (a tag).
  const empty = Buffer.from(await e.encrypt(new Uint8Array(0)));
  const prefix = empty.subarray(0, empty.length - TAG);
  const nonce = prefix.subarray(prefix.length - NONCE);
  if (!fileKey) throw new Error("age: the file key was not captured");
  return { prefix: Buffer.from(prefix), key: payloadKey(fileKey, nonce) };
}

class SealStream extends Transform {
  #buf: Buffer = Buffer.alloc(0);
  #counter = 0n;
  #prefix: Buffer | undefined;
  constructor(private readonly key: Buffer, prefix: Buffer) {
    super();
    this.#prefix = prefix;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.#prefix) {
      this.push(this.#prefix);
      this.#prefix = undefined;
    }
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    // A full chunk is sealed as not-last only once a byte after it is known to exist.
    while (this.#buf.length > CHUNK) {
      this.push(seal(this.key, this.#counter++, false, this.#buf.subarray(0, CHUNK)));
      this.#buf = this.#buf.subarray(CHUNK);
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    if (this.#prefix) this.push(this.#prefix);
    this.push(seal(this.key, this.#counter, true, this.#buf));
    cb();
  }
}

class OpenStream extends Transform {
  #buf: Buffer = Buffer.alloc(0);
  #counter = 0n;
  #key: Buffer | undefined;
  constructor(private readonly unwrap: (header: Buffer) => Promise<Uint8Array>) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    if (!this.#key) {
      this.#header().then(() => this.#drain(cb), cb);
      return;
    }
    this.#drain(cb);
  }
  override _flush(cb: TransformCallback): void {
    const finish = () => {
      try {
        if (!this.#key) throw new Error("age: the file ends inside its header");
        const last = open(this.#key, this.#counter, true, this.#buf);
        if (last.length === 0 && this.#counter > 0n) throw new Error("age: the last chunk is empty");
        this.push(last);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    };
    if (!this.#key) this.#header().then(finish, cb);
    else finish();
  }
  /** Once the header line "--- <mac>" and the nonce are in, unwrap the file key. */
  async #header(): Promise<void> {
    const end = this.#buf.indexOf("\n--- ");
    const eol = end < 0 ? -1 : this.#buf.indexOf("\n", end + 1);
    if (eol < 0 || this.#buf.length < eol + 1 + NONCE) {
      if (this.#buf.length > 1024 * 1024) throw new Error("age: no header end within 1 MiB");
      return;
    }
    const fileKey = await this.unwrap(this.#buf.subarray(0, eol + 1));
    this.#key = payloadKey(fileKey, this.#buf.subarray(eol + 1, eol + 1 + NONCE));
    this.#buf = this.#buf.subarray(eol + 1 + NONCE);
  }
  #drain(cb: TransformCallback): void {
    try {
      if (this.#key) {
        while (this.#buf.length > CHUNK + TAG) {
          this.push(open(this.#key, this.#counter++, false, this.#buf.subarray(0, CHUNK + TAG)));
          this.#buf = this.#buf.subarray(CHUNK + TAG);
        }
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

export type Encrypted = { stream: Readable; size: number };

/** Encrypt a plaintext stream of `plaintextSize` bytes to the recipients; `size` is the exact ciphertext size. */
export async function encryptStream(recipients: string[], plaintext: Readable, plaintextSize: number): Promise<Encrypted> {
  const { prefix, key } = await newFile(recipients);
  const sealer = new SealStream(key, prefix);
  plaintext.once("error", (err) => sealer.destroy(err));
  return { stream: plaintext.pipe(sealer), size: prefix.length + payloadSize(plaintextSize) };
}

/** Decrypt a ciphertext stream; a wrong key, a changed byte or a cut-off end is a stream error. */
export async function decryptStream(identities: string[], ciphertext: Readable): Promise<Readable> {
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  const opener = new OpenStream((header) => d.decryptHeader(header));
  ciphertext.once("error", (err) => opener.destroy(err));
  return ciphertext.pipe(opener);
}

/**
 * The AGE-SECRET-KEY-1... lines of an identity reference's value: a bare key
 * or an age-keygen file (comments and blank lines ignored). The error names
 * the reference, never the value.
 */
export function identitiesOf(secret: Secret, field: string): string[] {
  const keys = secret
    .reveal()
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (keys.length === 0 || keys.some((k) => !/^AGE-SECRET-KEY-1[0-9A-Z]+$/.test(k))) {
    throw new UserError(`${field} (${secret.ref}): not an age X25519 identity (expected AGE-SECRET-KEY-1... lines, as age-keygen writes)`);
  }
  return keys;
}

/** The public keys (age1...) of identities, to say which recipient a key is for. */
export async function recipientsOf(identities: string[]): Promise<string[]> {
  return Promise.all(identities.map((i) => identityToRecipient(i)));
}

/** Check each configured recipient parses as an age recipient (a typo fails before any upload). */
export function checkRecipients(recipients: string[], field: string): void {
  const e = new Encrypter();
  recipients.forEach((r, i) => {
    try {
      e.addRecipient(r);
    } catch {
      throw new UserError(`${field}[${i}]: "${r}" is not a valid age recipient`);
    }
  });
}
