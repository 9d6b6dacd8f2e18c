/**
 * Offsite copies against two independent S3 servers as destination: MinIO
 * and Versity Gateway (S3 over a plain directory). Real servers, the real
 * CLI, the standard `age` CLI for decryption by hand.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type * as Minio from "minio";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minioClient } from "../probes/minio.js";
import { listObjectsAll } from "../probes/s3-list.js";
import { DrillSummarySchema } from "../pipeline/drill-summary.js";
import { resolveTool } from "../pipeline/tools.js";
import { startMinio, type MinioServer } from "../pipeline/throwaway/servers.js";
import { startVersity } from "../pipeline/throwaway/versity.js";
import { BIN, REPO, runCli } from "./cli.js";
import { filesContaining } from "./secrets.js";
import { secretEnv, secretValues, useServers, useTempDir, writeCliConfig } from "./services/index.js";

const servers = useServers();
const tmp = useTempDir("offsite");

const BUCKET = "offsite-copies";
const PREFIX = "prod/";

type Kind = "minio" | "versity";

function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

async function getAll(c: Minio.Client, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const ch of await c.getObject(BUCKET, key)) chunks.push(ch as Buffer);
  return Buffer.concat(chunks);
}

/** Every file under a directory, with its bytes. */
function filesUnder(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push({ path: join(e.parentPath, e.name), bytes: readFileSync(join(e.parentPath, e.name)) });
  }
  return out;
}

