import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SandboxServers } from "../pipeline/sandbox.js";
import { resolveTool } from "../pipeline/tools.js";
import { conn, run } from "./raw.js";

/**
 * The scale run's data: `objects` small objects (1-7 KiB, random bytes) in
 * one bucket, put with mc mirror from a local directory; `keys` Redis keys
 * (strings, a hash every 10th, a TTL every 50th) sent with redis-cli --pipe.
 */
export async function seedScale(s: SandboxServers, dims: { objects: number; keys: number; bucket: string; work: string; say: (m: string) => void }): Promise<void> {
  const { objects, keys, bucket, work, say } = dims;
  say(`scale: ${objects} objects in ${bucket}`);
  const dir = join(work, "scale-objects");
  rmSync(dir, { recursive: true, force: true });
  for (let i = 0; i < objects; i++) {
    const sub = join(dir, `d${String(i % 100).padStart(2, "0")}`);
    if (i < 100) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `o${String(i).padStart(7, "0")}.bin`), randomBytes(1024 + (i % 7) * 1024));
  }
  const { mcEnv } = conn(s, join(work, "mc-scale"));
  await run(resolveTool("mc"), ["mb", "--ignore-existing", `b/${bucket}`], mcEnv);
  await run(resolveTool("mc"), ["mirror", "--quiet", dir, `b/${bucket}`], mcEnv);
  rmSync(dir, { recursive: true, force: true });

  say(`scale: ${keys} Redis keys`);
  const child = spawn(resolveTool("redis-cli"), ["-h", s.redis.host, "-p", String(s.redis.port), "--no-auth-warning", "--pipe"], {
    env: { ...process.env, REDISCLI_AUTH: s.redis.password.reveal() },
    stdio: ["pipe", "ignore", "inherit"],
  });
  const done = new Promise<void>((resolve, reject) => child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --pipe exited ${code}`)))));
  const cmd = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
  for (let i = 0; i < keys; i += 10_000) {
    let chunk = "";
    for (let j = i; j < Math.min(keys, i + 10_000); j++) {
      if (j % 10 === 0) chunk += cmd("HSET", `user:${j}`, "name", `n${j}`, "visits", String(j % 97));
      else if (j % 50 === 1) chunk += cmd("SET", `session:${j}`, `t${j}`, "EX", "86400");
      else chunk += cmd("SET", `k:${j}`, `value-${j}-${"x".repeat(j % 40)}`);
    }
    if (!child.stdin.write(chunk)) await new Promise<void>((r) => child.stdin.once("drain", () => r()));
  }
  child.stdin.end();
  await done;
}
