import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, redactConfig } from "../pipeline/config.js";
import { defaultJobs } from "../pipeline/cores.js";
import { UserError } from "../pipeline/errors.js";
import { Secret } from "../pipeline/secret.js";
import { runCli } from "./cli.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("config");
function file(content: unknown): string {
  const p = join(tmp(), `c-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, typeof content === "string" ? content : JSON.stringify(content));
  return p;
}
function loadError(content: unknown, env: Record<string, string> = {}): string {
  try {
    loadConfig({ configPath: file(content), env, cwd: tmp() });
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("config", () => {
  it("fills defaults and resolves env: and file: references", () => {
    const pw = join(tmp(), "pw.txt");
    writeFileSync(pw, "from-file\n");
    const cfg = loadConfig({
      configPath: file({ postgres: { password: "env:PGPW" }, redis: { password: `file:${pw}` }, minio: { accessKey: "admin", secretKey: "env:MS" } }),
      env: { PGPW: "from-env", MS: "minio-secret" },
      cwd: tmp(),
    });
    expect(cfg.postgres).toMatchObject({ host: "127.0.0.1", port: 5432, user: "postgres", jobs: defaultJobs(), compression: "gzip:1", globals: false });
    expect(cfg.postgres!.password!.reveal()).toBe("from-env");
    expect(cfg.redis!.password!.reveal()).toBe("from-file");
    expect(cfg.redis!.bgsaveTimeoutMs).toBe(3_600_000);
    expect(cfg.minio!.secretKey.reveal()).toBe("minio-secret");
    expect(cfg.output).toBe(join(tmp(), "output/backups"));
  });

  it("never prints a secret: toString, JSON and the redacted config show references only", () => {
    const cfg = loadConfig({ configPath: file({ postgres: { password: "env:PGPW" } }), env: { PGPW: "hunter2-secret" }, cwd: tmp() });
    const s = cfg.postgres!.password!;
    expect(String(s)).toBe("[redacted]");
    expect(JSON.stringify(cfg)).not.toContain("hunter2-secret");
    expect(JSON.stringify(redactConfig(cfg))).toContain("env:PGPW");
    expect(new Secret("x-very-secret", "env:X").toJSON()).toBe("[redacted]");
  });

  it("lets env override the file and flags override env", () => {
    const path = file({ postgres: { host: "db.internal", port: 5432 } });
    const cfg = loadConfig({
      configPath: path,
      env: { BACKUP_DRILL_PG_HOST: "from-env", BACKUP_DRILL_PG_PORT: "6000" },
      flags: { "pg-port": "7000" },
      cwd: tmp(),
    });
    expect(cfg.postgres!.host).toBe("from-env");
    expect(cfg.postgres!.port).toBe(7000);
  });

  it.each([
    ["a wrong type", { postgres: { port: "5432" } }, {}, /postgres\.port: .*expected number/],
    ["an unknown key", { postgres: { hostname: "x" } }, {}, /postgres\.hostname: unknown key/],
    ["an unknown top-level key", { mysql: {} }, {}, /mysql: unknown key/],
    ["a literal password", { postgres: { password: "hunter2" } }, {}, /postgres\.password: must be a reference/],
    ["a missing secret env var", { postgres: { password: "env:NOPE_NOT_SET" } }, {}, /postgres\.password: environment variable NOPE_NOT_SET is not set/],
    ["a bad duration", { redis: { bgsaveTimeout: "ten minutes" } }, {}, /redis\.bgsaveTimeout: must be a duration/],
    ["malformed JSON", "{ not json", {}, /not valid JSON/],
  ])("refuses %s with one line naming the field", (_name, content, env, pattern) => {
    const msg = loadError(content, env as Record<string, string>);
    expect(msg).toMatch(pattern);
    expect(msg).not.toContain("\n");
  });

  it("refuses an unreadable secret file, naming field and path", () => {
    const msg = loadError({ minio: { accessKey: "a", secretKey: `file:${join(tmp(), "no-such-file")}` } });
    expect(msg).toMatch(/minio\.secretKey: cannot read secret file .*no-such-file: ENOENT/);
  });

  it("refuses an unreadable config file", () => {
    // A directory cannot be read as a file, whoever runs the test (root reads any mode-000 file).
    expect(() => loadConfig({ configPath: tmp(), cwd: tmp() })).toThrow(/config .*: cannot read: EISDIR/);
    expect(() => loadConfig({ configPath: join(tmp(), "missing.json"), cwd: tmp() })).toThrow(/cannot read: ENOENT/);
  });

  it("CLI: bad config exits 2 with one line on stderr and no stack trace", async () => {
    const r = await runCli(["backup", "--config", file({ postgres: { port: "nope" } })]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/postgres\.port/);
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it("CLI: --json prints one JSON error document on failure", async () => {
    const r = await runCli(["backup", "--json", "--config", file({ postgres: { password: "env:NOPE_NOT_SET" } })]);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: false, exitCode: 2, error: { kind: "input" } });
    expect(doc.error.message).toMatch(/postgres\.password/);
  });

  it("CLI: an unknown flag exits 2", async () => {
    const r = await runCli(["backup", "--no-such-flag"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown argument/);
  });

  it("CLI: no service configured exits 2", async () => {
    const r = await runCli(["backup", "--config", file({}), "--output", join(tmp(), "out")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no service configured/);
  });
});
