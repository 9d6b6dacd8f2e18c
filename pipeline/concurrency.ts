/** Run `fn` over `items` with at most `limit` in flight, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * Run `fn` over the items of an async source with at most `limit` in
 * flight, pulling the next item as one finishes (memory: what is in flight).
 * The first failure stops the pulling and is thrown once the others settle.
 */
export async function eachLimit<T>(source: AsyncIterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = source[Symbol.asyncIterator]();
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (!failed) {
      const r = await it.next();
      if (r.done) return;
      try {
        await fn(r.value);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failed) {
    await it.return?.();
    throw failed.err;
  }
}
