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

/** Run `fn` over `items` with at most `limit` in flight; stops taking new items once `stop()` says so. */
export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined && !stop()) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}
