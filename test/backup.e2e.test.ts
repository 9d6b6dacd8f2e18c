import { execFileSync, spawn } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { connectRedis, parseInfo } from "../probes/redis.js";
import { describeObjects, listObjects, minioClient, objectAttributes } from "../probes/minio.js";
import { readListing } from "../pipeline/listing.js";
import { ManifestSchema, type Manifest } from "../pipeline/manifest.js";
import { sha256Hex } from "../pipeline/hash.js";
import { startRedis } from "../pipeline/throwaway/servers.js";
import { resolveTool } from "../pipeline/tools.js";
import { runCli, type CliResult } from "./cli.js";
import { ArgvSampler, childrenOf } from "./procs.js";
import { filesContaining } from "./secrets.js";
import { secretEnv, secretValues, useServers, useTempDir, writeCliConfig } from "./services/index.js";

const servers = useServers();
const tmp = useTempDir("backup");

/** Poll `probe` until it gives a truthy value, and return that value; fail after `ms`. */
async function until<T>(probe: () => T | Promise<T>, ms: number): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not reached within ${ms / 1000}s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function listTree(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[]).map(String).sort();
}

describe("backup and verify against real PostgreSQL, Redis and MinIO", () => {
  let output: string;
  let config: string;
  let env: Record<string, string>;
  let setId: string;
  let setDir: string;
  let manifest: Manifest;
  let backupOut: { stdout: string; stderr: string };
  let argvSeen: string[];
  let treeBefore: string[];

  beforeAll(async () => {
    output = join(tmp(), "out");
    // Every set this file makes is inspected later: keep them all (the default policy would prune).
    config = writeCliConfig(tmp(), servers(), output, { retention: "off" });
    env = secretEnv(servers());
    treeBefore = listTree(tmp());
    const sampler = new ArgvSampler();
    const r = await runCli(["backup", "--config", config, "--json"], { env, onSpawn: (pid) => sampler.start(pid) });
    argvSeen = sampler.stop();
    backupOut = r;
    expect(r.stderr).toContain("backup"); // progress went to stderr
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    setId = doc.id;
    setDir = join(output, setId);
    manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(setDir, "manifest.json"), "utf8")));
    // Where the time went: every service's phase, each within the run's own span.
    expect(Object.keys(doc.serviceMs).sort()).toEqual(["minio", "postgres", "redis"]);
    for (const ms of Object.values(doc.serviceMs) as number[]) {
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(doc.durationMs);
    }
  });

  it("writes a complete set: every file in the manifest with its real size and sha256", () => {
    const onDisk = (readdirSync(setDir, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(setDir.length + 1))
      .filter((p) => !["manifest.json", "manifest.sha256", "SHA256SUMS"].includes(p))
      .sort();
    expect(manifest.files.map((f) => f.path).sort()).toEqual(onDisk);
    for (const f of manifest.files) {
      const bytes = readFileSync(join(setDir, f.path));
      expect({ path: f.path, size: bytes.length, sha256: sha256Hex(bytes) }).toEqual(f);
    }
    const paths = manifest.files.map((f) => f.path);
    expect(paths).toContain("postgres/app/toc.dat");
    expect(paths).toContain("postgres/app.schema.sql");
    expect(paths).toContain("postgres/globals.sql");
    expect(paths).toContain("redis/dump.rdb");
    expect(paths).toContain("minio/assets.objects.jsonl");
    expect(paths).toContain("minio/assets/videos/intro.mp4");
    const latest = JSON.parse(readFileSync(join(output, "latest.json"), "utf8"));
    expect(latest).toMatchObject({ id: setId, path: setDir });
    expect(existsSync(join(output, ".lock"))).toBe(false);
    expect(readdirSync(output).filter((n) => n.startsWith(".partial-"))).toEqual([]);
  });

  it("SHA256SUMS and manifest.sha256 pass sha256sum -c inside the set", () => {
    const sums = execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: setDir }).toString();
    expect(sums.match(/: OK$/gm)).toHaveLength(manifest.files.length + 1);
    expect(execFileSync("sha256sum", ["-c", "manifest.sha256"], { cwd: setDir }).toString()).toMatch(/^manifest\.json: OK$/m);
  });

  it("records the expectations the drill compares against", () => {
    const pg = manifest.services.postgres!;
    const app = pg.databases.find((d) => d.name === "app")!;
    expect(app.tables.find((t) => t.name === "customers")).toMatchObject({ schema: "public", rows: 500 });
    expect(app.tables.find((t) => t.name === "orders")).toMatchObject({ rows: 2000 });
    expect(pg.databases.find((d) => d.name === "analytics")!.tables).toEqual([expect.objectContaining({ schema: "events", name: "page_views", rows: 5000 })]);
    expect(pg.serverVersion).toMatch(/^15\./);
    expect(pg.systemIdentifier).toMatch(/^\d+$/);
    const redis = manifest.services.redis!;
    expect(redis.keyspace).toEqual([
      { db: 0, keys: 494, expires: 51 },
      { db: 1, keys: 161, expires: 1 },
    ]);
    expect(redis.bgsave).toBeUndefined(); // one snapshot: the SYNC's, no BGSAVE
    expect(redis.snapshot!.describedWith).toMatch(/^redis-server 7\./);
    expect(redis.live!.keyspace).toEqual(redis.keyspace); // nothing wrote meanwhile
    expect(redis.live!.drift).toEqual([
      { db: 0, keys: 0, expires: 0 },
      { db: 1, keys: 0, expires: 0 },
    ]);
    expect(redis.sample.length).toBe(494 + 161); // small dbs are sampled whole
    expect(redis.functions!.map((f) => f.name)).toEqual(["shop"]);
    expect(redis.streamGroups).toEqual([
      { db: 0, key: "events", keyEncoding: "utf8", groups: [{ name: "mailer", lastDeliveredId: expect.stringMatching(/^\d+-\d+$/), pending: 1, consumers: 1 }] },
    ]);
    expect(redis.sample.find((s) => s.keyEncoding === "base64")).toBeDefined(); // the binary key
    const assets = manifest.services.minio!.buckets.find((b) => b.name === "assets")!;
    expect(assets.canary).toMatchObject({ ok: true });
    expect(assets.markers).toBe(2);
  });

  it("lists every object of every bucket, awkward keys and markers included, with their attributes", async () => {
    const client = minioClient({ ...servers().minio, region: "us-east-1" });
    for (const bucket of ["assets", "logs"]) {
      const live = (await listObjects(client, bucket)).map((o) => o.key).sort();
      const listing = await readListing(join(setDir, `minio/${bucket}.objects.jsonl`));
      expect(listing.map((e) => e.key).sort()).toEqual(live);
    }
    const listing = await readListing(join(setDir, "minio/assets.objects.jsonl"));
    const byKey = new Map(listing.map((e) => [e.key, e]));
    for (const key of ["with space.txt", "unicodé/ключ/文件.txt", "a+b=c.txt", "100%.txt", "a..b.txt", "q?mark#hash.txt", "back\\slash.txt"]) {
      const e = byKey.get(key);
      expect(e, key).toBeDefined();
      expect(readFileSync(join(setDir, e!.path!)).toString()).toBe(`awkward: ${key}`);
    }
    expect(byKey.get("folder/")).toMatchObject({ marker: true, path: null, size: 0 });
    expect(byKey.get("empty-folder/")).toMatchObject({ marker: true, path: null });
    expect(byKey.get("zero-byte.dat")).toMatchObject({ size: 0, marker: false, path: "minio/assets/zero-byte.dat" });
    expect(byKey.get("data/report.json.gz")).toMatchObject({ contentType: "application/json", contentEncoding: "gzip" });
    expect(byKey.get("images/img-3.png")).toMatchObject({
      contentType: "image/png",
      cacheControl: "public, max-age=86400",
      userMetadata: { "uploaded-by": "user-3" },
      tags: { project: "shop", index: "3" },
    });
    expect(byKey.get("videos/intro.mp4")!.etag).toMatch(/-\d+$/); // uploaded in parts
  });

  it("describes every object from one listing exactly as HEAD + GetObjectTagging do", async () => {
    const client = minioClient({ ...servers().minio, region: "us-east-1" });
    for (const bucket of ["assets", "logs"]) {
      const described = await describeObjects(client, bucket);
      expect(described.length).toBeGreaterThan(0);
      // Last-Modified as an HTTP header has whole seconds; the listing keeps milliseconds.
      const toSecond = (iso: string) => iso.replace(/\.\d{3}Z$/, ".000Z");
      for (const d of described) {
        expect({ ...d.attrs, lastModified: toSecond(d.attrs.lastModified) }, d.key).toEqual(await objectAttributes(client, bucket, d.key));
      }
    }
    const pdf = (await describeObjects(client, "assets")).find((d) => d.key === "docs/manual.pdf")!;
    expect(pdf.attrs).toMatchObject({
      contentDisposition: 'attachment; filename="manual.pdf"',
      contentLanguage: "de-CH",
      userMetadata: { reviewed: "yes" },
      tags: { "owner team": "docs/ops@corp: +1", rev: "a=b+c" },
    });
  });

  it("wrote nothing outside the set (keys with .. segments are refused by MinIO; mapping guards the rest)", () => {
    const after = listTree(tmp());
    const added = after.filter((p) => !treeBefore.includes(p));
    const outsideSet = added.filter((p) => !p.startsWith(`out/${setId}`) && p !== "out" && p !== "out/latest.json");
    expect(outsideSet).toEqual([]);
  });

  it("verify exits 0 on the fresh set and runs the format checks", async () => {
    const r = await runCli(["verify", "--output", output, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ ok: true, id: setId, findings: [] });
    expect(report.formatChecks.map((c: { id: string }) => c.id)).toEqual([
      "verify/pg_restore-list/analytics",
      "verify/pg_restore-list/app",
      "verify/pg_restore-list/postgres",
      "verify/redis-check-rdb",
    ]);
  });

  it("keeps every secret out of files, output and the argv of every process it spawned", () => {
    // argvSeen holds the command lines of the CLI and its descendants only: no other program can fill or spoil it.
    const secrets = secretValues(servers());
    expect(filesContaining(output, secrets)).toEqual([]);
    for (const s of secrets) {
      expect(backupOut.stdout).not.toContain(s);
      expect(backupOut.stderr).not.toContain(s);
    }
    // The sampler saw the tools run, so an empty hit list means something.
    expect(argvSeen.some((c) => /pg_dump .*--format=directory/.test(c))).toBe(true);
    expect(argvSeen.some((c) => /redis-cli .*--rdb/.test(c))).toBe(true);
    expect(argvSeen.some((c) => /mc mirror/.test(c))).toBe(true);
    expect(argvSeen.filter((c) => secrets.some((s) => c.includes(s)))).toEqual([]);
  });

  describe("verify names each corruption and exits 3", () => {
    const corruptions: [string, (dir: string, m: Manifest) => string, string][] = [
      [
        "one flipped byte in a dump file",
        (dir, m) => {
          const f = m.files.find((x) => /^postgres\/app\/\d+\.dat\.gz$/.test(x.path) && x.size > 100)!;
          const p = join(dir, f.path);
          const b = readFileSync(p);
          b[Math.floor(b.length / 2)]! ^= 0x01;
          writeFileSync(p, b);
          return f.path;
        },
        "checksum-mismatch",
      ],
      [
        "a truncated RDB",
        (dir) => {
          truncateSync(join(dir, "redis/dump.rdb"), 100);
          return "redis/dump.rdb";
        },
        "truncated",
      ],
      [
        "a deleted object file",
        (dir) => {
          unlinkSync(join(dir, "minio/assets/images/img-5.png"));
          return "minio/assets/images/img-5.png";
        },
        "missing",
      ],
      [
        "a stray file",
        (dir) => {
          writeFileSync(join(dir, "postgres/stray.txt"), "not from a backup");
          return "postgres/stray.txt";
        },
        "extra",
      ],
      [
        "an edited manifest.json",
        (dir) => {
          const p = join(dir, "manifest.json");
          writeFileSync(p, readFileSync(p, "utf8").replace('"rows": 500', '"rows": 501'));
          return "manifest.json";
        },
        "manifest-invalid",
      ],
    ];

    it.each(corruptions)("%s", async (_name, corrupt, verdict) => {
      const root = join(tmp(), `corrupt-${verdict}`);
      mkdirSync(root, { recursive: true });
      cpSync(setDir, join(root, setId), { recursive: true });
      const path = corrupt(join(root, setId), manifest);
      const r = await runCli(["verify", "--output", root, "--set", setId, "--json"]);
      expect(r.code, r.stderr).toBe(3);
      const report = JSON.parse(r.stdout);
      expect(report.ok).toBe(false);
      expect(report.findings).toContainEqual(expect.objectContaining({ path, verdict }));
      const human = await runCli(["verify", "--output", root, "--set", setId]);
      expect(human.code).toBe(3);
      expect(human.stdout).toContain(path);
      rmSync(root, { recursive: true, force: true });
    });
  });

  it("a failed service fails the run (exit 1) naming it; latest.json and earlier sets stay; no new set directory", async () => {
    const redis = await startRedis({ tools: {} });
    const client = await connectRedis(redis);
    await client.set("k", "v");
    client.disconnect();
    const cfgPath = writeCliConfig(tmp(), servers(), output, {
      redis: { host: redis.host, port: redis.port, password: "env:DOOMED_REDIS_PW", bgsaveTimeout: "10s" },
    });
    await redis.stop();
    const latestBefore = readFileSync(join(output, "latest.json"));
    const dirsBefore = readdirSync(output).sort();
    const r = await runCli(["backup", "--config", cfgPath], { env: { ...env, DOOMED_REDIS_PW: redis.password.reveal() } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^backup-drill backup: error: preflight failed, nothing staged: redis: cannot connect: .*ECONNREFUSED.* — is Redis running and reachable at 127\.0\.0\.1:\d+\?$/m);
    expect(readFileSync(join(output, "latest.json")).equals(latestBefore)).toBe(true);
    expect(readdirSync(output).sort()).toEqual(dirsBefore);
  });

  it("one backup per output root: a live lock holder makes a second run exit 4; a dead one is taken over", async () => {
    const holder = spawn("sleep", ["60"]);
    try {
      writeFileSync(join(output, ".lock"), JSON.stringify({ pid: holder.pid, host: hostname(), startedAt: new Date().toISOString(), command: "backup" }));
      const r = await runCli(["backup", "--config", config], { env });
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`held by pid ${holder.pid}`);
    } finally {
      holder.kill();
    }
    await new Promise((res) => holder.once("exit", res));
    // The holder is dead now: its lock is stale and the next backup takes it over.
    const r = await runCli(["backup", "--config", config, "--quiet"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(output, ".lock"))).toBe(false);
  });

  it("two backups started together: one succeeds, the other exits 4", async () => {
    // Whichever gets the lock is held at its first pg_dump until the other has exited, however late
    // that one starts: the outcome depends on the lock alone, not on the machine's load.
    const gate = join(tmp(), "gate");
    mkdirSync(gate);
    const wrapper = join(tmp(), "gated-pg_dump");
    writeFileSync(
      wrapper,
      `#!/bin/sh\n[ "$1" = "--version" ] || { : > "${gate}/entered.$PPID"; while [ ! -e "${gate}/go" ]; do sleep 0.05; done; }\nexec ${resolveTool("pg_dump")} "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const gated = writeCliConfig(tmp(), servers(), output, { tools: { pg_dump: wrapper } });
    const entered = () => readdirSync(gate).filter((n) => n.startsWith("entered."));
    const runs = [0, 1].map(() => runCli(["backup", "--config", gated, "--quiet"], { env }));
    let first: CliResult | undefined;
    for (const r of runs) void r.then((res) => (first ??= res));
    try {
      // The first to finish must be the loser; two runs inside pg_dump at once would mean both hold the lock.
      await until(() => first !== undefined || entered().length > 1, 170_000);
      expect(entered().length, "runs past the lock at once").toBeLessThanOrEqual(1);
      expect(first!.code, first!.stderr).toBe(4);
      expect(first!.stderr).toMatch(/\.lock is held by pid \d+/);
    } finally {
      writeFileSync(join(gate, "go"), "");
      await Promise.allSettled(runs); // a failed expectation above still lets both runs end on their own
    }
    const codes = (await Promise.all(runs)).map((r) => r.code).sort();
    expect(codes).toEqual([0, 4]);
    expect(entered()).toHaveLength(1);
  });

  it("someone else's BGSAVE running on the server does not disturb the backup: its snapshot waits for that save", async () => {
    const redis = servers().redis;
    const client = await connectRedis(redis);
    let paused: number | undefined;
    try {
      // A slow save, paused as soon as it forks: it is still running whenever the CLI asks for its snapshot.
      await client.config("SET", "rdb-key-save-delay", "10000"); // microseconds per key
      await client.bgsave();
      const saver = await until(() => childrenOf(redis.pid)[0], 10_000);
      process.kill(saver, "SIGSTOP");
      paused = saver;
      expect(parseInfo(await client.info("persistence")).rdb_bgsave_in_progress).toBe("1");
      const replicas = async () => String(await client.call("CLIENT", "LIST", "TYPE", "replica")).trim().split("\n").filter(Boolean).length;
      const run = runCli(["backup", "--config", config, "--json", "--quiet"], { env });
      // The CLI's redis-cli --rdb is connected as a replica and waiting behind the paused save: only now may the save go on.
      await until(async () => (await replicas()) > 0, 170_000);
      process.kill(saver, "SIGCONT");
      paused = undefined;
      const r = await run;
      expect(r.code, r.stderr).toBe(0);
      const m = JSON.parse(readFileSync(join(output, JSON.parse(r.stdout).id, "manifest.json"), "utf8"));
      expect(m.services.redis.keyspace).toEqual([
        { db: 0, keys: 494, expires: 51 },
        { db: 1, keys: 161, expires: 1 },
      ]);
    } finally {
      if (paused) process.kill(paused, "SIGCONT"); // still our server's paused fork: let it finish
      await client.config("SET", "rdb-key-save-delay", "0");
      client.disconnect();
    }
  });

  it("later runs never change an earlier set", () => {
    const again = JSON.parse(readFileSync(join(setDir, "manifest.json"), "utf8"));
    expect(again).toEqual(JSON.parse(JSON.stringify(manifest)));
    expect(execFileSync("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: setDir }).toString()).toBe("");
  });
});
