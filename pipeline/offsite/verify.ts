import { errorMessage, IntegrityError, UserError } from "../errors.js";
import { sha256Hex, parseSha256sums } from "../hash.js";
import { MANIFEST_FILE, MANIFEST_SHA_FILE, ManifestSchema, SUMS_FILE, type Manifest } from "../manifest.js";
import type { Progress } from "../progress.js";
import type { Secret } from "../secret.js";
import { countVerdicts, type Finding, type Verdict } from "../verify.js";
import { Readable } from "node:stream";
import { decryptStream, identitiesOf, recipientsOf } from "./age.js";
import type { Destination } from "./config.js";
import { fetchObject } from "./fetch.js";
import { AGE_SUFFIX, FILES_DIR, RECORD_FILE, RECORD_SHA_FILE, REMOTE_DRILL_FILE, setPrefix, type OffsiteRecord, type StoredFile } from "./record.js";
import { readRecord } from "./remote-set.js";
import { getSmall, listRemote, normalizeEtag, remoteFor, remoteLabel, type Remote, type RemoteObject } from "./s3.js";
import { eachLimit } from "../concurrency.js";

export type RemoteVerifyReport = {
  id: string;
  remote: string;
  destination: string;
  mode: "listing" | "read-data";
  encrypted: boolean;
  ok: boolean;
  filesChecked: number;
  /** Stored bytes listed (listing) or downloaded (read-data). */
  bytesChecked: number;
  findings: Finding[];
  counts: Record<Verdict, number>;
};

/** Judge one stored object from the listing alone: presence, size, ETag. */
export function judgeListed(f: StoredFile, o: RemoteObject | undefined): Finding | undefined {
  if (!o) return { path: f.path, verdict: "missing", detail: `object ${f.key} is not at the destination` };
  if (o.size < f.storedSize) return { path: f.path, verdict: "truncated", detail: `${o.size} of ${f.storedSize} stored bytes` };
  if (o.size !== f.storedSize) return { path: f.path, verdict: "size-mismatch", detail: `${o.size} stored bytes, the record says ${f.storedSize}` };
  if (o.etag !== normalizeEtag(f.etag)) return { path: f.path, verdict: "checksum-mismatch", detail: `ETag ${o.etag.slice(0, 12)}…, the record says ${normalizeEtag(f.etag).slice(0, 12)}…` };
  return undefined;
}

/** A listed key that no record entry accounts for, named as the set path it would be. */
export function extraPath(rel: string, encrypted: boolean): string {
  if (!rel.startsWith(FILES_DIR)) return rel;
  const p = rel.slice(FILES_DIR.length);
  return encrypted && p.endsWith(AGE_SUFFIX) ? p.slice(0, -AGE_SUFFIX.length) : p;
}

const OWN = new Set([RECORD_FILE, RECORD_SHA_FILE, REMOTE_DRILL_FILE]);

/** The identities to decrypt a destination's copies with, checked against the record's recipients. */
export async function identitiesFor(dest: Destination, record: OffsiteRecord, flagIdentity?: { secret: Secret; field: string }): Promise<string[] | undefined> {
  if (!record.encryption) return undefined;
  const source = flagIdentity ?? (dest.identity ? { secret: dest.identity, field: `offsite.destinations.${dest.name}.encrypt.identity` } : undefined);
  if (!source) throw new UserError(`the copy of ${record.setId} at ${dest.name} is encrypted: set offsite.destinations.${dest.name}.encrypt.identity (or --identity) to a reference to the age private key`);
  const ids = identitiesOf(source.secret, source.field);
  const publics = await recipientsOf(ids);
  if (!publics.some((p) => record.encryption!.recipients.includes(p))) {
    throw new UserError(`${source.field} (${source.secret.ref}): this key is for ${publics.join(", ")}, the copy is encrypted to ${record.encryption.recipients.join(", ")}`);
  }
  return ids;
}

/**
 * Check a copy where it lives. Always: the record, and every stored object
 * against it from one listing (missing, truncated, size, ETag) plus objects
 * nobody recorded (extra). With readData: every object downloaded, its
 * stored sha256 compared, decrypted, and its plaintext compared with the
 * set's manifest (itself checked against the record's manifestSha256).
 * Findings are collected, never stopping at the first.
 */
