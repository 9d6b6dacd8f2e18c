import { open, readdir, rename } from "node:fs/promises";
import { dirname, join } from "node:path";

/** fsync a directory so a rename or create inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write and fsync a file (not atomic: for files inside a staging directory). */
export async function writeFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(path, "w", 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replace a file atomically: write a temp file beside it, fsync, rename, fsync the directory. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.tmp-${Math.random().toString(36).slice(2)}`);
  await writeFileDurable(tmp, data);
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * fsync every file and directory under `root` (after a tool wrote them,
 * before the promote rename); `files: false` when the files are durable already.
 */
export async function fsyncTree(root: string, opts: { files?: boolean; concurrency?: number } = {}): Promise<void> {
  const concurrency = opts.concurrency ?? 16;
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
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
