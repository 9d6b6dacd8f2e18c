/**
 * Offsite throughput and memory: push a set holding one large file to a
 * throwaway MinIO and Versity, with and without age encryption, then
 * verify --read-data it. Prints MB/s and the process's peak RSS growth.
 *   npx tsx bench/offsite.ts [MiB=512]
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateX25519Identity, identityToRecipient } from "age-encryption";
import { minioClient } from "../probes/minio.js";
import { hashUnder } from "../pipeline/hash.js";
import { buildManifest, writeManifest } from "../pipeline/manifest.js";
import type { Destination } from "../pipeline/offsite/config.js";
import { pushSet } from "../pipeline/offsite/push.js";
import { verifyRemote } from "../pipeline/offsite/verify.js";
import { silentProgress } from "../pipeline/progress.js";
import { Secret } from "../pipeline/secret.js";
import { startMinio } from "../pipeline/throwaway/servers.js";
import { startVersity } from "../pipeline/throwaway/versity.js";

const mib = Number(process.argv[2] ?? 512);
const root = mkdtempSync(join(tmpdir(), "backup-drill-bench-offsite-"));
const id = "2026-01-01T00-00-00Z";
const dir = join(root, id);
mkdirSync(join(dir, "redis"), { recursive: true });
const fh = await open(join(dir, "redis/dump.rdb"), "w");
const block = Buffer.alloc(1024 * 1024);
for (let i = 0; i < mib; i++) {
  for (let j = 0; j < block.length; j += 4) block.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
  await fh.write(block);
}
await fh.close();
const files = await hashUnder(dir, ["redis"]);
await writeManifest(dir, buildManifest({ id, runner: "host", startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), services: {}, steps: [], files }));

const identity = await generateX25519Identity();
const recipient = await identityToRecipient(identity);
let peak = 0;
const base = process.memoryUsage().rss;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 20);

try {
  for (const kind of ["minio", "versity"] as const) {
    const server = kind === "minio" ? await startMinio({ tools: {} }) : await startVersity({ tools: {} });
    try {
      await minioClient({ ...server, region: "us-east-1" }).makeBucket("bench");
      for (const encrypted of [false, true]) {
        const dest: Destination = {
          name: kind,
          endpoint: server.endpoint,
          bucket: "bench",
          prefix: encrypted ? "enc/" : "plain/",
          region: "us-east-1",
          accessKey: server.accessKey,
          secretKey: server.secretKey,
          pathStyle: true,
          recipients: encrypted ? [recipient] : [],
          identity: new Secret(identity, "bench"),
          pushAfterBackup: false,
          concurrency: 4,
          partSize: 16 * 1024 * 1024,
          freshness: { warnAfterMs: 1, criticalAfterMs: 2, drillMaxAgeMs: null },
        };
        peak = 0;
        let t = Date.now();
        await pushSet(dest, { id, dir }, { output: root, tools: {}, progress: silentProgress });
        const pushS = (Date.now() - t) / 1000;
        const pushPeak = peak;
        peak = 0;
        t = Date.now();
        const v = await verifyRemote(dest, id, { readData: true, progress: silentProgress });
        const readS = (Date.now() - t) / 1000;
        if (!v.ok) throw new Error(`verify failed: ${JSON.stringify(v.findings)}`);
        console.log(
          `${kind.padEnd(8)} ${encrypted ? "age " : "none"}  push ${(mib / pushS).toFixed(0).padStart(4)} MB/s (peak RSS +${(pushPeak / 2 ** 20).toFixed(0)} MiB)   verify --read-data ${(mib / readS).toFixed(0).padStart(4)} MB/s (peak RSS +${(peak / 2 ** 20).toFixed(0)} MiB)`,
        );
      }
    } finally {
      await server.stop();
    }
  }
} finally {
  clearInterval(sampler);
  rmSync(root, { recursive: true, force: true });
}