export async function verifyRemote(
  dest: Destination,
  setId: string,
  opts: { readData: boolean; progress: Progress; identity?: { secret: Secret; field: string } },
): Promise<RemoteVerifyReport> {
  const r = remoteFor(dest);
  const findings: Finding[] = [];
  const report = (record: OffsiteRecord | undefined, bytes: number): RemoteVerifyReport => {
    findings.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return {
      id: setId,
      remote: remoteLabel(dest),
      destination: dest.name,
      mode: opts.readData ? "read-data" : "listing",
      encrypted: record?.encryption != null,
      ok: findings.length === 0,
      filesChecked: record?.files.length ?? 0,
      bytesChecked: bytes,
      findings,
      counts: countVerdicts(findings),
    };
  };
  const prefix = setPrefix(dest.prefix, setId);
  const listed = await listRemote(r, prefix);
  let record: OffsiteRecord;
  try {
    record = await readRecord(r, setId);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    if (listed.length === 0) throw new UserError(`--set: no copy of ${setId} at ${dest.name}`);
    findings.push({ path: RECORD_FILE, verdict: "manifest-invalid", detail: errorMessage(err).replace(/^offsite\.json: /, "") });
    return report(undefined, 0);
  }
  const encrypted = record.encryption !== null;
  const byKey = new Map(listed.map((o) => [o.key.slice(prefix.length), o]));
  opts.progress.info(`verify ${setId} at ${dest.name}: ${record.files.length} objects, ${record.totals.storedBytes} bytes (${opts.readData ? "downloading every object" : "listing only"})`);
  const bad = new Set<string>();
  for (const f of record.files) {
    const finding = judgeListed(f, byKey.get(f.key));
    if (finding) {
      findings.push(finding);
      bad.add(f.path);
    }
  }
  const recorded = new Set(record.files.map((f) => f.key));
  for (const [rel] of byKey) {
    if (!recorded.has(rel) && !OWN.has(rel)) findings.push({ path: extraPath(rel, encrypted), verdict: "extra", detail: `object ${rel} is not in the record` });
  }
  if (!opts.readData) return report(record, listed.reduce((a, o) => a + o.size, 0));

  const identities = await identitiesFor(dest, record, opts.identity);
  const manifest = await remoteManifest(r, prefix, record, identities, findings);
  const plainByPath = new Map((manifest?.files ?? []).map((f) => [f.path, f]));
  let bytes = 0;
  await eachLimit(record.files.filter((f) => !bad.has(f.path)), dest.concurrency, async (f) => {
    const got = await fetchObject(r, prefix + f.key, identities, undefined);
    const finding = judgeFetched(f, got, plainByPath.get(f.path), record);
    if (got.ok) bytes += got.storedBytes;
    if (finding) findings.push(finding);
  });
  if (manifest) await checkRemoteSums(r, prefix, record, identities, manifest, findings);
  return report(record, bytes);
}

/** One downloaded object against the record (stored bytes) and the manifest (plaintext). */
export function judgeFetched(
  f: StoredFile,
  got: Awaited<ReturnType<typeof fetchObject>>,
  plain: { size: number; sha256: string } | undefined,
  record: OffsiteRecord,
): Finding | undefined {
  if (!got.ok && got.reason === "missing") return { path: f.path, verdict: "missing", detail: `object ${f.key} disappeared while it was checked` };
  if (!got.ok) return { path: f.path, verdict: "checksum-mismatch", detail: `does not decrypt: ${got.error}` };
  if (got.storedBytes < f.storedSize) return { path: f.path, verdict: "truncated", detail: `${got.storedBytes} of ${f.storedSize} stored bytes` };
  if (got.storedBytes !== f.storedSize) return { path: f.path, verdict: "size-mismatch", detail: `${got.storedBytes} stored bytes, the record says ${f.storedSize}` };
  if (got.storedSha256 !== f.storedSha256) return { path: f.path, verdict: "checksum-mismatch", detail: `stored sha256 ${got.storedSha256.slice(0, 12)}…, the record says ${f.storedSha256.slice(0, 12)}…` };
  const want = f.path === MANIFEST_FILE ? { size: f.size, sha256: record.manifestSha256 } : plain;
  if (!want) return undefined; // SHA256SUMS and manifest.sha256: checked against the manifest below
  if (got.plainBytes < want.size) return { path: f.path, verdict: "truncated", detail: `${got.plainBytes} of ${want.size} bytes after decryption` };
  if (got.plainBytes !== want.size) return { path: f.path, verdict: "size-mismatch", detail: `${got.plainBytes} bytes, manifest says ${want.size}` };
  if (got.plainSha256 !== want.sha256) return { path: f.path, verdict: "checksum-mismatch", detail: `sha256 ${got.plainSha256.slice(0, 12)}…, manifest says ${want.sha256.slice(0, 12)}…` };
  return undefined;
}

