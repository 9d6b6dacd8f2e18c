import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import { describe, expect, it } from "vitest";
import { useTempDir } from "./services/index.js";
import { parseListPage } from "../probes/s3-list.js";
import { loadConfig } from "../pipeline/config.js";
import { UserError } from "../pipeline/errors.js";
import { decryptStream, encryptStream, identitiesOf } from "../pipeline/offsite/age.js";
import { assessOffsite, type CopyFacts } from "../pipeline/offsite/freshness.js";
import { offsitePrometheus } from "../pipeline/offsite/freshness-report.js";
import { remoteRetentionItems } from "../pipeline/offsite/prune.js";
import { buildRecord, objectKeyFor, parseRecord, recordBytes, splitKey, type StoredFile } from "../pipeline/offsite/record.js";
import type { RemoteCopy } from "../pipeline/offsite/remote-set.js";
import { HashCounter } from "../pipeline/offsite/streams.js";
import { reapPulls } from "../pipeline/offsite/pull.js";
import { extraPath, judgeListed } from "../pipeline/offsite/verify.js";
import { planPrune } from "../pipeline/retention.js";
import { Secret } from "../pipeline/secret.js";
import { resolveTool } from "../pipeline/tools.js";
import { runCli } from "./cli.js";

const H = 3_600_000;
const D = 24 * H;
const NOW = new Date("2026-11-30T12:00:00Z");
const ago = (ms: number) => new Date(NOW.getTime() - ms);

describe("S3 listings are read as the API defines them", () => {
  const page = (encoded: boolean, key: string) =>
    `<?xml version="1.0"?><ListBucketResult>${encoded ? "<EncodingType>url</EncodingType>" : ""}<IsTruncated>false</IsTruncated><Contents><Key>${key}</Key><Size>3</Size><ETag>&#34;abc&#34;</ETag><LastModified>2026-11-30T10:00:00Z</LastModified></Contents></ListBucketResult>`;

  it("decodes keys only when the response says it encoded them (Versity ignores encoding-type=url)", () => {
    expect(parseListPage(page(false, "a+b=c 100%.txt")).items[0]!.key).toBe("a+b=c 100%.txt");
    expect(parseListPage(page(true, "a%2Bb%3Dc+100%25.txt")).items[0]!.key).toBe("a+b=c 100%.txt");
    expect(parseListPage(page(false, "x &amp; &lt;y&gt; &#34;z&#34;")).items[0]!.key).toBe('x & <y> "z"');
    expect(parseListPage(page(false, "k")).items[0]).toMatchObject({ etag: "abc", size: 3, metadata: null, tags: {} });
  });

  it("reads MinIO's metadata extension when the server sends it, and the continuation token", () => {
    const xml = `<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>t%2B1</NextContinuationToken><Contents><Key>k</Key><Size>1</Size><ETag>"e"</ETag><LastModified>2026-11-30T10:00:00Z</LastModified><UserMetadata><content-type>text/plain</content-type><X-Amz-Meta-Note>a &#34;b&#34;</X-Amz-Meta-Note></UserMetadata><UserTags>a=b&amp;c%20d=e</UserTags></Contents><CommonPrefixes><Prefix>p%2F</Prefix></CommonPrefixes></ListBucketResult>`;
    const r = parseListPage(xml);
    expect(r.items[0]).toMatchObject({ metadata: { "content-type": "text/plain", "X-Amz-Meta-Note": 'a "b"' }, tags: { a: "b", "c%20d": "e" } });
    expect(r.prefixes).toEqual(["p/"]);
    expect(r.next).toBe("t%2B1");
  });
});

