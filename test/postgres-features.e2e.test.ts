/**
 * PostgreSQL beyond tables: materialized views (populated, stale, WITH NO
 * DATA) must not fail a good backup, and large objects must not go missing
 * unnoticed.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectPostgres } from "../probes/postgres.js";
import { DrillSummarySchema } from "../pipeline/drill-summary.js";
import { hashFile } from "../pipeline/hash.js";
import { ManifestSchema, writeManifest } from "../pipeline/manifest.js";
import { startPostgres, type PostgresServer } from "../pipeline/throwaway/servers.js";
import { runCli } from "./cli.js";
import { pgFingerprint, pgLargeObjectFingerprint, pgMatviewFingerprint } from "./fingerprint.js";
import { requireTools, useTempDir } from "./services/index.js";

const tmp = useTempDir("pg-features");

/** A pagila-like shop: rentals per category as materialized views, invoices as large objects. */
const SCHEMA = `
  CREATE TABLE category (category_id serial PRIMARY KEY, name text NOT NULL);
  CREATE TABLE film (film_id serial PRIMARY KEY, title text NOT NULL, category_id int NOT NULL REFERENCES category);
  CREATE TABLE rental (rental_id serial PRIMARY KEY, film_id int NOT NULL REFERENCES film, amount numeric(6,2) NOT NULL);
  INSERT INTO category (name) SELECT 'category ' || g FROM generate_series(1, 16) g;
  INSERT INTO film (title, category_id) SELECT 'film ' || g, 1 + g % 16 FROM generate_series(1, 1000) g;
  INSERT INTO rental (film_id, amount) SELECT 1 + (g * 7) % 1000, (g % 9) + 0.99 FROM generate_series(1, 16000) g;
  -- populated, then its tables change: stale, as production views between two refreshes
  CREATE MATERIALIZED VIEW busy_films AS SELECT film_id, count(*) AS rentals FROM rental GROUP BY film_id HAVING count(*) > 16;
  INSERT INTO rental (film_id, amount) SELECT 1 + g % 40, 1.99 FROM generate_series(1, 2000) g;
  -- pagila's rental_by_category, populated and fresh
  CREATE MATERIALIZED VIEW rental_by_category AS
    SELECT c.name AS category, sum(r.amount) AS total_sales
    FROM rental r JOIN film f ON f.film_id = r.film_id JOIN category c ON c.category_id = f.category_id
    GROUP BY c.name ORDER BY sum(r.amount) DESC;
  CREATE UNIQUE INDEX rental_by_category_idx ON rental_by_category (category);
  -- never populated
  CREATE MATERIALIZED VIEW yearly_report AS SELECT count(*) AS rentals FROM rental WITH NO DATA;
  -- large objects, one bigger than what the server hashes in one piece (read in parts)
  CREATE TABLE invoice (invoice_id serial PRIMARY KEY, rental_id int REFERENCES rental, pdf oid NOT NULL);
  INSERT INTO invoice (rental_id, pdf) SELECT g, lo_from_bytea(0, decode(repeat(md5(g::text), 64 * g), 'hex')) FROM generate_series(1, 5) g;
  INSERT INTO invoice (rental_id, pdf) SELECT 6, lo_from_bytea(0, (SELECT string_agg(decode(md5(g::text), 'hex'), ''::bytea) FROM generate_series(1, 1300000) g));
`;

