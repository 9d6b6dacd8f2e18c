import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { BigIntStats } from "node:fs";
import { mapLimit } from "../concurrency.js";
import type { FileEntry } from "../manifest.js";
import { openFilesUnder } from "../runners/open-files.js";
import type { HashPool } from "./hash-pool.js";

/**
 * Hash a tool's output files while the tool still runs, as soon as each one
 * is finished, so hashing adds (almost) no wall time after the tool exits —
 * and never records a stale digest.
 *
 * A file is hashed early only when no process of the tools writing into the
 * set holds it open (/proc/<pid>/fd of each tool's process tree) and its
 * ctime is older than `quietMs`; its stat (inode, size, mtime, ctime, in ns)
 * is taken before and after the read, and the digest is kept only if the two
 * agree. Once the tools have exited, settle() stats every file again and
 * reuses a digest only when that stat is still the same; anything else is
 * hashed then. Any write to a file after its first stat — appending,
 * rewriting bytes in place, truncating, replacing it by a rename — moves its
 * ctime (which, unlike mtime, no tool can set back) to the current time: as
 * the recorded ctime was at least `quietMs` old, far more than the kernel's
 * timestamp granularity, the new one differs and the file is hashed again.
 *
 * How the tools write (checked against each): pg_dump --format=directory
 * writes each data file once, from one worker, and toc.dat at the end; mc
 * mirror writes an object to a temporary name and renames it into place;
 * redis-cli --rdb writes dump.rdb once. Early digests are an optimisation:
 * correctness rests on settle()'s stat comparison alone. Where that could
 * not hold — no /proc to see open files, or a filesystem whose timestamps
 * are whole seconds — no file is hashed early, and settle() hashes them all.
 */
export type LiveHasherOptions = {
  /** The set directory: candidates and results are relative to it. */
  root: string;
  /** Files that may be ready, in the order they are likely to be finished (set-relative). */
  candidates: () => Promise<string[]>;
  /** Processes (tool process groups' leaders) that may be writing under root now. */
  writers: () => number[];
  pool: HashPool;
  /** fsync each file once hashed (a set is durable before it is promoted). */
  durable: boolean;
  /** How long a file's ctime must be unchanged before it is hashed early. */
  quietMs?: number;
  intervalMs?: number;
  /** Stop a scan after this many candidates in a row that do not exist yet (an ordered list of expected files). */
  stopAfterMissing?: number;
};

/** A file's identity and last change as one string (compact: a bucket may hold millions): inode, size, mtime, ctime in ns. */
type Stamp = string;
/** The digest and the stamp it was taken at: "<sha256 hex><size> <stamp>". */
type Known = string;

/**
 * The same text as one flat string of its own: a slice keeps the whole
 * string it was cut from alive, and a template literal is a tree of its
 * pieces. (A JSON round trip is exact for any string.)
 */
export const flat = (s: string): string => JSON.parse(JSON.stringify(s)) as string;

const stampOf = (s: BigIntStats): Stamp => `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
const NS_PER_MS = 1_000_000n;

export class LiveHasher {
  readonly #o: Required<Omit<LiveHasherOptions, "stopAfterMissing">> & { stopAfterMissing?: number };
  readonly #known = new Map<string, Known>();
  readonly #inflight = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  #stopped = false;
  /** Files hashed early, and how many of those were hashed again at settle(): for tests and the profile. */
  readonly stats = { early: 0, late: 0, reused: 0 };

  constructor(opts: LiveHasherOptions) {
    this.#o = { quietMs: 100, intervalMs: 200, ...opts };
  }

  start(): this {
    const tick = () => {
      if (this.#stopped) return;
      this.#scanning = this.#scan().finally(() => {
        this.#scanning = undefined;
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#o.intervalMs);
      });
    };
    this.#timer = setTimeout(tick, this.#o.intervalMs);
    return this;
  }

  /** Stop scanning (the tools are done); early digests in flight are waited for. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#scanning;
    await Promise.all(this.#inflight.values());
  }

  async #scan(): Promise<void> {
    const open = openFilesUnder(this.#o.writers(), this.#o.root);
    if (!open) return; // cannot see what is being written: everything waits for settle()
    const nowNs = BigInt(Date.now()) * NS_PER_MS;
    const quietNs = BigInt(this.#o.quietMs) * NS_PER_MS;
    let missing = 0;
    const budget = this.#o.pool.size * 4;
    for (const rel of await this.#o.candidates()) {
      // A few files in flight per thread; the scan goes on as they finish.
      while (this.#inflight.size >= budget && !this.#stopped) await Promise.race(this.#inflight.values());
      if (this.#stopped) return;
      if (this.#known.has(rel) || this.#inflight.has(rel)) continue;
      const abs = join(this.#o.root, rel);
      const s1 = await stat(abs, { bigint: true }).catch(() => undefined);
      if (!s1) {
        if (this.#o.stopAfterMissing !== undefined && ++missing >= this.#o.stopAfterMissing) return;
        continue;
      }
      missing = 0;
      if (!s1.isFile() || open.has(abs)) continue;
      // Whole-second timestamps (a coarse filesystem) cannot tell a later write from this one.
      if (s1.ctimeNs % 1_000_000_000n === 0n || nowNs - s1.ctimeNs < quietNs) continue;
      const job = this.#o.pool
        .hash(abs, { durable: this.#o.durable })
        .then(async (d) => {
          const s2 = await stat(abs, { bigint: true });
          if (stampOf(s1) === stampOf(s2) && BigInt(d.size) === s1.size) {
            this.#known.set(rel, flat(`${d.sha256}${d.size} ${stampOf(s1)}`)); // one flat string: a template is a tree of pieces
            this.stats.early++;
          }
        })
        .catch(() => {}) // gone or unreadable now: settle() decides
        .finally(() => this.#inflight.delete(rel));
      this.#inflight.set(rel, job);
    }
  }

  /**
   * The digest of one file (set-relative) once its writers have exited: the
   * early one when the file's stat is unchanged since it was taken, a fresh
   * one otherwise. Call stop() first.
   */
  async digestOf(rel: string): Promise<FileEntry> {
    const abs = join(this.#o.root, rel);
    const known = this.#known.get(rel);
    if (known) {
      this.#known.delete(rel);
      const space = known.indexOf(" ", 64);
      if (known.slice(space + 1) === stampOf(await stat(abs, { bigint: true }))) {
        this.stats.reused++;
        return { path: rel, size: Number(known.slice(64, space)), sha256: flat(known.slice(0, 64)) };
      }
    }
    this.stats.late++;
    const d = await this.#o.pool.hash(abs, { durable: this.#o.durable });
    return { path: rel, ...d };
  }

  /** digestOf every path, in the order given (after stopping). */
  async settle(paths: string[]): Promise<FileEntry[]> {
    await this.stop();
    return mapLimit(paths, this.#o.pool.size * 4, (rel) => this.digestOf(rel));
  }
}
