import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { availableCores } from "../cores.js";
import type { FileDigest } from "../hash.js";

const WORKER = fileURLToPath(new URL("./hash-worker.cjs", import.meta.url));

type Job = { id: number; path: string; durable: boolean; resolve: (d: FileDigest) => void; reject: (e: Error) => void };

/**
 * sha256 of files on worker threads, one file per thread at a time: hashing
 * runs on every core the process may use instead of on the main thread (one
 * core, shared with everything else a backup or verify does). A file is read
 * in 1 MiB chunks; memory is a chunk per thread. Errors keep their code
 * (ENOENT, EACCES) like fs errors do. Call close() when done.
 */
export class HashPool {
  readonly size: number;
  readonly #idle: Worker[] = [];
  readonly #all: Worker[] = [];
  readonly #queue: Job[] = [];
  readonly #running = new Map<number, Job>();
  #next = 0;
  #closed = false;

  constructor(threads = Math.min(4, availableCores())) {
    this.size = Math.max(1, threads);
  }

  /** Hash one file (and fsync it when `durable`): read once, in chunks. */
  hash(path: string, opts: { durable?: boolean } = {}): Promise<FileDigest> {
    if (this.#closed) return Promise.reject(new Error("hash pool closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#next++, path, durable: opts.durable ?? false, resolve, reject });
      this.#pump();
    });
  }

  /** Files waiting or being hashed. */
  get pending(): number {
    return this.#queue.length + this.#running.size;
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let worker = this.#idle.pop();
      if (!worker && this.#all.length < this.size) worker = this.#spawn();
      if (!worker) return;
      const job = this.#queue.shift()!;
      this.#running.set(job.id, job);
      (worker as Worker & { job?: number }).job = job.id;
      worker.postMessage({ id: job.id, path: job.path, durable: job.durable });
    }
  }

  #spawn(): Worker {
    const w = new Worker(WORKER);
    w.unref();
    w.on("message", (m: { id: number; size?: number; sha256?: string; code?: string; message?: string }) => {
      const job = this.#running.get(m.id);
      this.#running.delete(m.id);
      this.#idle.push(w);
      if (job) {
        if (m.sha256 !== undefined) job.resolve({ size: m.size!, sha256: m.sha256 });
        else job.reject(Object.assign(new Error(`${m.code ?? "error"}: ${m.message ?? "cannot hash"}, ${job.path}`), { code: m.code }));
      }
      this.#pump();
    });
    w.on("error", (err) => {
      // A thread that died takes its file with it: fail that file, start afresh for the others.
      const id = (w as Worker & { job?: number }).job;
      const job = id === undefined ? undefined : this.#running.get(id);
      if (job) {
        this.#running.delete(job.id);
        job.reject(err);
      }
      this.#all.splice(this.#all.indexOf(w), 1);
      this.#pump();
    });
    this.#all.push(w);
    return w;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new Error("hash pool closed"));
    await Promise.all(this.#all.splice(0).map((w) => w.terminate()));
    this.#idle.length = 0;
  }
}

/** Run `fn` with a pool that is closed afterwards, whatever happens. */
export async function withHashPool<T>(fn: (pool: HashPool) => Promise<T>, threads?: number): Promise<T> {
  const pool = new HashPool(threads);
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}
