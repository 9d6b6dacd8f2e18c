import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connectPostgres } from "../probes/postgres.js";
import { startPostgres } from "../pipeline/throwaway/servers.js";
import { requireTools } from "./services/index.js";

/**
 * Throwaway servers start wherever TMPDIR points: a Unix socket there would
 * exceed the kernel's 107-byte path limit under a deep TMPDIR (a CI runner's
 * workspace, a test's own temp dir) and PostgreSQL would refuse to start.
 */
describe("throwaway PostgreSQL under a deep TMPDIR", () => {
  const saved = process.env.TMPDIR;
  afterEach(() => {
    process.env.TMPDIR = saved;
  });

  it("starts and answers over TCP although a socket path there would be too long", async () => {
    requireTools();
    const deep = join(tmpdir(), "a-directory-name-long-enough".repeat(3), "to-push-a-socket-path-past-107-bytes");
    mkdirSync(deep, { recursive: true, mode: 0o1777 });
    process.env.TMPDIR = deep;
    expect(join(deep, "backup-drill-pg-XXXXXX", ".s.PGSQL.65535").length).toBeGreaterThan(107);
    const pg = await startPostgres({ tools: {}, fast: true });
    try {
      expect(pg.dir.startsWith(deep)).toBe(true);
      const c = await connectPostgres(pg, "postgres");
      expect((await c.query<{ one: number }>("SELECT 1 AS one")).rows[0]!.one).toBe(1);
      await c.end();
    } finally {
      await pg.stop();
    }
  });
});
