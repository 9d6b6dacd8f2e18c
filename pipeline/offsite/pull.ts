import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { IntegrityError, OperationError } from "../errors.js";
import { pidAlive } from "../store/lock.js";
import type { Progress } from "../progress.js";
import type { Secret } from "../secret.js";
import { insideDir } from "../../probes/minio.js";
import type { Destination } from "./config.js";
import { fetchObject } from "./fetch.js";
import { readRecord } from "./remote-set.js";
import { setPrefix, type OffsiteRecord } from "./record.js";
import { listRemote, remoteFor, type Remote } from "./s3.js";
import { eachLimit } from "../concurrency.js";
import { identitiesFor, judgeFetched, judgeListed } from "./verify.js";

export type Pulled = {
  setId: string;
  /** The set as it was pushed, under the staging directory. */
  dir: string;
  record: OffsiteRecord;
  remote: Remote;
  bytes: number;
  ms: number;
  /** Removes the staging directory. */
  discard(): Promise<void>;
};

/** Staging for pulled sets: under the output root (sized for sets), never read as a set (the name is no set id). */
export const PULL_PREFIX = ".pull-";

/** Remove staging directories left by pulls whose process is gone (a killed drill cleans up nothing). */
export async function reapPulls(output: string): Promise<string[]> {
  const names = await readdir(output).catch(() => [] as string[]);
  const reaped: string[] = [];
  for (const name of names) {
    const m = /^\.pull-.+-(\d+)$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    await rm(join(output, name), { recursive: true, force: true });
    reaped.push(name);
  }
  return reaped;
}

/**
 * Download a complete copy into <output>/.pull-<set id>-<pid>/<set id>/,
 * decrypting as it streams, and check every object against the record on
 * the way (stored size and sha256). Any difference is an IntegrityError
 * (exit 3) naming the paths; the caller then verifies the set as a local one.
 */
export async function pullSet(
  dest: Destination,
  setId: string,
  opts: { output: string; progress: Progress; signal?: AbortSignal; identity?: { secret: Secret; field: string } },
): Promise<Pulled> {
  const t0 = Date.now();
  for (const name of await reapPulls(opts.output)) opts.progress.info(`pull: removed ${name}, left by a pull that was killed`);
  const r = remoteFor(dest);
  const record = await readRecord(r, setId);
  const identities = await identitiesFor(dest, record, opts.identity);
  const prefix = setPrefix(dest.prefix, setId);
  const listed = new Map((await listRemote(r, prefix)).map((o) => [o.key.slice(prefix.length), o]));
  const problems = record.files.map((f) => judgeListed(f, listed.get(f.key))).filter((x) => x !== undefined);
  const staging = join(opts.output, `${PULL_PREFIX}${setId}-${process.pid}`);
  const dir = join(staging, setId);
  const discard = () => rm(staging, { recursive: true, force: true });
  if (problems.length === 0) {
    await discard();
    await mkdir(dir, { recursive: true });
    opts.progress.info(`pull ${setId} from ${dest.name}: ${record.files.length} files, ${record.totals.storedBytes} bytes${identities ? ", decrypting" : ""}`);
    let bytes = 0;
    try {
      await eachLimit(
        record.files,
        dest.concurrency,
        async (f) => {
          const got = await fetchObject(r, prefix + f.key, identities, insideDir(dir, f.path));
          const finding = judgeFetched(f, got, undefined, record);
          if (finding) problems.push(finding);
          if (got.ok) bytes += got.storedBytes;
        },
        () => opts.signal?.aborted === true,
      );
    } catch (err) {
      await discard();
      throw err;
    }
    if (opts.signal?.aborted) {
      await discard();
      throw new OperationError("pull cancelled");
    }
    if (problems.length === 0) {
      opts.progress.info(`pull ${setId}: ${bytes} bytes in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      return { setId, dir, record, remote: r, bytes, ms: Date.now() - t0, discard };
    }
  }
  await discard();
  const names = problems.slice(0, 5).map((f) => `${f.path} (${f.verdict})`).join(", ");
  throw new IntegrityError(`the copy of ${setId} at ${dest.name} does not match its record, nothing restored: ${names}${problems.length > 5 ? ` and ${problems.length - 5} more` : ""}`);
}
