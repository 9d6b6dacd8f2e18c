import { createHash } from "node:crypto";
import { open, readdir, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OperationError } from "../errors.js";

/** An error of a file operation as one line naming the path: "<path>: cannot write: ENOSPC (no space left on device)". */
export function fileError(path: string, verb: string, err: unknown): OperationError {
  const e = err as NodeJS.ErrnoException;
  const why = e.code ? `${e.code}${e.message ? ` (${e.message.replace(/^[A-Z]+: /, "").replace(/, \w+ '.*'$/, "")})` : ""}` : String(e.message ?? err);
  return new OperationError(`${path}: cannot ${verb}: ${why}`, { cause: err });
}

async function named<T>(path: string, verb: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof OperationError) throw err;
    throw fileError(path, verb, err);
  }
}

/** fsync a directory so a rename or create inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  await named(dir, "fsync", async () => {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

export async function fsyncFile(path: string): Promise<void> {
  await named(path, "fsync", async () => {
    const fh = await open(path, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/** Write and fsync a file (not atomic: for files inside a staging directory). Errors name the path. */
export async function writeFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  await named(path, "write", async () => {
    const fh = await open(path, "w", 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/**
 * A file written from pieces of text in batches (memory: one batch, whatever
 * the file's size), its bytes counted and passed to `tap` (a hash) as they
 * go out. close() writes what is left, fsyncs when asked, and gives the size.
 */
export class TextFileWriter {
  #size = 0;
  #batch: string[] = [];
  #length = 0;
  private constructor(
    readonly fh: FileHandle,
    readonly tap: ((bytes: Buffer) => void) | undefined,
  ) {}

  static async open(path: string, opts: { mode?: number; tap?: (bytes: Buffer) => void } = {}): Promise<TextFileWriter> {
    return new TextFileWriter(await open(path, "w", opts.mode ?? 0o644), opts.tap);
  }

  async write(text: string): Promise<void> {
    this.#batch.push(text);
    this.#length += text.length;
    if (this.#length >= 1 << 20) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#batch.length === 0) return;
    const buf = Buffer.from(this.#batch.join(""), "utf8");
    this.#batch = [];
    this.#length = 0;
    this.tap?.(buf);
    this.#size += buf.length;
    await this.fh.write(buf);
  }

  async close(opts: { durable: boolean }): Promise<number> {
    try {
      await this.#flush();
      if (opts.durable) await this.fh.sync();
    } finally {
      await this.fh.close();
    }
    return this.#size;
  }

  /** Close without caring for the result (an error path). */
  async abandon(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}

/**
 * Write a file from pieces of text (memory: a batch of pieces, whatever the
 * file's size), fsync it, and return the sha256 of its bytes. Errors name the path.
 */
export async function writeStreamDurable(path: string, pieces: () => Iterable<string>): Promise<string> {
  return named(path, "write", async () => {
    const hash = createHash("sha256");
    const file = await TextFileWriter.open(path, { tap: (b) => hash.update(b) });
    try {
      for (const piece of pieces()) await file.write(piece);
    } catch (err) {
      await file.abandon();
      throw err;
    }
    await file.close({ durable: true });
    return hash.digest("hex");
  });
}

const TEMP_PATTERN = /^\.(.+)\.(\d+)\.[0-9a-z]+\.tmp$/;

/** A temp file of writeFileAtomic whose writer is gone (prune removes these). */
export function isStaleTempFile(name: string): boolean {
  const m = TEMP_PATTERN.exec(name);
  if (!m) return false;
  const pid = Number(m[2]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "EPERM";
  }
}

/**
 * Replace a file atomically: write a temp file beside it, fsync, rename,
 * fsync the directory. On failure the temp file is removed and the error
 * names the file (and the temp file when that is where it failed).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    await writeFileDurable(tmp, data);
    await named(path, "replace", () => rename(tmp, path));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    if (err instanceof OperationError && err.message.startsWith(tmp)) {
      throw new OperationError(`${path}: cannot write (temp file ${basename(tmp)}, removed): ${err.message.slice(tmp.length + 2)}`, { cause: err });
    }
    throw err;
  }
  await fsyncDir(dirname(path));
}

/**
 * fsync every file and directory under `root` (after a tool wrote them,
 * before the promote rename); `files: false` when the files are durable already.
 */
export async function fsyncTree(root: string, opts: { files?: boolean; concurrency?: number } = {}): Promise<void> {
  const concurrency = opts.concurrency ?? 16;
  const entries = await named(root, "list", () => readdir(root, { withFileTypes: true, recursive: true }));
  const paths = entries.filter((e) => e.isDirectory() || ((opts.files ?? true) && e.isFile())).map((e) => join(e.parentPath, e.name));
  paths.push(root);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const p = paths[next++]!;
      await fsyncFile(p);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
