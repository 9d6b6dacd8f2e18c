import { chmod, cp, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { checkpoint } from "../checkpoint.js";
import { mapLimit } from "../concurrency.js";
import { IntegrityError, OperationError, UserError } from "../errors.js";
import { fileError, fsyncDir, fsyncTree, writeFileAtomic } from "./fsync.js";
import { PARTIAL_PREFIX, isSetId, setIdFor } from "./ids.js";

export const LATEST_FILE = "latest.json";

export const LatestSchema = z.strictObject({
  id: z.string(),
  path: z.string(),
  completedAt: z.iso.datetime({ offset: true }),
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type Latest = z.infer<typeof LatestSchema>;

export type Staged = { id: string; dir: string };

/** Create `.partial-<id>/` for a new set; the id is the start time, with -N if that second is taken. */
export async function stageSet(root: string, startedAt: Date): Promise<Staged> {
  await mkdir(root, { recursive: true }).catch((err) => {
    throw fileError(root, "create the output root", err);
  });
  const base = setIdFor(startedAt);
  for (let n = 0; n < 1000; n++) {
    const id = n === 0 ? base : `${base}-${n}`;
    if (await exists(join(root, id))) continue;
    const dir = join(root, `${PARTIAL_PREFIX}${id}`);
    try {
      await mkdir(dir);
      return { id, dir };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw fileError(dir, "create", err);
    }
  }
  throw new OperationError(`${root}: cannot find a free set id for ${base}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Make a sealed staging directory a set: modes as the umask says, fsync,
 * rename `.partial-<id>` to `<id>`, fsync the root, then replace latest.json
 * (temp + rename). Until the rename nothing reads it; until latest.json is
 * replaced the old latest stands.
 */
export async function promoteSet(root: string, staged: Staged, manifestSha256: string, completedAt: Date): Promise<Latest> {
  const finalDir = join(root, staged.id);
  await normalizeModes(staged.dir);
  await fsyncDir(staged.dir);
  checkpoint("promote:rename");
  await moveDir(staged.dir, finalDir, root).catch((err) => {
    throw fileError(`${staged.dir} -> ${finalDir}`, "rename", err);
  });
  const latest: Latest = { id: staged.id, path: finalDir, completedAt: completedAt.toISOString(), manifestSha256 };
  try {
    await fsyncDir(root);
    checkpoint(`promote:${LATEST_FILE}`);
    await writeFileAtomic(join(root, LATEST_FILE), `${JSON.stringify(latest, null, 2)}\n`);
  } catch (err) {
    // The set is complete and valid where it is; only the pointer is old.
    throw new NotPromotedError(staged.id, finalDir, err);
  }
  return latest;
}

/**
 * Tools pick their own modes (pg_dump writes 0700 directories and 0600
 * files): every directory and file of a set gets the mode the process umask
 * gives a new one instead, so a set is as readable as anything else the run
 * writes (under Dagger, 0755 / 0644, which an exported set needs to be read
 * by a user other than root).
 */
export async function normalizeModes(dir: string, umask = process.umask()): Promise<void> {
  const dirMode = 0o777 & ~umask;
  const fileMode = 0o666 & ~umask;
  // A directory at a time (a set may hold millions of files), and only what differs: chmod writes the inode.
  const fix = async (path: string, mode: number) => {
    if (((await stat(path)).mode & 0o7777) !== mode) await chmod(path, mode);
  };
  const walk = async (d: string): Promise<void> => {
    await fix(d, dirMode);
    const entries = await readdir(d, { withFileTypes: true });
    await mapLimit(
      entries.filter((e) => e.isFile()),
      16,
      (e) => fix(join(d, e.name), fileMode),
    );
    for (const e of entries) if (e.isDirectory()) await walk(join(d, e.name));
  };
  await walk(dir);
}

/** The name a staged set is copied to when it cannot be renamed (see moveDir); listed as a partial of its id. */
export const PROMOTE_COPY_SUFFIX = ".copy";

/**
 * rename(2) a directory; when the kernel refuses with EXDEV (the staging
 * directory is on another filesystem, or is a lower layer of an overlay
 * mount, as in a container whose output root came from an earlier layer),
 * copy it beside the target under a partial name, fsync the copy, rename the
 * copy into place and only then remove the original.
 */
export async function moveDir(from: string, to: string, root: string): Promise<void> {
  try {
    await rename(from, to);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
  }
  const copy = join(root, `${PARTIAL_PREFIX}${to.slice(root.length + 1)}${PROMOTE_COPY_SUFFIX}`);
  await rm(copy, { recursive: true, force: true });
  try {
    await cp(from, copy, { recursive: true, preserveTimestamps: true, errorOnExist: true, force: false });
    await fsyncTree(copy);
    await rename(copy, to);
  } catch (err) {
    await rm(copy, { recursive: true, force: true });
    throw err;
  }
  await rm(from, { recursive: true, force: true });
}

/** The set was sealed and renamed into place, but latest.json could not be replaced. */
export class NotPromotedError extends OperationError {
  readonly setDir: string;
  constructor(id: string, dir: string, cause: unknown) {
    super(`set ${id} is sealed at ${dir} but NOT promoted: ${(cause as Error).message}; latest.json still names the previous set (the set is complete: verify and restore-drill take --set ${id})`, { cause });
    this.setDir = dir;
    this.name = "NotPromotedError";
  }
}

/** Remove a staging directory after a failed run. */
export async function discardStaged(staged: Staged): Promise<void> {
  await rm(staged.dir, { recursive: true, force: true });
}

export async function readLatest(root: string): Promise<Latest | undefined> {
  const path = join(root, LATEST_FILE);
  const damaged = (what: string) =>
    new IntegrityError(`${path}: ${what}; the output root is damaged: fix or remove latest.json (the next backup rewrites it; --set ID still works)`);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw damaged(`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw damaged(`not valid JSON (${(err as Error).message})`);
  }
  const parsed = LatestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw damaged(`malformed: ${issue.path.join(".") || "(top level)"}: ${issue.message}`);
  }
  return parsed.data;
}

export type SetEntry = { id: string; dir: string; partial: boolean };

/** Set directories and `.partial-*` directories under the root (no manifest is read here). */
export async function listSetDirs(root: string): Promise<SetEntry[]> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new OperationError(`${root}: cannot list: ${(err as Error).message}`);
  }
  const out: SetEntry[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    if (isSetId(e.name)) out.push({ id: e.name, dir: join(root, e.name), partial: false });
    else if (e.name.startsWith(PARTIAL_PREFIX)) {
      const rest = e.name.slice(PARTIAL_PREFIX.length);
      const id = rest.endsWith(PROMOTE_COPY_SUFFIX) ? rest.slice(0, -PROMOTE_COPY_SUFFIX.length) : rest;
      if (isSetId(id)) out.push({ id, dir: join(root, e.name), partial: true });
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** The directory of set `id`, or of the set latest.json names when no id is given. */
export async function resolveSet(root: string, id?: string): Promise<{ id: string; dir: string }> {
  if (id !== undefined) {
    if (!isSetId(id)) throw new UserError(`--set: "${id}" is not a set id (like 2026-11-25T16-39-20Z)`);
    const dir = join(root, id);
    if (!(await exists(dir))) throw new UserError(`--set: no set ${id} under ${root}`);
    return { id, dir };
  }
  const latest = await readLatest(root);
  if (!latest) throw new UserError(`no backup set under ${root} (latest.json is missing); run backup first or pass --set`);
  const dir = join(root, latest.id);
  if (!(await exists(dir))) throw new IntegrityError(`latest.json names set ${latest.id}, which is missing from ${root}`);
  return { id: latest.id, dir };
}
