import { Readable } from "node:stream";
import type { ReadableStream as NodeWebReadable } from "node:stream/web";
import { Decrypter, Encrypter, identityToRecipient } from "age-encryption";
import { UserError } from "../errors.js";
import type { Secret } from "../secret.js";

/**
 * age (https://age-encryption.org/v1) through the `age-encryption` package.
 * Its stream API encrypts and decrypts in 64 KiB STREAM chunks through web
 * TransformStreams: memory stays at a few chunks whatever the file size, and
 * the output is the standard format `age -d` reads.
 */

/** Ciphertext size of a plaintext of `size` bytes for these recipients (header + nonce + chunks). */
export type Encrypted = { stream: Readable; size: number };

export async function encryptStream(recipients: string[], plaintext: Readable, plaintextSize: number): Promise<Encrypted> {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const out = await e.encrypt(Readable.toWeb(plaintext) as unknown as ReadableStream<Uint8Array>);
  return { stream: Readable.fromWeb(out as unknown as NodeWebReadable<Uint8Array>), size: out.size(plaintextSize) };
}

/** Decrypt a ciphertext stream; errors (wrong key, a flipped byte, a cut-off end) surface as stream errors. */
export async function decryptStream(identities: string[], ciphertext: Readable): Promise<Readable> {
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  const out = await d.decrypt(Readable.toWeb(ciphertext) as unknown as ReadableStream<Uint8Array>);
  return Readable.fromWeb(out as unknown as NodeWebReadable<Uint8Array>);
}

/** Encrypt a small buffer in memory (records, never set files). */
export async function encryptBytes(recipients: string[], data: Uint8Array): Promise<Uint8Array> {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return e.encrypt(data);
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
