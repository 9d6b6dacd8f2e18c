import { listObjectsAll } from "../../probes/s3-list.js";
import { errorMessage, IntegrityError, UserError } from "../errors.js";
import { isSetId, timeOfSetId } from "../store/ids.js";
import { parseRecord, RECORD_FILE, RECORD_SHA_FILE, REMOTE_DRILL_FILE, RemoteDrillSchema, setPrefix, type OffsiteRecord, type RemoteDrill } from "./record.js";
import { getSmall, listRemote, putSmall, remoteError, type Remote } from "./s3.js";

/** The record of a set at a destination; IntegrityError when it is missing or does not check out. */
export async function readRecord(r: Remote, setId: string): Promise<OffsiteRecord> {
  const prefix = setPrefix(r.dest.prefix, setId);
  const bytes = await getSmall(r, `${prefix}${RECORD_FILE}`);
  if (!bytes) throw new IntegrityError(`${RECORD_FILE}: missing: the copy of ${setId} at ${r.dest.name} is incomplete (push it again)`);
  const sha = await getSmall(r, `${prefix}${RECORD_SHA_FILE}`);
  return parseRecord(setId, bytes, sha?.toString("utf8"));
}

export async function readRemoteDrill(r: Remote, setId: string): Promise<RemoteDrill | undefined> {
  const bytes = await getSmall(r, `${setPrefix(r.dest.prefix, setId)}${REMOTE_DRILL_FILE}`);
  if (!bytes) return undefined;
  const parsed = RemoteDrillSchema.safeParse(JSON.parse(bytes.toString("utf8")));
  return parsed.success && parsed.data.setId === setId ? parsed.data : undefined;
}

export async function writeRemoteDrill(r: Remote, drill: RemoteDrill): Promise<void> {
  await putSmall(r, `${setPrefix(r.dest.prefix, drill.setId)}${REMOTE_DRILL_FILE}`, Buffer.from(`${JSON.stringify(RemoteDrillSchema.parse(drill), null, 2)}\n`));
}

/** What a destination holds for one set id. */
export type RemoteCopy = {
  setId: string;
  /** complete: the record checks out; invalid: a record that does not; incomplete: no record (a push in progress or interrupted). */
  state: "complete" | "invalid" | "incomplete";
  /** The set's data time (its manifest's startedAt), or the id's time without a valid record. */
  time: Date;
  record?: OffsiteRecord;
  problem?: string;
  drill?: RemoteDrill;
  /** Newest LastModified under the set's prefix (for incomplete copies: how long since anything was written). */
  lastModified?: Date;
};

/** Set ids stored under the destination's prefix (one delimiter listing, no recursion). */
export async function listSetIds(r: Remote): Promise<string[]> {
  let prefixes: string[];
  try {
    ({ prefixes } = await listObjectsAll(r.client, r.dest.bucket, { prefix: r.dest.prefix, delimiter: "/" }));
  } catch (err) {
    throw remoteError(r.dest, "cannot list the sets", err);
  }
  return prefixes
    .map((p) => p.slice(r.dest.prefix.length).replace(/\/$/, ""))
    .filter(isSetId)
    .sort();
}

/** Every copy at a destination with its record and drill, each judged on its own (a bad one never hides the others). */
export async function listCopies(r: Remote): Promise<RemoteCopy[]> {
  const out: RemoteCopy[] = [];
  for (const setId of await listSetIds(r)) {
    const idTime = timeOfSetId(setId)!;
    let record: OffsiteRecord | undefined;
    try {
      record = await readRecord(r, setId);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      const objects = await listRemote(r, setPrefix(r.dest.prefix, setId));
      const hasRecord = objects.some((o) => o.key.endsWith(`/${RECORD_FILE}`) || o.key.endsWith(`/${RECORD_SHA_FILE}`));
      const lastModified = new Date(Math.max(0, ...objects.map((o) => o.lastModified.getTime())));
      out.push({ setId, state: hasRecord ? "invalid" : "incomplete", time: idTime, problem: errorMessage(err), lastModified });
      continue;
    }
    const drill = await readRemoteDrill(r, setId).catch(() => undefined);
    out.push({ setId, state: "complete", time: new Date(record.setStartedAt), record, ...(drill ? { drill } : {}) });
  }
  return out;
}

/** The copy `--set` names, or the newest complete one. */
export async function resolveRemoteSet(r: Remote, id: string | undefined): Promise<string> {
  if (id !== undefined) {
    if (!isSetId(id)) throw new UserError(`--set: "${id}" is not a set id (like 2026-11-25T16-39-20Z)`);
    return id;
  }
  const copies = (await listCopies(r)).filter((c) => c.state === "complete");
  if (copies.length === 0) throw new UserError(`no complete copy at ${r.dest.name}; push one first or pass --set`);
  return copies.sort((a, b) => b.time.getTime() - a.time.getTime() || (a.setId < b.setId ? 1 : -1))[0]!.setId;
}
