import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";

/** A pass-through that hashes (sha256) and counts what flows through it. */
export class HashCounter extends Transform {
  readonly #hash = createHash("sha256");
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  /** Call once the stream has ended. */
  digest(): string {
    return this.#hash.digest("hex");
  }
}
