/**
 * npx tsx bench/profile-backup.ts [rounds=1]: seed the bench dataset, run
 * backups with progress on stderr (timestamps per phase). For finding where
 * backup time goes; npm run bench gives the ratios.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startSandboxServers, stopSandboxServers } from "../pipeline/sandbox.js";
import { makeTempDir } from "../pipeline/throwaway/process.js";
import { REPO, writeConfig } from "./cli.js";
import { seed } from "./seed.js";

const s = await startSandboxServers({});
const work = makeTempDir("profile");
try {
  await seed(s, { scale: 60, keys: 1_000_000, objects: 2000, objectBytes: 400 * 1024 * 1024, say: (m) => process.stderr.write(`${m}\n`) });
  const config = join(work, "c.json");
  const env = { ...process.env, ...writeConfig(s, config, join(work, "out"), ["postgres", "redis", "minio"]) };
  for (let i = 0; i < Number(process.argv[2] ?? 1); i++) {
    const t0 = Date.now();
    await new Promise<void>((r) =>
      spawn(process.execPath, [...(process.env.PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []), "bin/backup-drill.js", "backup", "--config", config], { cwd: REPO, env, stdio: ["ignore", "ignore", "inherit"] }).on("close", () => r()),
    );
    process.stderr.write(`total ${Date.now() - t0} ms\n`);
  }
} finally {
  await stopSandboxServers(s);
}
