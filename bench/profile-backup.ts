/**
 * npx tsx bench/profile-backup.ts: seed the bench dataset, run one backup with
 * progress on stderr (timestamps per phase), and a raw-tool backup beside it.
 * For finding where backup time goes; npm run bench gives the ratios.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startSandboxServers, stopSandboxServers } from "../pipeline/sandbox.js";
import { makeTempDir } from "../pipeline/throwaway/process.js";
import { seed } from "./seed.js";

const s = await startSandboxServers({});
const work = makeTempDir("profile");
try {
  await seed(s, { scale: 60, keys: 1_000_000, objects: 2000, objectBytes: 400 * 1024 * 1024, say: (m) => process.stderr.write(`${m}\n`) });
  writeFileSync(join(work, "c.json"), JSON.stringify({
    output: join(work, "out"),
    postgres: { host: s.postgres.host, port: s.postgres.port, password: "env:P1" },
    redis: { host: s.redis.host, port: s.redis.port, password: "env:P2" },
    minio: { endpoint: s.minio.endpoint, accessKey: "env:P3", secretKey: "env:P4" },
  }));
  const env = { ...process.env, P1: s.postgres.password.reveal(), P2: s.redis.password.reveal(), P3: s.minio.accessKey.reveal(), P4: s.minio.secretKey.reveal() };
  for (let i = 0; i < Number(process.argv[2] ?? 1); i++) {
    const t0 = Date.now();
    await new Promise<void>((r) => spawn(process.execPath, [...(process.env.PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []), "bin/backup-drill.js", "backup", "--config", join(work, "c.json")], { env, stdio: ["ignore", "ignore", "inherit"] }).on("close", () => r()));
    process.stderr.write(`total ${Date.now() - t0} ms\n`);
  }
} finally {
  await stopSandboxServers(s);
}
