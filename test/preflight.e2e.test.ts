import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis } from "../probes/redis.js";
import { resolveTool } from "../pipeline/tools.js";
import { startRedis } from "../pipeline/throwaway/servers.js";
import { runCli } from "./cli.js";
import { secretEnv, secretValues, useServers, useTempDir, writeCliConfig } from "./services/index.js";

const servers = useServers();
const tmp = useTempDir("preflight");
const mounts: string[] = [];

/** A tmpfs of `size` (read-only when asked): a real small or unwritable filesystem as output root. */
function tmpfs(name: string, opts: string): string {
  if (process.getuid?.() !== 0) {
    throw new Error(`this test mounts a tmpfs (${opts}) as the output root and needs root: run it as root, as CI does (uid is ${process.getuid?.()})`);
  }
  const dir = join(tmp(), name);
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new Error(`this test mounts a tmpfs as the output root: mount -t tmpfs -o ${opts} failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`);
  }
  mounts.push(dir);
  return dir;
}

/** A pg_dump that says it is 14.9 and otherwise is the real one: older than the server. */
function oldPgDump(name: string): string {
  const wrapper = join(tmp(), name);
  writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 14.9"; exit 0; fi\nexec ${resolveTool("pg_dump")} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}

afterAll(() => {
  for (const m of mounts.reverse()) execFileSync("umount", [m]);
});

describe("preflight: backup-drill check", () => {
  let env: Record<string, string>;
  const check = (cfg: string, extraEnv: Record<string, string> = {}) => runCli(["check", "--config", cfg], { env: { ...env, ...extraEnv } });

  beforeAll(() => {
    env = secretEnv(servers());
  });

  function expectOnlyFailure(r: { code: number | null; stderr: string; stdout: string }, pattern: RegExp): void {
    expect(r.code, r.stdout).toBe(1);
    const failures = r.stderr.split("\n").filter((l) => l.startsWith("check failed: "));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(pattern);
    for (const s of secretValues(servers())) expect(r.stdout + r.stderr).not.toContain(s);
  }

  it("passes every check on healthy services, with versions and an estimate", async () => {
    const r = await runCli(["check", "--config", writeCliConfig(tmp(), servers(), join(tmp(), "out-ok")), "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    const names = report.checks.map((c: { service: string; check: string }) => `${c.service} ${c.check}`);
    for (const n of ["postgres connect", "postgres tool pg_dump", "postgres read app", "postgres read analytics", "redis connect", "redis replication sync", "redis tool redis-server", "minio connect", "minio list+get assets", "minio canary assets", "output writable", "output free disk"]) {
      expect(names).toContain(n);
    }
    expect(report.checks.find((c: { check: string }) => c.check === "connect" ).detail).toMatch(/PostgreSQL 15\.\d+/);
    expect(report.estimateBytes).toBeGreaterThan(12 * 1024 * 1024); // the 12 MiB object at least
  });

  it("a wrong password fails, naming the service and what to fix", async () => {
    const r = await check(writeCliConfig(tmp(), servers(), join(tmp(), "o1")), { TEST_PG_PASSWORD: "not-the-password" });
    expectOnlyFailure(r, /^check failed: postgres: .*password authentication failed for user "postgres" — check the password for role "postgres" \(postgres\.password = env:TEST_PG_PASSWORD\)$/);
  });

  it("wrong MinIO keys fail, naming minio", async () => {
    const r = await check(writeCliConfig(tmp(), servers(), join(tmp(), "o1b")), { TEST_MINIO_SECRET_KEY: "wrong-secret-key" });
    expectOnlyFailure(r, /^check failed: minio: SignatureDoesNotMatch: .* — check minio\.accessKey and minio\.secretKey/);
  });

  it("a stopped service fails, naming it", async () => {
    const redis = await startRedis({ tools: {} });
    const port = redis.port;
    await redis.stop();
    const cfg = writeCliConfig(tmp(), servers(), join(tmp(), "o2"), { redis: { port, password: "env:TEST_REDIS_PASSWORD" } });
    expectOnlyFailure(await check(cfg), new RegExp(`^check failed: redis: cannot connect: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} — is Redis running and reachable at 127\\.0\\.0\\.1:${port}\\?$`));
  });

  it("a pg_dump older than the server fails, naming both versions", async () => {
    const cfg = writeCliConfig(tmp(), servers(), join(tmp(), "o3"), { tools: { pg_dump: oldPgDump("old-pg_dump-check") } });
    expectOnlyFailure(await check(cfg), /^check failed: postgres: pg_dump 14\.9 is older than the server \(PostgreSQL 15\.\d+\).* — install pg_dump 15 or newer/);
  });

  it("an unwritable output root fails", async () => {
    const root = tmpfs("readonly", "ro,size=1m");
    expectOnlyFailure(await check(writeCliConfig(tmp(), servers(), join(root, "backups"))), /^check failed: output: .*readonly\/backups: EROFS — make the output root writable/);
  });

  it("too little free disk fails with the estimate", async () => {
    const root = tmpfs("small", "size=2m");
    expectOnlyFailure(await check(writeCliConfig(tmp(), servers(), root)), /^check failed: output: [\d.]+ [KM]iB free at .*small, the set needs about [\d.]+ MiB \(estimate/);
  });

  it("a Redis ACL user without BGSAVE passes and backs up (one snapshot: the SYNC's); one without SYNC fails, naming the permission", async () => {
    const admin = await connectRedis(servers().redis);
    await admin.call("ACL", "SETUSER", "nobgsave", "on", ">nobgsave-pw-123", "~*", "&*", "+@all", "-bgsave");
    await admin.call("ACL", "SETUSER", "nosync", "on", ">nosync-pw-123", "~*", "&*", "+@all", "-sync", "-psync");
    admin.disconnect();
    const only = (user: string, pw: string, output: string) => {
      const path = join(tmp(), `${user}.json`);
      writeFileSync(path, JSON.stringify({ output, redis: { port: servers().redis.port, username: user, password: pw } }));
      return path;
    };
    const ok = await runCli(["backup", "--config", only("nobgsave", "env:NOBG_PW", join(tmp(), "o4")), "--quiet"], { env: { ...env, NOBG_PW: "nobgsave-pw-123" } });
    expect(ok.code, ok.stderr).toBe(0);
    expectOnlyFailure(await check(only("nosync", "env:NOSYNC_PW", join(tmp(), "o4b")), { NOSYNC_PW: "nosync-pw-123" }), /^check failed: redis: user "nosync" may not SYNC \(redis-cli --rdb needs it\) — ACL SETUSER nosync \+sync \+psync \+replconf$/);
  });

  it("a local redis-server older than the source fails, naming both versions (it reads the snapshot)", async () => {
    const wrapper = join(tmp(), "old-redis-server");
    writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"; exit 0; fi\nexec ${resolveTool("redis-server")} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const cfg = writeCliConfig(tmp(), servers(), join(tmp(), "o6"), { tools: { redis_server: wrapper } });
    expectOnlyFailure(await check(cfg), /^check failed: redis: redis-server 6\.2\.14 cannot load snapshots of Redis 7\.\d+\.\d+ — install redis-server 7\.\d+ or newer, or set tools\.redis_server$/);
  });

  it("a backup whose preflight fails stages no set and exits 1", async () => {
    const output = join(tmp(), "o5");
    const cfg = writeCliConfig(tmp(), servers(), output, { tools: { pg_dump: oldPgDump("old-pg_dump-backup") } });
    const r = await runCli(["backup", "--config", cfg], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/preflight failed, nothing staged: postgres: pg_dump 14\.9 is older than the server/);
    expect(existsSync(output) ? readdirSync(output).filter((n) => n !== ".lock") : []).toEqual([]);
  });
});