describe("offsite record and keys", () => {
  it("stores a set file under files/, .age when encrypted, by hash when the key would pass S3's 1024 bytes", () => {
    expect(objectKeyFor("prod/", "2026-11-30T10-00-00Z", "redis/dump.rdb", true)).toBe("files/redis/dump.rdb.age");
    expect(objectKeyFor("", "2026-11-30T10-00-00Z", "redis/dump.rdb", false)).toBe("files/redis/dump.rdb");
    expect(objectKeyFor("prod/", "2026-11-30T10-00-00Z", `minio/b/${"x/".repeat(600)}y`, true)).toMatch(/^files\/\.long\/[0-9a-f]{64}\.age$/);
    expect(splitKey("prod/", "prod/2026-11-30T10-00-00Z/files/a")).toEqual({ setId: "2026-11-30T10-00-00Z", rel: "files/a" });
    expect(splitKey("prod/", "other/2026-11-30T10-00-00Z/x")).toBeUndefined();
    expect(extraPath("files/minio/a.txt.age", true)).toBe("minio/a.txt");
  });

  const file: StoredFile = { path: "redis/dump.rdb", size: 10, key: "files/redis/dump.rdb.age", storedSize: 250, storedSha256: "a".repeat(64), etag: "0123" };
  it("judges a listed object: missing, truncated, size, ETag, ok", () => {
    const o = { key: "k", size: 250, etag: "0123", lastModified: NOW };
    expect(judgeListed(file, undefined)?.verdict).toBe("missing");
    expect(judgeListed(file, { ...o, size: 200 })?.verdict).toBe("truncated");
    expect(judgeListed(file, { ...o, size: 300 })?.verdict).toBe("size-mismatch");
    expect(judgeListed(file, { ...o, etag: "9999" })?.verdict).toBe("checksum-mismatch");
    expect(judgeListed(file, o)).toBeUndefined();
  });

  it("trusts a record only when its checksum, schema and set id check out", () => {
    const r = buildRecord({
      setId: "2026-11-30T10-00-00Z",
      manifestSha256: "b".repeat(64),
      setStartedAt: "2026-11-30T10:00:00.000Z",
      setFinishedAt: "2026-11-30T10:01:00.000Z",
      services: ["redis"],
      pushedAt: "2026-11-30T10:02:00.000Z",
      encryption: null,
      files: [file],
    });
    const { bytes, sha } = recordBytes(r);
    expect(parseRecord(r.setId, bytes, sha.toString())).toEqual(r);
    expect(() => parseRecord(r.setId, Buffer.concat([bytes, Buffer.from(" ")]), sha.toString())).toThrow(/checksum mismatch/);
    expect(() => parseRecord(r.setId, bytes, undefined)).toThrow(/offsite\.json\.sha256: missing/);
    expect(() => parseRecord("2026-11-30T11-00-00Z", bytes, sha.toString())).toThrow(/names set 2026-11-30T10-00-00Z/);
  });
});

describe("offsite retention and freshness are pure functions of the copies", () => {
  const copy = (id: string, time: Date, extra: Partial<RemoteCopy> = {}): RemoteCopy => ({
    setId: id,
    state: "complete",
    time,
    record: { pushedAt: time.toISOString(), manifestSha256: id.padEnd(64, "0").slice(0, 64) } as never,
    ...extra,
  });

  it("keeps the newest copy, the most recently pushed one and the newest remote-drilled one; incomplete copies by their last write", () => {
    const copies = [
      copy("2026-11-20T00-00-00Z", ago(10 * D), { drill: { ok: true, manifestSha256: "2026-11-20T00-00-00Z".padEnd(64, "0").slice(0, 64) } as never }),
      copy("2026-11-25T00-00-00Z", ago(5 * D), { record: { pushedAt: NOW.toISOString(), manifestSha256: "x" } as never }),
      copy("2026-11-27T00-00-00Z", ago(3 * D)),
      copy("2026-11-29T00-00-00Z", ago(1 * D)),
      { setId: "2026-11-28T00-00-00Z", state: "incomplete", time: ago(2 * D), lastModified: ago(2 * H) },
      { setId: "2026-11-26T00-00-00Z", state: "incomplete", time: ago(4 * D), lastModified: ago(4 * D) },
      { setId: "2026-11-24T00-00-00Z", state: "invalid", time: ago(6 * D), problem: "bad" },
    ] satisfies RemoteCopy[];
    const plan = planPrune(remoteRetentionItems(copies), { keepLast: 1, partialGraceMs: D }, NOW);
    const kept = Object.fromEntries(plan.keep.map((k) => [k.id, k.reasons]));
    expect(kept).toEqual({
      "2026-11-29T00-00-00Z": ["last", "newest-complete"],
      "2026-11-28T00-00-00Z": ["partial-in-grace"],
      "2026-11-25T00-00-00Z": ["latest"],
      "2026-11-24T00-00-00Z": ["invalid"],
      "2026-11-20T00-00-00Z": ["newest-drilled"],
    });
    expect(plan.remove.map((r) => [r.id, r.reason])).toEqual([
      ["2026-11-27T00-00-00Z", "no-rule"],
      ["2026-11-26T00-00-00Z", "partial-expired"],
    ]);
  });

  const facts = (copies: CopyFacts[]) => ({ destination: "b2", reachable: true as const, copies });
  const policy = { warnAfterMs: 26 * H, criticalAfterMs: 50 * H, drillMaxAgeMs: null };
  it.each([
    ["fresh and verified", [{ setId: "a", time: ago(2 * H), pushedAt: ago(H), verified: true }], "OK", []],
    ["older than warnAfter", [{ setId: "a", time: ago(30 * H), pushedAt: ago(H), verified: true }], "WARNING", ["stale"]],
    ["older than criticalAfter", [{ setId: "a", time: ago(60 * H), pushedAt: ago(H), verified: true }], "CRITICAL", ["stale"]],
    ["no copy", [], "CRITICAL", ["no-verified-copy"]],
    [
      "newest copy broken, an older one fresh enough",
      [
        { setId: "b", time: ago(H), pushedAt: ago(H), verified: false, problem: "missing x" },
        { setId: "a", time: ago(20 * H), pushedAt: ago(20 * H), verified: true },
      ],
      "WARNING",
      ["newest-copy-invalid"],
    ],
  ] as const)("%s", (_n, copies, status, kinds) => {
    const a = assessOffsite(facts([...copies] as CopyFacts[]), policy, NOW);
    expect(a.status).toBe(status);
    expect(a.findings.map((f) => f.kind)).toEqual(kinds);
  });

  it("an unreachable destination is UNKNOWN; a required drill must be recent; metrics per destination", () => {
    expect(assessOffsite({ destination: "x", reachable: false, error: "ECONNREFUSED" }, policy, NOW).status).toBe("UNKNOWN");
    const drilled = assessOffsite(facts([{ setId: "a", time: ago(H), pushedAt: ago(H), verified: true, drillPassedAt: ago(10 * D) }]), { ...policy, drillMaxAgeMs: 8 * D }, NOW);
    expect(drilled.findings.map((f) => f.kind)).toEqual(["unproven"]);
    const prom = offsitePrometheus([drilled]);
    expect(prom).toContain(`backup_drill_offsite_age_seconds{destination="b2"} 3600`);
    expect(prom).toContain(`backup_drill_offsite_freshness_status{destination="b2"} 1`);
  });
});

