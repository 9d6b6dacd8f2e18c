import { constants } from "node:fs";
import { copyFile, link, mkdir, open, stat } from "node:fs/promises";
import { dirname } from "node:path";

/** Link failures that a copy works around: another filesystem, no hard links there, too many links. */
const COPY_INSTEAD = new Set(["EXDEV", "EPERM", "EMLINK", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"]);

/**
 * Put the file `from` (of an earlier set) at `to` (in the set being made):
 * a hard link, so both sets hold the same bytes and deleting either leaves
 * the other whole; a copy (a reflink where the filesystem can, fsynced) when
 * linking is refused. `size` guards against a base file that is no longer
 * what its manifest says: a different size is "stale", and nothing is made.
 */
export async function linkOrCopy(from: string, to: string, size: number): Promise<"linked" | "copied" | "stale"> {
  const s = await stat(from).catch(() => undefined);
  if (!s?.isFile() || s.size !== size) return "stale";
  await mkdir(dirname(to), { recursive: true });
  try {
    await link(from, to);
    return "linked";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (code === "ENOENT") return "stale";
    if (!COPY_INSTEAD.has(code)) throw err;
  }
  await copyFile(from, to, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
  const fh = await open(to, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return "copied";
}
