import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compressionArgs, DEFAULT_COMPRESSION, parseCompression } from "../pipeline/backup/compression.js";
import { loadConfig } from "../pipeline/config.js";
import { availableCores, cgroupQuota, defaultJobs } from "../pipeline/cores.js";
import { UserError } from "../pipeline/errors.js";
import { compressionCheck } from "../pipeline/preflight.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("throughput-units");

describe("postgres.compression", () => {
  const pg15 = { version: "15.14", major: 15 };
  const pg16 = { version: "16.4", major: 16 };

  it.each([
    ["none", pg15, ["--compress=0"]],
    ["gzip", pg15, []],
    ["gzip:1", pg15, ["--compress=1"]],
    ["gzip:9", pg15, ["--compress=9"]],
    ["none", pg16, ["--compress=none"]],
    ["gzip", pg16, ["--compress=gzip"]],
    ["gzip:1", pg16, ["--compress=gzip:1"]],
    ["lz4", pg16, ["--compress=lz4"]],
    ["lz4:3", pg16, ["--compress=lz4:3"]],
    ["zstd:19", pg16, ["--compress=zstd:19"]],
  ])("%s with pg_dump %o -> %o", (spec, pgDump, argv) => {
    expect(compressionArgs(spec, pgDump)).toEqual(argv);
  });

  it("refuses lz4 and zstd with pg_dump 15 in one line naming the field and the version", () => {
    for (const spec of ["lz4", "lz4:5", "zstd", "zstd:3"]) {
      let err: unknown;
      try {
        compressionArgs(spec, pg15);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      const msg = (err as Error).message;
      expect(msg).toMatch(new RegExp(`^postgres\\.compression: ${spec.split(":")[0]} needs pg_dump 16 or newer, and pg_dump 15\\.14 is in use`));
      expect(msg).not.toContain("\n");
    }
  });

  it("accepts only the documented forms", () => {
    expect(parseCompression("zstd:22")).toEqual({ method: "zstd", level: 22 });
    expect(parseCompression("none")).toEqual({ method: "none" });
    for (const bad of ["gzip:0", "gzip:10", "lz4:13", "zstd:23", "brotli", "GZIP", "gzip:", ""]) expect(() => parseCompression(bad)).toThrow(UserError);
  });

  it("is gzip:1 by default, read from the config, and refused there when malformed", () => {
    const path = join(tmp(), "c.json");
    writeFileSync(path, JSON.stringify({ postgres: {} }));
    expect(loadConfig({ configPath: path, env: {}, cwd: tmp() }).postgres!.compression).toBe(DEFAULT_COMPRESSION);
    expect(DEFAULT_COMPRESSION).toBe("gzip:1");
    writeFileSync(path, JSON.stringify({ postgres: { compression: "zstd:3" } }));
    expect(loadConfig({ configPath: path, env: {}, cwd: tmp() }).postgres!.compression).toBe("zstd:3");
    writeFileSync(path, JSON.stringify({ postgres: { compression: "gzip:11" } }));
    expect(() => loadConfig({ configPath: path, env: {}, cwd: tmp() })).toThrow(/postgres\.compression: must be one of none, gzip\[:1-9\]/);
  });

  it("the preflight refuses a method pg_dump or pg_restore cannot handle, as bad input", () => {
    expect(compressionCheck("gzip:1", "15.14", "15.14")).toMatchObject({ ok: true, check: "compression", detail: "gzip:1 (pg_dump 15.14: --compress=1)" });
    expect(compressionCheck("gzip", "15.14", "15.14")).toMatchObject({ ok: true, detail: "gzip (pg_dump 15.14: its default, gzip)" });
    expect(compressionCheck("zstd:3", "15.14", "15.14")).toMatchObject({ ok: false, badInput: true, detail: expect.stringMatching(/^postgres\.compression: zstd needs pg_dump 16 or newer, and pg_dump 15\.14 is in use/) });
    // A pg_dump that writes lz4 beside a pg_restore that cannot read it back.
    expect(compressionCheck("lz4", "16.4", "15.14")).toMatchObject({ ok: false, badInput: true, detail: "postgres.compression: lz4 needs pg_restore 16 or newer to read the dump back, and pg_restore 15.14 is in use" });
    expect(compressionCheck("lz4", "16.4", "16.4")).toMatchObject({ ok: true });
  });
});

describe("default jobs", () => {
  const files = (m: Record<string, string>) => (p: string) => m[p];

  it("is one per available core, at most 8, at least 1", () => {
    expect(defaultJobs(1)).toBe(1);
    expect(defaultJobs(2)).toBe(2);
    expect(defaultJobs(6)).toBe(6);
    expect(defaultJobs(64)).toBe(8);
    expect(defaultJobs(0)).toBe(1);
  });

  it("reads the cgroup v2 and v1 CPU quota", () => {
    expect(cgroupQuota(files({ "/sys/fs/cgroup/cpu.max": "max 100000\n" }))).toBeUndefined();
    expect(cgroupQuota(files({ "/sys/fs/cgroup/cpu.max": "150000 100000\n" }))).toBe(1.5);
    expect(cgroupQuota(files({ "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "400000", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000" }))).toBe(4);
    expect(cgroupQuota(files({ "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000" }))).toBeUndefined();
    expect(cgroupQuota(files({}))).toBeUndefined();
  });

  it("caps the cores this process may use by the quota (rounded up)", () => {
    expect(availableCores(files({ "/sys/fs/cgroup/cpu.max": "150000 100000" }))).toBe(Math.min(availableParallelism(), 2));
    expect(availableCores(files({}))).toBe(availableParallelism());
  });

  it("applies when the config does not set jobs, and a configured value wins", () => {
    const path = join(tmp(), "j.json");
    writeFileSync(path, JSON.stringify({ postgres: {} }));
    expect(loadConfig({ configPath: path, env: {}, cwd: tmp() }).postgres!.jobs).toBe(defaultJobs(availableCores()));
    writeFileSync(path, JSON.stringify({ postgres: { jobs: 5 } }));
    expect(loadConfig({ configPath: path, env: {}, cwd: tmp() }).postgres!.jobs).toBe(5);
  });
});
