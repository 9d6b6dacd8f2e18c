import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { checkpoint } from "../checkpoint.js";
import { IntegrityError, OperationError, UserError } from "../errors.js";
import { fileError, fsyncDir, writeFileAtomic } from "./fsync.js";
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
 * Make a sealed staging directory a set: fsync, rename `.partial-<id>` to
 * `<id>`, fsync the root, then replace latest.json (temp + rename). Until the
 * rename nothing reads it; until latest.json is replaced the old latest stands.
 */
export async function promoteSet(root: string, staged: Staged, manifestSha256: string, completedAt: Date): Promise<Latest> {
  const finalDir = join(root, staged.id);
  await fsyncDir(staged.dir);
  checkpoint("promote:rename");
  await rename(staged.dir, finalDir).catch((err) => {
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
    else if (e.name.startsWith(PARTIAL_PREFIX) && isSetId(e.name.slice(PARTIAL_PREFIX.length))) {
      out.push({ id: e.name.slice(PARTIAL_PREFIX.length), dir: join(root, e.name), partial: true });
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