describe.each<Kind>(["minio", "versity"])("offsite copies on %s", (kind) => {
  let dest: MinioServer & { root?: string };
  let client: Minio.Client;
  let keyFile: string;
  let identity: string;
  let recipient: string;
  let env: Record<string, string>;
  let dir: string;

  /** A config whose offsite destination is this server; `extra` is merged into the destination. */
  function config(output: string, extra: Record<string, unknown> = {}): string {
    return writeCliConfig(dir, servers(), output, {
      offsite: {
        destinations: {
          [kind]: {
            endpoint: dest.endpoint,
            bucket: BUCKET,
            prefix: PREFIX,
            accessKey: "env:TEST_OFFSITE_ACCESS_KEY",
            secretKey: "env:TEST_OFFSITE_SECRET_KEY",
            encrypt: { recipients: [recipient], identity: `file:${keyFile}` },
            partSizeMiB: 5,
            ...extra,
          },
        },
      },
    });
  }

  const remoteKeys = async (setId: string) => (await listObjectsAll(client, BUCKET, { prefix: `${PREFIX}${setId}/` })).items;

  beforeAll(async () => {
    dir = join(tmp(), kind);
    execFileSync("mkdir", ["-p", dir]);
    dest = kind === "minio" ? await startMinio({ tools: {} }) : await startVersity({ tools: {} });
    client = minioClient({ ...dest, region: "us-east-1" });
    await client.makeBucket(BUCKET);
    // The key pair comes from the standard age tool: what the tool writes must open with it.
    keyFile = join(dir, "offsite-key.txt");
    execFileSync(resolveTool("age-keygen"), ["-o", keyFile], { stdio: "pipe" });
    identity = readFileSync(keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    recipient = /public key: (age1\w+)/.exec(readFileSync(keyFile, "utf8"))![1]!;
    env = { ...secretEnv(servers()), TEST_OFFSITE_ACCESS_KEY: dest.accessKey.reveal(), TEST_OFFSITE_SECRET_KEY: dest.secretKey.reveal() };
  });
  afterAll(async () => {
    await dest?.stop();
  });

  /** Strings that must never leave this machine: the private key and every password. */
  const secrets = () => [identity, ...secretValues(servers()), dest.secretKey.reveal()];

  it("round trip: backup pushes an encrypted copy; with the local set gone, restore-drill --from passes every check", async () => {
    const output = join(dir, "round-trip");
    const cfg = config(output);
    const b = await runCli(["backup", "--config", cfg, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    const backup = JSON.parse(b.stdout);
    expect(backup.offsite).toHaveLength(1);
    expect(backup.offsite[0]).toMatchObject({ ok: true, destination: kind, encrypted: true, alreadyComplete: false });
    const setId: string = backup.id;
    const setDir = join(output, setId);
    const local = filesUnder(setDir);

    // Every file went up as age ciphertext; the record and its checksum are the only clear objects.
    const listed = await remoteKeys(setId);
    const names = listed.map((o) => o.key.slice(`${PREFIX}${setId}/`.length));
    expect(names.filter((n) => !n.endsWith(".age")).sort()).toEqual(["offsite.json", "offsite.json.sha256"]);
    expect(names.filter((n) => n.endsWith(".age"))).toHaveLength(local.length);
    const stored = await Promise.all(listed.map(async (o) => ({ key: o.key, bytes: await getAll(client, o.key) })));
    for (const s of stored.filter((x) => x.key.endsWith(".age"))) expect(s.bytes.subarray(0, 22).toString()).toBe("age-encryption.org/v1\n");

    // Known plaintext: present in the local set (so the search means something), absent from every uploaded byte.
    const needles = ["CREATE TABLE public.customers", "CREATE ROLE app_reader", "leaderboard", "inside a folder", "awkward: with space.txt", "line 7\nline 7", "no extension hint", "REDIS0"];
    for (const n of needles) expect(local.some((f) => f.bytes.includes(Buffer.from(n))), `needle ${JSON.stringify(n)} in the local set`).toBe(true);
    // Fingerprints too: the first 64 bytes of every dump, RDB and object file of the set.
    const fingerprints = local.filter((f) => /^(postgres|redis|minio)\//.test(f.path.slice(setDir.length + 1)) && f.bytes.length >= 64).map((f) => f.bytes.subarray(0, 64));
    for (const s of stored) {
      for (const n of needles) expect(s.bytes.includes(Buffer.from(n)), `${n} in ${s.key}`).toBe(false);
      for (const fp of fingerprints) expect(s.bytes.includes(fp), `plaintext bytes in ${s.key}`).toBe(false);
      for (const secret of secrets()) expect(s.bytes.includes(Buffer.from(secret)), `a secret in ${s.key}`).toBe(false);
    }

    // Decrypt by hand with the standard age CLI (the README's command).
    const manifestAge = join(dir, "manifest.json.age");
    writeFileSync(manifestAge, stored.find((s) => s.key.endsWith("/files/manifest.json.age"))!.bytes);
    const manifest = execFileSync(resolveTool("age"), ["-d", "-i", keyFile, manifestAge]);
    expect(manifest.equals(readFileSync(join(setDir, "manifest.json")))).toBe(true);
    const record = JSON.parse(stored.find((s) => s.key.endsWith("/offsite.json"))!.bytes.toString());
    expect(record.manifestSha256).toBe(sha256(manifest));
    const rdb = record.files.find((f: { path: string }) => f.path === "redis/dump.rdb");
    expect(rdb.storedSha256).toBe(sha256(stored.find((s) => s.key.endsWith(`/${rdb.key}`))!.bytes));

    // The disaster: the local set is gone.
    rmSync(output, { recursive: true, force: true });
    const d = await runCli(["restore-drill", "--config", cfg, "--from", kind, "--json"], { env });
    expect(d.code, d.stderr).toBe(0);
    const summary = DrillSummarySchema.parse(JSON.parse(d.stdout));
    expect(summary).toMatchObject({ ok: true, setId, totals: { failed: 0 } });
    expect(Object.keys(summary.services).sort()).toEqual(["minio", "postgres", "redis"]);
    expect(summary.totals.checks).toBeGreaterThan(20);
    // The verdict is left at the destination; the staging copy is gone.
    const drill = JSON.parse((await getAll(client, `${PREFIX}${setId}/restore-drill.json`)).toString());
    expect(drill).toMatchObject({ ok: true, setId, manifestSha256: record.manifestSha256 });
    expect(existsSync(output) ? readdirSync(output).filter((n) => n.startsWith(".pull-")) : []).toEqual([]);
    // restore --from with the key given on the command line only (the config has no identity): pulled, verified, planned.
    const noKey = config(output, { encrypt: { recipients: [recipient] } });
    const refused = await runCli(["restore", "--config", noKey, "--from", kind, "--services", "minio", "--target-minio-endpoint", dest.endpoint, "--target-minio-access-key", "env:TEST_OFFSITE_ACCESS_KEY", "--target-minio-secret-key", "env:TEST_OFFSITE_SECRET_KEY", "--dry-run"], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/is encrypted: set offsite\.destinations\..*\.encrypt\.identity \(or --identity\)/);
    const plan = await runCli(
      ["restore", "--config", noKey, "--from", kind, "--identity", `file:${keyFile}`, "--services", "minio", "--target-minio-endpoint", dest.endpoint, "--target-minio-access-key", "env:TEST_OFFSITE_ACCESS_KEY", "--target-minio-secret-key", "env:TEST_OFFSITE_SECRET_KEY", "--dry-run", "--json"],
      { env },
    );
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({ setId, dryRun: true, manifestSha256: record.manifestSha256 });
    // No private key or password in any output.
    for (const out of [b.stdout, b.stderr, d.stdout, d.stderr, refused.stderr, plan.stdout, plan.stderr]) for (const s of secrets()) expect(out).not.toContain(s);
  });

  it("a push killed halfway leaves no set; the rerun uploads only the rest; verify --remote --read-data accepts the copy", async () => {
    const output = join(dir, "resume");
    const cfg = config(output, { pushAfterBackup: false, concurrency: 1 });
    const b = await runCli(["backup", "--config", cfg, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    const setId: string = JSON.parse(b.stdout).id;
    const journal = join(output, ".offsite", kind, `${setId}.jsonl`);
    const lines = () => (existsSync(journal) ? readFileSync(journal, "utf8").split("\n").filter(Boolean).length : 0);

    // Start the push and kill it (SIGKILL: no cleanup at all) once 15 files are up.
    const child = spawn(process.execPath, [BIN, "push", "--config", cfg, "--quiet"], { cwd: REPO, env: { ...process.env, ...env }, stdio: "ignore" });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    let killedAt = 0;
    for (let i = 0; i < 6000 && child.exitCode === null; i++) {
      if (lines() >= 15) {
        child.kill("SIGKILL");
        killedAt = lines();
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    expect(killedAt, "the push was killed before it finished").toBeGreaterThanOrEqual(15);
    const before = new Map((await remoteKeys(setId)).map((o) => [o.key, o]));
    expect([...before.keys()].some((k) => k.endsWith("/offsite.json"))).toBe(false);
    expect([...before.keys()].some((k) => k.endsWith("/files/manifest.json.age"))).toBe(false);

    // An incomplete copy is never read as a set.
    const partial = await runCli(["verify", "--config", cfg, "--remote", kind, "--set", setId, "--json"], { env });
    expect(partial.code).toBe(3);
    expect(JSON.parse(partial.stdout).findings[0]).toMatchObject({ path: "offsite.json", verdict: "manifest-invalid" });
    const noSet = await runCli(["restore-drill", "--config", cfg, "--from", kind, "--set", setId, "--json"], { env });
    expect(noSet.code).toBe(3);
    expect(noSet.stderr).toMatch(/offsite\.json: missing: the copy of .* is incomplete/);

    const done = lines();
    const rerun = await runCli(["push", "--config", cfg, "--json"], { env });
    expect(rerun.code, rerun.stderr).toBe(0);
    const r = JSON.parse(rerun.stdout);
    expect(r.skipped.files).toBeGreaterThanOrEqual(done);
    expect(r.uploaded.files + r.skipped.files).toBe(r.files);
    expect(r.uploaded.files).toBeGreaterThan(0);
    // What the killed run completed was not sent again: same ETag and time.
    const after = new Map((await remoteKeys(setId)).map((o) => [o.key, o]));
    let unchanged = 0;
    for (const [k, o] of before) {
      const a = after.get(k);
      if (a && a.etag === o.etag && a.lastModified === o.lastModified) unchanged++;
    }
    expect(unchanged).toBeGreaterThanOrEqual(r.skipped.files);
    expect(existsSync(journal)).toBe(false);

    const v = await runCli(["verify", "--config", cfg, "--remote", kind, "--read-data", "--json"], { env });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, mode: "read-data", encrypted: true, id: setId });
    // A second push finds it complete.
    const again = await runCli(["push", "--config", cfg, "--json"], { env });
    expect(JSON.parse(again.stdout)).toMatchObject({ alreadyComplete: true, uploaded: { files: 0 } });
    for (const out of [rerun.stdout, rerun.stderr, v.stdout, v.stderr]) for (const s of secrets()) expect(out).not.toContain(s);
    expect(filesContaining(output, secrets())).toEqual([]);
  });

  it("a flipped byte, a truncated, a deleted and an extra object at the destination are each reported by path (exit 3)", async () => {
    const output = join(dir, "damage");
    const cfg = config(output, { prefix: "damage/" });
    const b = await runCli(["backup", "--config", cfg, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    const setId: string = JSON.parse(b.stdout).id;
    const base = `damage/${setId}/files/`;
    const victims = { flipped: "redis/dump.rdb", truncated: "minio/logs/2026/11/01/app-0.log", deleted: "postgres/app.schema.sql", extra: "minio/assets/planted.txt" };
    const key = (p: string) => `${base}${p}.age`;
    const onDisk = (p: string) => join(dest.root!, BUCKET, key(p));
    if (kind === "versity") {
      // Bit rot under the server: the file changes, the ETag it recorded does not.
      const bytes = readFileSync(onDisk(victims.flipped));
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      writeFileSync(onDisk(victims.flipped), bytes);
      truncateSync(onDisk(victims.truncated), statSync(onDisk(victims.truncated)).size - 7);
    } else {
      const flipped = await getAll(client, key(victims.flipped));
      flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
      await client.putObject(BUCKET, key(victims.flipped), flipped, flipped.length);
      const cut = await getAll(client, key(victims.truncated));
      await client.putObject(BUCKET, key(victims.truncated), cut.subarray(0, cut.length - 7), cut.length - 7);
    }
    await client.removeObject(BUCKET, key(victims.deleted));
    await client.putObject(BUCKET, key(victims.extra), Buffer.from("planted"), 7);

    const expected = [
      { path: victims.flipped, verdict: "checksum-mismatch" },
      { path: victims.truncated, verdict: "truncated" },
      { path: victims.deleted, verdict: "missing" },
      { path: victims.extra, verdict: "extra" },
    ].sort((a, b) => (a.path < b.path ? -1 : 1));
    const deep = await runCli(["verify", "--config", cfg, "--remote", kind, "--read-data", "--json"], { env });
    expect(deep.code, deep.stderr).toBe(3);
    const found = JSON.parse(deep.stdout).findings.map((f: { path: string; verdict: string }) => ({ path: f.path, verdict: f.verdict }));
    expect(found).toEqual(expected);
    // From the listing alone: everything a listing can show (a byte flipped under the server keeps its ETag).
    const quick = await runCli(["verify", "--config", cfg, "--remote", kind, "--json"], { env });
    expect(quick.code).toBe(3);
    const listed = JSON.parse(quick.stdout).findings.map((f: { path: string; verdict: string }) => ({ path: f.path, verdict: f.verdict }));
    expect(listed).toEqual(kind === "versity" ? expected.filter((f) => f.path !== victims.flipped) : expected);
    const human = await runCli(["verify", "--config", cfg, "--remote", kind, "--read-data"], { env });
    expect(human.stdout).toMatch(/FAILED — 4 finding\(s\)/);
    expect(human.stdout).toContain(`missing           ${victims.deleted}`);
    // A drill from a damaged copy restores nothing.
    const d = await runCli(["restore-drill", "--config", cfg, "--from", kind, "--json"], { env });
    expect(d.code).toBe(3);
    expect(d.stderr).toMatch(/does not match its record, nothing restored/);
    expect(d.stderr).not.toMatch(/drill postgres: restoring/);
  });

  it("freshness judges each destination by its newest verified copy; prune keeps the newest, latest-pushed and remote-drilled copies", async () => {
    const output = join(dir, "resume"); // the killed-and-resumed push's root: one local set, its copy complete at prod/
    const cfg = config(output, { pushAfterBackup: false, retention: { keepLast: 1, partialGrace: "1d" } });
    const copies = async () => (await listObjectsAll(client, BUCKET, { prefix: PREFIX, delimiter: "/" })).prefixes.map((p) => p.slice(PREFIX.length, -1)).sort();
    const [drilledId, resumedId] = (await copies()) as [string, string];

    const f = await runCli(["freshness", "--config", cfg, "--json", "--prometheus", join(dir, "f.prom"), "--markdown", join(dir, "f.md")], { env });
    const doc = JSON.parse(f.stdout);
    expect(doc.offsite).toHaveLength(1);
    expect(doc.offsite[0]).toMatchObject({ destination: kind, status: "OK", newestVerified: { setId: resumedId }, copies: { verified: 1 } });
    expect(readFileSync(join(dir, "f.prom"), "utf8")).toContain(`backup_drill_offsite_freshness_status{destination="${kind}"} 0`);
    expect(readFileSync(join(dir, "f.md"), "utf8")).toMatch(new RegExp(`\\| ${kind} \\| ✅ OK \\|`));
    const later = await runCli(["freshness", "--config", cfg, "--json", "--now", new Date(Date.now() + 3 * 86_400_000).toISOString()], { env });
    expect(later.code).toBe(2);
    expect(JSON.parse(later.stdout).offsite[0]).toMatchObject({ status: "CRITICAL", findings: [{ kind: "stale", status: "CRITICAL" }] });
    // The damaged copy (its own prefix) is not a verified copy.
    const damaged = await runCli(["freshness", "--config", config(output, { prefix: "damage/" }), "--json"], { env });
    expect(damaged.code).toBe(2);
    expect(JSON.parse(damaged.stdout).offsite[0]).toMatchObject({ status: "CRITICAL", findings: [{ kind: "no-verified-copy" }] });

    // A newer set pushed, and an interrupted copy nobody finished.
    const b = await runCli(["backup", "--config", cfg, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    const newestId: string = JSON.parse(b.stdout).id;
    expect((await runCli(["push", "--config", cfg, "--set", newestId], { env })).code).toBe(0);
    await client.putObject(BUCKET, `${PREFIX}2020-01-01T00-00-00Z/files/redis/dump.rdb.age`, Buffer.from("half"), 4);

    const dry = await runCli(["prune", "--config", cfg, "--json", "--dry-run"], { env });
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout).offsite[0];
    const reasons = Object.fromEntries(plan.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons]));
    expect(reasons[newestId]).toEqual(expect.arrayContaining(["last", "newest-complete", "latest"]));
    expect(reasons[drilledId]).toEqual(["newest-drilled"]);
    expect(reasons["2020-01-01T00-00-00Z"]).toEqual(["partial-in-grace"]);
    expect(plan.remove).toEqual([expect.objectContaining({ id: resumedId, reason: "no-rule" })]);
    expect(await copies()).toHaveLength(4);

    const p = await runCli(["prune", "--config", cfg, "--json", "--now", new Date(Date.now() + 2 * 86_400_000).toISOString()], { env });
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout).offsite[0].removed.sort()).toEqual(["2020-01-01T00-00-00Z", resumedId].sort());
    expect(await copies()).toEqual([drilledId, newestId].sort());
    const v = await runCli(["verify", "--config", cfg, "--remote", kind, "--set", drilledId], { env });
    expect(v.code, v.stdout).toBe(0);
  });
});

describe("a push that fails after a good backup", () => {
  it("leaves the set promoted, reports the destination, and exits 5", async () => {
    const dir = join(tmp(), "unreachable");
    const output = join(dir, "out");
    execFileSync("mkdir", ["-p", dir]);
    const cfg = writeCliConfig(dir, servers(), output, {
      offsite: {
        destinations: {
          gone: { endpoint: "http://127.0.0.1:9", bucket: BUCKET, accessKey: "env:GONE_KEY", secretKey: "env:GONE_SECRET" },
        },
      },
    });
    const r = await runCli(["backup", "--config", cfg, "--json"], { env: { ...secretEnv(servers()), GONE_KEY: "k", GONE_SECRET: "s" } });
    expect(r.code, r.stderr).toBe(5);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, offsite: [{ destination: "gone", ok: false }] });
    expect(doc.offsite[0].error).toMatch(/offsite gone \(http:\/\/127\.0\.0\.1:9\/offsite-copies\/\): cannot reach the bucket/);
    expect(JSON.parse(readFileSync(join(output, "latest.json"), "utf8")).id).toBe(doc.id);
    expect((await runCli(["verify", "--output", output])).code).toBe(0);
  });
});