/** Download a small file of the copy into memory (decrypting), or undefined when it is missing or does not decrypt. */
async function smallPlain(r: Remote, key: string, identities: string[] | undefined): Promise<Buffer | undefined> {
  const bytes = await getSmall(r, key);
  if (!bytes || !identities) return bytes;
  const chunks: Buffer[] = [];
  try {
    for await (const c of await decryptStream(identities, Readable.from([bytes]))) chunks.push(c as Buffer);
  } catch {
    return undefined;
  }
  return Buffer.concat(chunks);
}

/** The copy's manifest, trusted only when its plaintext sha256 is the record's manifestSha256. */
async function remoteManifest(r: Remote, prefix: string, record: OffsiteRecord, identities: string[] | undefined, findings: Finding[]): Promise<Manifest | undefined> {
  const entry = record.files.find((f) => f.path === MANIFEST_FILE);
  if (!entry) {
    findings.push({ path: MANIFEST_FILE, verdict: "manifest-invalid", detail: "not in the record" });
    return undefined;
  }
  const bytes = await smallPlain(r, prefix + entry.key, identities);
  if (!bytes || sha256Hex(bytes) !== record.manifestSha256) return undefined; // reported per object by judgeFetched
  const parsed = ManifestSchema.safeParse(JSON.parse(bytes.toString("utf8")));
  if (!parsed.success) {
    findings.push({ path: MANIFEST_FILE, verdict: "manifest-invalid", detail: parsed.error.issues[0]!.message });
    return undefined;
  }
  const inRecord = new Set(record.files.map((f) => f.path));
  for (const f of parsed.data.files) {
    if (!inRecord.has(f.path)) findings.push({ path: f.path, verdict: "missing", detail: "in the manifest, not in the offsite record" });
  }
  return parsed.data;
}

/** SHA256SUMS and manifest.sha256 of the copy must say what the manifest says, as locally. */
async function checkRemoteSums(r: Remote, prefix: string, record: OffsiteRecord, identities: string[] | undefined, manifest: Manifest, findings: Finding[]): Promise<void> {
  for (const name of [SUMS_FILE, MANIFEST_SHA_FILE]) {
    const entry = record.files.find((f) => f.path === name);
    if (!entry || findings.some((x) => x.path === name)) continue;
    const bytes = await smallPlain(r, prefix + entry.key, identities);
    if (!bytes) continue;
    let lines;
    try {
      lines = parseSha256sums(bytes.toString("utf8"));
    } catch (err) {
      findings.push({ path: name, verdict: "format-invalid", detail: errorMessage(err) });
      continue;
    }
    const sums = new Map(lines.map((l) => [l.path, l.sha256]));
    const expected = name === SUMS_FILE ? [...manifest.files.map((f) => [f.path, f.sha256] as const), [MANIFEST_FILE, record.manifestSha256] as const] : [[MANIFEST_FILE, record.manifestSha256] as const];
    const disagree = expected.filter(([p, s]) => sums.get(p) !== s).length + (sums.size - expected.length > 0 ? sums.size - expected.length : 0);
    if (disagree > 0) findings.push({ path: name, verdict: "checksum-mismatch", detail: `disagrees with the manifest on ${disagree} path(s)` });
  }
}
