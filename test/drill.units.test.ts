import { describe, expect, it } from "vitest";
import { refuseSourceTargets } from "../pipeline/drill.js";
import { meetsExpectation } from "../pipeline/restore/expect.js";
import { attributeDifferences, etagAgrees, putHeaders } from "../pipeline/restore/minio.js";
import { globalsForTarget, normalizeSchema } from "../pipeline/restore/postgres.js";
import { keyMismatch } from "../pipeline/restore/redis.js";
import { Secret } from "../pipeline/secret.js";
import type { ObjectEntry } from "../pipeline/listing.js";

describe("sanity query expectations", () => {
  it.each([
    [{ min: 1 }, [["500"]], true],
    [{ min: 1 }, [["0"]], false],
    [{ min: 1 }, [], false],
    [{ max: 10 }, [[3]], true],
    [{ equals: 0 }, [["0"]], true],
    [{ equals: "paid" }, [["paid"]], true],
    [{ equals: null }, [[null]], true],
    [{ rows: [["new", 500], ["paid", 500]] }, [["new", "500"], ["paid", 500]], true],
    [{ rows: [["new", 500]] }, [["new", 500], ["paid", 500]], false],
    [{ rows: [["new", 500]] }, [["new", 499]], false],
  ] as const)("%j on %j -> %s", (expect_, rows, ok) => {
    expect(meetsExpectation(expect_ as never, rows as unknown as unknown[][]).ok).toBe(ok);
  });
});

describe("schema round trip normalisation", () => {
  const dump = (token: string, version: string) =>
    [`-- Dumped from database version ${version}`, "-- Dumped by pg_dump version 15.18", `\\restrict ${token}`, "CREATE TABLE t (id int);", "ALTER TABLE t OWNER TO app;", "GRANT SELECT ON TABLE t TO reader;", `\\unrestrict ${token}`].join("\n");

  it("ignores the random \\restrict token and version headers, nothing else", () => {
    expect(normalizeSchema(dump("abc", "15.18"), { ignoreOwnership: false })).toEqual(normalizeSchema(dump("xyz", "16.2"), { ignoreOwnership: false }));
    expect(normalizeSchema(dump("abc", "15.18"), { ignoreOwnership: false })).toContain("ALTER TABLE t OWNER TO app;");
    expect(normalizeSchema("CREATE TABLE t (id int);", { ignoreOwnership: false })).not.toEqual(normalizeSchema("CREATE TABLE t (id bigint);", { ignoreOwnership: false }));
  });

  it("drops ownership and grants only when roles were not restored", () => {
    const lines = normalizeSchema(`--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n${dump("abc", "15.18")}`, { ignoreOwnership: true });
    expect(lines).toEqual(["CREATE TABLE t (id int);"]);
  });

  it("keeps the connecting role's own statements out of replayed globals", () => {
    const sql = ["\\restrict tok", "CREATE ROLE app_reader;", "CREATE ROLE postgres;", "ALTER ROLE postgres WITH SUPERUSER PASSWORD 'SCRAM-SHA-256$x';", "ALTER ROLE postgres_ro WITH LOGIN;", "\\unrestrict tok"].join("\n");
    expect(globalsForTarget(sql, "postgres").split("\n")).toEqual(["CREATE ROLE app_reader;", "ALTER ROLE postgres_ro WITH LOGIN;"]);
  });
});

describe("redis sampled key comparison", () => {
  const sample = { db: 0, key: "k", keyEncoding: "utf8" as const, type: "hash", digest: "d1", ttlMs: -1 };
  const window = { backupStarted: 1_000_000, backupFinished: 1_010_000, now: 2_000_000 };
  it.each([
    ["same value, no TTL", sample, { type: "hash", digest: "d1", ttlMs: -1 }, undefined],
    ["value differs", sample, { type: "hash", digest: "d2", ttlMs: -1 }, "value differs"],
    ["type differs", sample, { type: "string", digest: "d1", ttlMs: -1 }, "type string, backup has hash"],
    ["missing", sample, { type: "none", digest: "", ttlMs: -2 }, "missing"],
    ["expired since the backup", { ...sample, ttlMs: 500_000 }, { type: "none", digest: "", ttlMs: -2 }, undefined],
    ["gone although its TTL has not run out", { ...sample, ttlMs: 5_000_000 }, { type: "none", digest: "", ttlMs: -2 }, "missing"],
    ["lost its TTL", { ...sample, ttlMs: 5_000_000 }, { type: "hash", digest: "d1", ttlMs: -1 }, "lost its TTL"],
    ["gained a TTL", sample, { type: "hash", digest: "d1", ttlMs: 100 }, "has a TTL (100 ms), backup has none"],
  ])("%s", (_name, s, actual, why) => {
    expect(keyMismatch(s, actual, window)).toBe(why);
  });
});

describe("object restore fidelity", () => {
  const entry: ObjectEntry = {
    key: "a.png", size: 10, etag: "0123456789abcdef0123456789abcdef", lastModified: "", contentType: "image/png",
    cacheControl: "max-age=1", userMetadata: { owner: "me" }, tags: { t: "1" }, marker: false, path: "minio/b/a.png", sha256: "0".repeat(64),
  };
  it("puts back type, cache control and user metadata as headers", () => {
    expect(putHeaders(entry)).toEqual({ "Content-Type": "image/png", "Cache-Control": "max-age=1", "X-Amz-Meta-owner": "me" });
  });
  it("names lost attributes", () => {
    expect(attributeDifferences(entry, { size: 10, etag: "", lastModified: "", contentType: "application/octet-stream", userMetadata: {}, tags: { t: "1" } })).toEqual(["contentType", "cacheControl", "userMetadata"]);
  });
  it("compares ETags of single-part objects only", () => {
    expect(etagAgrees(entry, entry.etag)).toBe(true);
    expect(etagAgrees(entry, "ffffffffffffffffffffffffffffffff")).toBe(false);
    expect(etagAgrees({ ...entry, etag: "abc-3" }, "def-2")).toBe(true);
  });
});

describe("drill targets", () => {
  const cfg = { source: "t", output: "/o", tools: {}, postgres: { host: "127.0.0.1", port: 5432, user: "p", jobs: 1, compression: "gzip:1", globals: false, sanityQueries: [] } };
  it("refuses a target that is a configured source (localhost == 127.0.0.1)", () => {
    expect(() => refuseSourceTargets(cfg, { postgres: { host: "localhost", port: 5432, user: "p", password: new Secret("x", "t") } })).toThrow(/is a configured backup source/);
    expect(() => refuseSourceTargets(cfg, { postgres: { host: "localhost", port: 5433, user: "p", password: new Secret("x", "t") } })).not.toThrow();
  });
});
