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
 * Run `fn` over the items of a source (an array, or an async source such as a
 * listing read line by line) with at most `limit` in flight, pulling the next
 * item as one finishes (memory: what is in flight). The first failure, or
 * `stop()` saying so, stops the pulling; the first failure is thrown once the
 * others settle.
 */
export async function eachLimit<T>(
  source: Iterable<T> | AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  const it: Iterator<T> | AsyncIterator<T> = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  let failed: { err: unknown } | undefined;
  let done = false;
  const worker = async () => {
    while (!failed && !stop()) {
      const r = await it.next();
      if (r.done) {
        done = true;
        return;
      }
      try {
        await fn(r.value);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (!done) await it.return?.(); // close the source (a file being read) when stopped early
  if (failed) throw failed.err;
}