describe("PostgreSQL: materialized views and large objects", () => {
  let source: PostgresServer;
  let target: PostgresServer;
  let output: string;
  let config: string;
  let env: Record<string, string>;
  let setId: string;

  beforeAll(async () => {
    requireTools();
    [source, target] = await Promise.all([startPostgres({ tools: {}, fast: true }), startPostgres({ tools: {}, fast: true })]);
    const admin = await connectPostgres(source, "postgres");
    await admin.query("CREATE DATABASE shop");
    await admin.end();
    const c = await connectPostgres(source, "shop");
    await c.query(SCHEMA);
    await c.end();
    output = join(tmp(), "out");
    config = join(tmp(), "pg.json");
    writeFileSync(config, JSON.stringify({ output, postgres: { host: source.host, port: source.port, user: "postgres", password: "env:PGF_SRC_PW", databases: ["shop"] } }));
    env = { PGF_SRC_PW: source.password.reveal(), PGF_TGT_PW: target.password.reveal() };
    const r = await runCli(["backup", "--config", config, "--json", "--quiet"], { env });
    expect(r.code, r.stderr).toBe(0);
    setId = JSON.parse(r.stdout).id;
  }, 300_000);
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it("records each view like a table: rows its REFRESH gives back, rows it held, populated or not; and the large objects", () => {
    const m = ManifestSchema.parse(JSON.parse(readFileSync(join(output, setId, "manifest.json"), "utf8")));
    const shop = m.services.postgres!.databases[0]!;
    const view = (name: string) => shop.tables.find((t) => t.name === name);
    expect(view("rental_by_category")).toMatchObject({ kind: "matview", populated: true, rows: 16, storedRows: 16 });
    expect(view("busy_films")).toMatchObject({ kind: "matview", populated: true, storedRows: 0, rows: 40 });
    expect(view("yearly_report")).toMatchObject({ kind: "matview", populated: false, rows: 0 });
    expect(view("yearly_report")!.storedRows).toBeUndefined();
    expect(shop.largeObjects).toMatchObject({ count: 6, bytes: 5 * 0 + [1, 2, 3, 4, 5].reduce((a, g) => a + 1024 * g, 0) + 1_300_000 * 16 });
    // The schema the drill compares with comes from pg_dump --schema-only, as the drill's side does.
    const schema = readFileSync(join(output, setId, "postgres/shop.schema.sql"), "utf8");
    expect(schema).toMatch(/CREATE MATERIALIZED VIEW public\.rental_by_category AS/);
    expect(schema).not.toMatch(/REFRESH MATERIALIZED VIEW/);
  });

  it("restore-drill passes: the schema round trip, each view's rows (stale ones as REFRESH gives them), the WITH NO DATA view unpopulated, the large objects", async () => {
    const r = await runCli(["restore-drill", "--config", config, "--json", "--quiet"], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const checks = DrillSummarySchema.parse(JSON.parse(r.stdout)).services.postgres!.checks;
    const by = (subject: string) => checks.find((c) => c.subject === subject);
    expect(checks.find((c) => c.check === "schema-roundtrip")).toMatchObject({ subject: "shop", ok: true });
    expect(by("shop.public.rental_by_category")).toMatchObject({ check: "row-count", expected: 16, actual: 16, ok: true });
    expect(by("shop.public.busy_films")).toMatchObject({ check: "row-count", expected: 40, actual: 40, ok: true });
    expect(by("shop.public.busy_films")!.detail).toMatch(/held 0 at backup time: not refreshed since its tables changed/);
    expect(by("shop.public.yearly_report")).toMatchObject({ expected: "not populated", actual: "not populated", ok: true });
    expect(checks.find((c) => c.check === "large-objects")).toMatchObject({ subject: "shop", ok: true, expected: expect.stringMatching(/^6 objects, 20815360 bytes/) });
    const human = await runCli(["restore-drill", "--config", config, "--quiet"], { env });
    expect(human.stdout).toMatch(/ok\s+postgres\s+large-objects\s+shop/);
    expect(human.stdout).toMatch(/ok\s+postgres\s+row-count\s+shop\.public\.yearly_report\s+not populated\s+not populated/);
  });

  it("a set whose large object bytes were changed (checksums resealed, so verify passes) fails the drill on large-objects", async () => {
    const root = join(tmp(), "lo-changed");
    mkdirSync(root, { recursive: true });
    const dir = join(root, setId);
    cpSync(join(output, setId), dir, { recursive: true });
    const blobs = readdirSync(join(dir, "postgres/shop")).filter((f) => /^blob_\d+\.dat\.gz$/.test(f)).sort();
    expect(blobs).toHaveLength(6);
    writeFileSync(join(dir, "postgres/shop", blobs[0]!), gzipSync(Buffer.from("not the invoice that was backed up")));
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")));
    for (const f of manifest.files) Object.assign(f, await hashFile(join(dir, f.path)));
    await writeManifest(dir, manifest);
    writeFileSync(join(root, "latest.json"), JSON.stringify({ id: setId, path: dir, completedAt: manifest.finishedAt, manifestSha256: "0".repeat(64) }));
    expect((await runCli(["verify", "--output", root])).code).toBe(0);
    const r = await runCli(["restore-drill", "--config", config, "--output", root, "--quiet"], { env });
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout).toMatch(/FAIL postgres large-objects shop: .* — \d+ bytes, backup has 20815360/);
    expect(r.stdout).not.toMatch(/FAIL postgres (row-count|schema-roundtrip)/); // nothing else tells
  });

  it("restore into an empty server gives back every view and large object (compared independently)", async () => {
    const targets = join(tmp(), "targets.json");
    writeFileSync(targets, JSON.stringify({ postgres: { host: target.host, port: target.port, user: "postgres", password: "env:PGF_TGT_PW" } }));
    const r = await runCli(["restore", "--config", config, "--target-config", targets, "--quiet"], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await pgFingerprint(target, "shop")).toEqual(await pgFingerprint(source, "shop"));
    expect(await pgLargeObjectFingerprint(target, "shop")).toEqual(await pgLargeObjectFingerprint(source, "shop"));
    const [restored, original] = [await pgMatviewFingerprint(target, "shop"), await pgMatviewFingerprint(source, "shop")];
    expect(restored["public.rental_by_category"]).toEqual(original["public.rental_by_category"]);
    expect(restored["public.yearly_report"]).toEqual({ populated: false });
    // The stale view comes back as its query over the data (what pg_dump can carry), not as it was.
    const busy = execFileSync("psql", ["-h", source.host, "-p", String(source.port), "-U", "postgres", "-d", "shop", "-tAc", "SELECT count(*) FROM (SELECT film_id FROM rental GROUP BY film_id HAVING count(*) > 16) q"], {
      env: { ...process.env, PGPASSWORD: source.password.reveal() },
      encoding: "utf8",
    });
    expect(restored["public.busy_films"]).toMatchObject({ populated: true, rows: Number(busy.trim()) });
    expect(original["public.busy_films"]).toMatchObject({ populated: true, rows: 0 });
  });
});
