import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { fsyncFile } from "./store/fsync.js";

/** Read size for hashing: large enough to keep the disk busy, small enough to stay out of the heap. */
export const HASH_CHUNK = 1024 * 1024;

export type FileDigest = { size: number; sha256: string };

/** sha256 and byte count of a file, read once as a stream of 1 MiB chunks. */
export async function hashFile(path: string): Promise<FileDigest> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: HASH_CHUNK })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest("hex") };
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Call `fn` with every regular file (or symlink) under `dir`, relative to
 * `base` with "/" separators, one directory at a time: memory is one
 * directory's entries, not the whole tree. Unordered. A directory that is
 * gone is skipped; one that cannot be read ends the walk with its error,
 * unless `unreadable` takes it (its path relative to `base`, "." for `base`
 * itself, and the error code).
 */
export async function walkFiles(dir: string, base: string, fn: (rel: string) => void, unreadable?: (path: string, code: string) => void): Promise<void> {
  const rel = (p: string) => relative(base, p).split(sep).join("/");
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (!unreadable) throw err;
      unreadable(rel(d) || ".", code ?? (err as Error).message);
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() || e.isSymbolicLink()) fn(rel(p));
    }
  };
  await walk(dir);
}

/** Every regular file under `dir`, as paths relative to `base` with "/" separators, sorted. */
export async function listFiles(dir: string, base: string): Promise<string[]> {
  const out: string[] = [];
  await walkFiles(dir, base, (p) => out.push(p));
  return out.sort();
}

/**
 * Like listFiles, but a directory that cannot be read is reported (path
 * relative to `base`, and the error code) instead of ending the walk.
 */
export async function listFilesReporting(dir: string, base: string): Promise<{ files: string[]; unreadable: { path: string; code: string }[] }> {
  const files: string[] = [];
  const unreadable: { path: string; code: string }[] = [];
  await walkFiles(dir, base, (p) => files.push(p), (path, code) => unreadable.push({ path, code }));
  return { files: files.sort(), unreadable };
}

/**
 * A `sha256sum -c` compatible line. GNU coreutils escapes a name holding a
 * backslash or a newline: the line then starts with "\" and the name has
 * "\\" and "\n" in place of those characters.
 */
export function sha256sumLine(sha256: string, path: string): string {
  if (/[\\\n\r]/.test(path)) {
    const escaped = path.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
    return `\\${sha256}  ${escaped}\n`;
  }
  return `${sha256}  ${path}\n`;
}

/** Parse lines written by sha256sumLine (or by sha256sum itself). */
export function parseSha256sums(text: string): { sha256: string; path: string }[] {
  const out: { sha256: string; path: string }[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const escaped = line.startsWith("\\");
    const m = /^\\?([0-9a-f]{64}) [ *](.*)$/.exec(line);
    if (!m) throw new Error(`not a sha256sum line: ${line.slice(0, 80)}`);
    let path = m[2]!;
    if (escaped) path = path.replace(/\\(\\|n|r)/g, (_, c: string) => (c === "n" ? "\n" : c === "r" ? "\r" : "\\"));
    out.push({ sha256: m[1]!, path });
  }
  return out;
}

/**
 * Hash every file under the given set-relative paths (files or directories),
 * a few at a time. With `durable`, each file is also fsynced right after it is
 * hashed, so flushing a service's files overlaps the other services' work
 * instead of piling up before the set is promoted.
 */
export async function hashUnder(
  setDir: string,
  relPaths: string[],
  opts: { concurrency?: number; durable?: boolean } = {},
): Promise<{ path: string; size: number; sha256: string }[]> {
  const concurrency = opts.concurrency ?? 4;
  const files: string[] = [];
  for (const rel of relPaths) {
    const abs = join(setDir, rel);
    const s = await stat(abs).catch(() => undefined);
    if (s?.isDirectory()) files.push(...(await listFiles(abs, setDir)));
    else if (s?.isFile()) files.push(rel);
  }
  const unique = [...new Set(files)].sort();
  const out = new Array<{ path: string; size: number; sha256: string }>(unique.length);
  let next = 0;
  const worker = async () => {
    while (next < unique.length) {
      const i = next++;
      const d = await hashFile(join(setDir, unique[i]!));
      if (opts.durable) await fsyncFile(join(setDir, unique[i]!));
      out[i] = { path: unique[i]!, ...d };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}
