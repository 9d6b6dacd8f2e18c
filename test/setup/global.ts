/**
 * One temp root per test run: every test file and every test gets its own
 * TMPDIR below it (test/setup/tmpdir.ts), so a second run on the same
 * machine never sees this run's temp dirs or servers, nor this run theirs.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** This run's temp root. */
    tmpRoot: string;
    /** The TMPDIR the run started with (where tsx keeps its compile cache). */
    outerTmp: string;
  }
}

export default function setup(project: TestProject): () => void {
  const outerTmp = tmpdir();
  const root = mkdtempSync(join(outerTmp, "backup-drill-tests-"));
  // Like /tmp: PostgreSQL runs as the postgres user when the tests run as root, and must reach its directory.
  chmodSync(root, 0o1777);
  project.provide("tmpRoot", root);
  project.provide("outerTmp", outerTmp);
  return () => rmSync(root, { recursive: true, force: true });
}