describe("age encryption", () => {
  it("streams: a 96 MiB file encrypts and decrypts with memory bounded by a few chunks", async () => {
    const id = await generateX25519Identity();
    const size = 96 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 0x5a);
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent >= size) return void this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    global.gc?.();
    const base = process.memoryUsage();
    let peak = 0;
    const sample = setInterval(() => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
    }, 5);
    const e = await encryptStream([await identityToRecipient(id)], source, size);
    const plain = new HashCounter();
    const dec = await decryptStream([id], e.stream);
    await pipeline(dec, plain, new Writable({ write: (_c, _e, cb) => cb() }));
    clearInterval(sample);
    expect(plain.bytes).toBe(size);
    expect(e.size).toBeGreaterThan(size);
    // Holding the file would take 96 MiB twice over; streaming stays at a few MiB of chunks in flight.
    expect(peak).toBeLessThan(40 * 1024 * 1024);
  });

  it.each([0, 1, 65535, 65536, 65537, 131072, 300001])("a %i-byte file: ours decrypts with `age -d`, `age -r` output decrypts with ours", async (size) => {
    const dir = mkdtempSync(join(tmpdir(), "backup-drill-age-"));
    try {
      const id = await generateX25519Identity();
      const rec = await identityToRecipient(id);
      writeFileSync(join(dir, "key.txt"), `${id}\n`);
      const plain = Buffer.alloc(size);
      for (let i = 0; i < size; i++) plain[i] = (i * 31) & 255;
      writeFileSync(join(dir, "p.bin"), plain);
      const e = await encryptStream([rec], Readable.from([plain]), size);
      const chunks: Buffer[] = [];
      await pipeline(e.stream, new Writable({ write: (c, _e, cb) => (chunks.push(c as Buffer), cb()) }));
      const ours = Buffer.concat(chunks);
      expect(ours.length).toBe(e.size);
      writeFileSync(join(dir, "ours.age"), ours);
      expect(execFileSync(resolveTool("age"), ["-d", "-i", join(dir, "key.txt"), join(dir, "ours.age")]).equals(plain)).toBe(true);
      execFileSync(resolveTool("age"), ["-r", rec, "-o", join(dir, "theirs.age"), join(dir, "p.bin")]);
      const back: Buffer[] = [];
      await pipeline(await decryptStream([id], Readable.from([readFileSync(join(dir, "theirs.age"))])), new Writable({ write: (c, _e, cb) => (back.push(c as Buffer), cb()) }));
      expect(Buffer.concat(back).equals(plain)).toBe(true);
      // A flipped byte or a cut-off end does not decrypt.
      for (const bad of [Buffer.concat([ours.subarray(0, ours.length - 1), Buffer.from([ours[ours.length - 1]! ^ 1])]), ours.subarray(0, ours.length - 1)]) {
        await expect(pipeline(await decryptStream([id], Readable.from([bad])), new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads identities from a key file written by age-keygen, and names the reference (never the key) when it is not one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "backup-drill-age-"));
    try {
      execFileSync(resolveTool("age-keygen"), ["-o", join(dir, "k.txt")], { stdio: "pipe" });
      const text = readFileSync(join(dir, "k.txt"), "utf8");
      expect(identitiesOf(new Secret(text, "file:k.txt"), "f")).toHaveLength(1);
      const bad = new Secret("AGE-SECRET-KEY-1NOPE-secret-words", "env:KEY");
      expect(() => identitiesOf(bad, "offsite.destinations.b2.encrypt.identity")).toThrow(UserError);
      try {
        identitiesOf(bad, "x");
      } catch (err) {
        expect((err as Error).message).toContain("env:KEY");
        expect((err as Error).message).not.toContain("secret-words");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("offsite config", () => {
  const dir = useTempDir("offsite-cfg");
  const load = (offsite: unknown) => {
    const path = join(dir(), `c${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify({ offsite }));
    return () => loadConfig({ configPath: path, env: { K: "k", S: "s" }, resolveSecrets: true });
  };
  const dest = { endpoint: "http://127.0.0.1:9", bucket: "bkt", accessKey: "env:K", secretKey: "env:S" };

  it("resolves destinations, normalises the prefix and keeps the identity unread", () => {
    const cfg = load({ destinations: { b2: { ...dest, prefix: "a/b", encrypt: { recipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"], identity: "env:NOT_SET" } } } })();
    const d = cfg.offsite!.destinations[0]!;
    expect(d).toMatchObject({ name: "b2", prefix: "a/b/", pathStyle: true, concurrency: 4, partSize: 16 * 1024 * 1024, freshness: { warnAfterMs: 26 * H, criticalAfterMs: 50 * H, drillMaxAgeMs: null } });
    expect(() => d.identity!.reveal()).toThrow(/encrypt\.identity: environment variable NOT_SET is not set/);
  });

  it.each([
    [{ destinations: { b2: { ...dest, encrypt: { recipients: ["age1nope"] } } } }, /offsite\.destinations\.b2\.encrypt\.recipients\[0\]: must be an age X25519 public key/],
    [{ destinations: { b2: { ...dest, secretKey: "plaintext" } } }, /offsite\.destinations\.b2\.secretKey: must be a reference/],
    [{ destinations: { "B 2": dest } }, /offsite\.destinations\.B 2: Invalid key/],
    [{ destinations: { b2: { ...dest, prefix: "/abs" } } }, /offsite\.destinations\.b2\.prefix: must be a relative key prefix/],
    [{ destinations: {} }, /offsite\.destinations: name at least one destination/],
  ])("refuses bad input with one line naming the field (%#)", (offsite, message) => {
    expect(load(offsite)).toThrow(message);
  });

  it("push without a destination, or naming an unknown one, exits 2 with one line", async () => {
    const path = join(dir(), "one.json");
    writeFileSync(path, JSON.stringify({ output: join(dir(), "out"), offsite: { destinations: { b2: dest } } }));
    const r = await runCli(["push", "--config", path, "--to", "s3"], { env: { K: "k", S: "s" } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('backup-drill push: error: --to: no offsite destination "s3" (configured: b2)');
  });
});

describe("pull staging", () => {
  it("a later pull removes the staging a killed one left, never a live one's", async () => {
    const root = mkdtempSync(join(tmpdir(), "backup-drill-pulls-"));
    try {
      const dead = execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]).toString();
      for (const n of [`.pull-2026-11-30T10-00-00Z-${dead}`, `.pull-2026-11-30T10-00-00Z-${process.pid}`, "2026-11-30T10-00-00Z", ".partial-2026-11-30T10-00-00Z"]) {
        execFileSync("mkdir", ["-p", join(root, n, "x")]);
      }
      expect(await reapPulls(root)).toEqual([`.pull-2026-11-30T10-00-00Z-${dead}`]);
      expect(readdirSync(root).sort()).toEqual([".partial-2026-11-30T10-00-00Z", `.pull-2026-11-30T10-00-00Z-${process.pid}`, "2026-11-30T10-00-00Z"].sort());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
