/**
 * Clear answers to bad states: a damaged latest.json, a read-only output
 * root, a PostgreSQL section without a password, an unreadable directory
 * inside a set, a zero duration, MinIO gone while mc mirrors, and a private
 * (0700) TMPDIR when PostgreSQL runs as the postgres user.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minioClient } from "../../probes/minio.js";
import { startMinio, type MinioServer } from "../../pipeline/throwaway/servers.js";
import { BIN, REPO } from "../cli.js";
import { secretEnv, useServers } from "../services/index.js";
import { latestId, runCli, settleProcesses, staged, tmpLeftovers, useOwnTmpdir, writeConfig } from "./helpers.js";

const servers = useServers();
const tmp = useOwnTmpdir("bad");
let root: string;
let config: string;
let env: Record<string, string>;
let setId: string;

beforeAll(async () => {
  root = join(tmp(), "out");
  config = writeConfig(tmp(), servers(), root, { services: ["postgres", "redis"] });
  env = { ...secretEnv(servers()), TMPDIR: tmp() };
  const r = await runCli(["backup", "--config", config, "--json"], { env });
  expect(r.code, r.stderr).toBe(0);
  setId = JSON.parse(r.stdout).id;
});

describe("a damaged output root", () => {
  it("malformed latest.json: verify names the file and exits 3 (output root damaged); freshness is CRITICAL; the next backup rewrites it", async () => {
    const latest = join(root, "latest.json");
    writeFileSync(latest, '{"id": "bad\u0001"}');
    const v = await runCli(["verify", "--config", config], { env });
    expect(v.code).toBe(3);
    expect(v.stderr).toContain(`error: ${latest}: not valid JSON`);
    expect(v.stderr).toContain("the output root is damaged");
    writeFileSync(latest, JSON.stringify({ id: 42 }));
    const shape = await runCli(["verify", "--config", config], { env });
    expect(shape.code).toBe(3);
    expect(shape.stderr).toContain(`error: ${latest}: malformed: id:`);
    const f = await runCli(["freshness", "--config", config], { env });
    expect(f.code).toBe(2);
    expect(f.stdout).toMatch(/^FRESHNESS CRITICAL - output root damaged: .*latest\.json/);
    const withSet = await runCli(["verify", "--config", config, "--set", setId, "--no-formats"], { env });
    expect(withSet.code, withSet.stderr).toBe(0); // the data is fine: --set still works
    const b = await runCli(["backup", "--config", config, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    expect(latestId(root)).toBe(JSON.parse(b.stdout).id);
  });

  it("a read-only output root reports EROFS (not EEXIST), in check and in backup, and stages nothing", async () => {
    const ro = join(tmp(), "ro");
    mkdirSync(ro);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=128m", "tmpfs", ro]);
    try {
      mkdirSync(join(ro, "backups"));
      execFileSync("mount", ["-o", "remount,ro", ro]);
      const roConfig = writeConfig(tmp(), servers(), join(ro, "backups"), { services: ["redis"] });
      const c = await runCli(["check", "--config", roConfig], { env });
      expect(c.code).toBe(1);
      expect(c.stderr).toContain(`check failed: output: ${join(ro, "backups")}: EROFS`);
      expect(c.stderr).not.toContain("EEXIST");
      const b = await runCli(["backup", "--config", roConfig], { env });
      expect(b.code).toBe(1);
      expect(b.stderr).toContain(`${join(ro, "backups")}: EROFS`);
      expect(readdirSync(join(ro, "backups"))).toEqual([]);
    } finally {
      execFileSync("umount", ["-l", ro]);
    }
  });

  it("an unreadable directory inside a set is an `unreadable` finding, not a crash (verify run as an unprivileged user)", async () => {
    // As root every directory is readable: run verify as nobody, with the set readable to it but one directory.
    const dir = join(root, setId, "postgres", "app");
    chmodSync(dir, 0o000);
    try {
      const nobodyTmp = mkdtempSync(join(tmp(), "nobody-"));
      chmodSync(nobodyTmp, 0o777);
      const r = spawnSync(
        "setpriv",
        ["--reuid=65534", "--regid=65534", "--clear-groups", "--", process.execPath, BIN, "verify", "--config", config, "--set", setId, "--no-formats", "--json"],
        { cwd: REPO, env: { ...process.env, ...env, TMPDIR: nobodyTmp, HOME: nobodyTmp }, encoding: "utf8", timeout: 60_000 },
      );
      expect(r.status, r.stderr).toBe(3);
      const doc = JSON.parse(r.stdout);
      expect(doc.findings).toContainEqual({ path: "postgres/app", verdict: "unreadable", detail: "directory cannot be read: EACCES" });
      expect(r.stderr).not.toContain("scandir");
    } finally {
      chmodSync(dir, 0o755);
    }
  });
});

describe("bad input says what to fix", () => {
  it('a PostgreSQL section without a password, when the server asks for one: "no password is configured", exit 2, nothing staged', async () => {
    const s = servers();
    const path = join(tmp(), "nopw.json");
    writeFileSync(path, JSON.stringify({ output: join(tmp(), "nopw"), retention: "off", postgres: { host: s.postgres.host, port: s.postgres.port, user: "postgres" } }));
    const r = await runCli(["backup", "--config", path], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("the server asks for a password and no password is configured (postgres.password");
    expect(r.stderr).not.toMatch(/SASL/);
    expect(staged(join(tmp(), "nopw"))).toEqual([]);
  });

  it.each([
    ["redis.bgsaveTimeout", { redis: { bgsaveTimeout: "0s" } }],
    ["timeouts.stall", { timeouts: { stall: "0ms" } }],
  ])("a zero duration (%s) is refused with exit 2 naming the field", async (field, extra) => {
    const s = servers();
    const path = join(tmp(), `zero-${field}.json`);
    const redis = { host: s.redis.host, port: s.redis.port, password: "env:TEST_REDIS_PASSWORD", ...("redis" in extra ? extra.redis : {}) };
    writeFileSync(path, JSON.stringify({ output: join(tmp(), "zero"), redis, ...("timeouts" in extra ? { timeouts: extra.timeouts } : {}) }));
    const r = await runCli(["backup", "--config", path], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${field}: must be longer than zero`);
  });
});

describe("MinIO gone while mc mirrors", () => {
  let minio: MinioServer;
  beforeAll(async () => {
    minio = await startMinio({ tools: {} });
    const c = minioClient({ ...minio, region: "us-east-1" });
    await c.makeBucket("assets", "us-east-1");
    await Promise.all(Array.from({ length: 100 }, (_, i) => c.putObject("assets", `f/${i}.bin`, Buffer.alloc(200_000, i))));
  });
  afterAll(async () => {
    await minio?.stop();
  });

  it("the error is mc's cause line, not its summary table; nothing staged; no mc left", async () => {
    const out = join(tmp(), "mc-out");
    const path = join(tmp(), "mc.json");
    writeFileSync(path, JSON.stringify({ output: out, retention: "off", timeouts: { stall: "10s" }, minio: { endpoint: minio.endpoint, accessKey: "env:MC_AK", secretKey: "env:MC_SK", buckets: ["assets"], canary: false } }));
    const r = await runCli(["backup", "--config", path], {
      env: { ...env, MC_AK: minio.accessKey.reveal(), MC_SK: minio.secretKey.reveal() },
      pauseAt: ["step:minio/mirror/assets"],
      onPause: async () => {
        process.kill(minio.pid, "SIGKILL");
        return "continue";
      },
    });
    expect(r.code, r.stderr).toBe(1);
    const error = r.stderr.split("\n").find((l) => l.startsWith("backup-drill backup: error:"))!;
    expect(error).toMatch(/minio bucket assets: mirror\/assets: mc exited with code \d+ \(talking to minio at 127\.0\.0\.1:\d+\): mc: <ERROR> .*(connection refused|connection reset|dial tcp|EOF)/i);
    expect(error).not.toMatch(/Total|Transferred|Speed|┌|│/);
    expect(staged(out)).toEqual([]);
    expect(await settleProcesses(3000, out)).toEqual([]);
  });
});

describe("a private TMPDIR", () => {
  it("root with TMPDIR in a 0700 directory: the drill puts PostgreSQL's temp dir where the postgres user can reach it, and passes", async () => {
    const home = mkdtempSync(join(tmp(), "home-"));
    chmodSync(home, 0o700);
    const privateTmp = join(home, "tmp");
    mkdirSync(privateTmp);
    const r = await runCli(["restore-drill", "--config", config, "--set", setId], { env: { ...env, TMPDIR: privateTmp } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("Permission denied");
    const registry = join(privateTmp, "backup-drill-registry");
    expect(existsSync(registry) ? readdirSync(registry) : []).toEqual([]); // every temp dir it made is gone again
    expect(tmpLeftovers(privateTmp).dirs).toEqual([]);
  });
});
