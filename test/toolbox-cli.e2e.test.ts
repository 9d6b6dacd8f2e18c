import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BACKUPS, CLI, RUNNER_ENV } from "../src/toolbox.js";
import { BIN, runProgram } from "./cli.js";
import { requireTools, useTempDir } from "./services/index.js";

/**
 * What `dagger call sandbox` runs in the toolbox, run here on the host: the
 * same argv (the module's CLI command with the output root swapped for a temp
 * dir), the environment the toolbox sets, and the umask of a container
 * (022). The set must say it was made under Dagger and be readable by
 * anyone once exported: 0755 directories, 0644 files, although pg_dump
 * writes 0700 / 0600.
 */

const tmp = useTempDir("toolbox-cli");

/** The CLI with the toolbox's environment and umask. */
const runAsToolbox = (args: string[]) => runProgram("sh", ["-c", 'umask 022 && exec "$@"', "sh", process.execPath, BIN, ...args], { env: { [RUNNER_ENV]: "dagger" } });

describe("the CLI as the Dagger toolbox runs it", () => {
  it("sandbox: the set and its drill say runner dagger, and every directory is 0755 and every file 0644", async () => {
    requireTools();
    expect(CLI[1]).toBe("/app/bin/backup-drill.js"); // the toolbox's copy of the BIN run here
    const output = join(tmp(), "backups");
    const r = await runAsToolbox(["sandbox", "--output", output, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(BACKUPS).toBe("/output/backups");
    const doc = JSON.parse(r.stdout) as { ok: boolean; backup: { id: string } };
    expect(doc.ok).toBe(true);
    const set = join(output, doc.backup.id);
    expect(JSON.parse(readFileSync(join(set, "manifest.json"), "utf8")).runner).toBe("dagger");
    expect(JSON.parse(readFileSync(join(set, "restore-drill-summary.json"), "utf8")).runner).toBe("dagger");

    const modes = new Map<string, string[]>();
    for (const e of readdirSync(set, { withFileTypes: true, recursive: true })) {
      const p = join(e.parentPath, e.name);
      const mode = (statSync(p).mode & 0o777).toString(8);
      modes.set(mode, [...(modes.get(mode) ?? []), p.slice(set.length + 1)]);
    }
    expect([...modes.keys()].sort()).toEqual(["644", "755"]);
    // pg_dump's own directory (0700 as written) is among them.
    expect(modes.get("755")).toContain("postgres/app");
    expect((statSync(set).mode & 0o777).toString(8)).toBe("755");
  });
});
