import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { listFiles, sha256Hex } from "../pipeline/hash.js";
import { HashPool, withHashPool } from "../pipeline/store/hash-pool.js";
import { LiveHasher } from "../pipeline/store/live-hash.js";
import { openFilesUnder } from "../pipeline/runners/open-files.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("live-hash");

/**
 * A real writer process doing what a careless tool could: rewrite a closed
 * file in place (and set its mtime back), append to it, replace it by a
 * rename, truncate and rewrite it, hold one open across a pause. Each change
 * comes once the hasher has hashed the closed files early (the test says
 * when, through a file the writer waits for).
 */
const WRITER = `
const fs = require("node:fs");
const path = require("node:path");
const dir = process.argv[1];
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
// The test says when the hasher has hashed what is closed: then the writer changes it.
const waitFor = (name) => { while (!fs.existsSync(path.join(dir, "..", name))) sleep(10); };
const body = (c, n = 256 * 1024) => Buffer.alloc(n, c);
const f = (n) => path.join(dir, n);
for (const n of ["inplace", "utimes", "append", "renamed", "truncated", "untouched"]) fs.writeFileSync(f(n), body(n[0]));
const held = fs.openSync(f("held"), "w");
fs.writeSync(held, body("h"));
waitFor("go1");
// rewrite 100 bytes in place: same size
let fd = fs.openSync(f("inplace"), "r+"); fs.writeSync(fd, Buffer.alloc(100, "X"), 0, 100, 1000); fs.closeSync(fd);
// the same, then the mtime set back to what it was
const before = fs.statSync(f("utimes"));
fd = fs.openSync(f("utimes"), "r+"); fs.writeSync(fd, Buffer.alloc(10, "Y"), 0, 10, 0); fs.closeSync(fd);
fs.utimesSync(f("utimes"), before.atime, before.mtime);
fs.appendFileSync(f("append"), "more");
fs.writeFileSync(f("renamed.tmp"), body("R")); fs.renameSync(f("renamed.tmp"), f("renamed"));
fs.writeFileSync(f("truncated"), body("T"));
fs.writeSync(held, body("H"));
fs.closeSync(held);
waitFor("go2");
`;

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function sha(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

describe("LiveHasher: digests while a tool writes, never stale", () => {
  it("hashes closed files early and rehashes every file changed after that, in place or not", async () => {
    const root = join(tmp(), "set1");
    mkdirSync(join(root, "out"), { recursive: true });
    await withHashPool(async (pool) => {
      const writer = spawn(process.execPath, ["-e", WRITER, join(root, "out")], { stdio: "ignore" });
      const hasher = new LiveHasher({
        root,
        candidates: () => listFiles(join(root, "out"), root),
        writers: () => (writer.exitCode === null ? [writer.pid!] : []),
        pool,
        durable: true,
        quietMs: 50,
        intervalMs: 20,
      }).start();
      let sawHeldOpen = false;
      const probe = setInterval(() => {
        if (openFilesUnder([writer.pid!], root)?.has(join(root, "out/held"))) sawHeldOpen = true;
      }, 20);
      const closed = new Promise((r) => writer.on("close", r));
      await until(() => hasher.stats.early >= 6);
      writeFileSync(join(root, "go1"), "");
      await until(() => hasher.stats.early >= 7);
      writeFileSync(join(root, "go2"), "");
      await closed;
      clearInterval(probe);
      expect(writer.exitCode).toBe(0);
      const files = await listFiles(join(root, "out"), root);
      const got = await hasher.settle(files);
      expect(got).toEqual(files.map((p) => ({ path: p, size: readFileSync(join(root, p)).length, sha256: sha(join(root, p)) })));
      expect(files).toEqual(["out/append", "out/held", "out/inplace", "out/renamed", "out/truncated", "out/untouched", "out/utimes"]);
      // Six files were closed during the pause and hashed then, five of which changed afterwards;
      // the one held open was hashed only once closed.
      expect(sawHeldOpen).toBe(true);
      expect(hasher.stats.early).toBe(7);
      expect(hasher.stats.reused).toBe(2); // untouched, held
      expect(hasher.stats.late).toBe(5); // inplace, utimes, append, renamed, truncated
    });
  });

  it("hashes nothing early while a file is held open, however long it is quiet", async () => {
    const root = join(tmp(), "set2");
    mkdirSync(join(root, "out"), { recursive: true });
    const script = `const fs=require("node:fs");const fd=fs.openSync(process.argv[1],"w");fs.writeSync(fd,"a");Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,600);fs.writeSync(fd,"b");fs.closeSync(fd);`;
    await withHashPool(async (pool) => {
      const writer = spawn(process.execPath, ["-e", script, join(root, "out/f")], { stdio: "ignore" });
      const hasher = new LiveHasher({ root, candidates: () => listFiles(join(root, "out"), root), writers: () => [writer.pid!], pool, durable: false, quietMs: 50, intervalMs: 20 }).start();
      await new Promise((r) => writer.on("close", r));
      expect(hasher.stats.early).toBe(0);
      expect(await hasher.settle(["out/f"])).toEqual([{ path: "out/f", size: 2, sha256: sha256Hex("ab") }]);
    });
  });

  it("hashes nothing early when the writers' open files cannot be seen (no such process tree: a stand-in for no /proc)", async () => {
    const root = join(tmp(), "set3");
    mkdirSync(join(root, "out"), { recursive: true });
    writeFileSync(join(root, "out/a"), "a");
    expect(openFilesUnder([2 ** 22 + 12345], root)).toEqual(new Set()); // a pid that does not exist holds nothing
    await withHashPool(async (pool) => {
      const hasher = new LiveHasher({ root, candidates: async () => ["out/a"], writers: () => [1], pool, durable: false, quietMs: 1, intervalMs: 10 }).start();
      await new Promise((r) => setTimeout(r, 200));
      // pid 1's descriptors are not ours to read unless we are root: either way the digest is exact.
      const got = await hasher.settle(["out/a"]);
      expect(got).toEqual([{ path: "out/a", size: 1, sha256: sha256Hex("a") }]);
    });
  });
});

describe("HashPool", () => {
  it("hashes on worker threads exactly as sha256 does, and keeps the error code of a missing file", async () => {
    const dir = join(tmp(), "pool");
    mkdirSync(dir, { recursive: true });
    const sizes = [0, 1, 1024 * 1024 - 1, 1024 * 1024, 3 * 1024 * 1024 + 7];
    sizes.forEach((n, i) => writeFileSync(join(dir, `f${i}`), Buffer.alloc(n, i + 1)));
    const pool = new HashPool(2);
    try {
      const got = await Promise.all(readdirSync(dir).sort().map((f) => pool.hash(join(dir, f), { durable: true })));
      expect(got).toEqual(sizes.map((n, i) => ({ size: n, sha256: sha256Hex(Buffer.alloc(n, i + 1)) })));
      await expect(pool.hash(join(dir, "nope"))).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await pool.close();
    }
    await expect(pool.hash(join(dir, "f0"))).rejects.toThrow(/closed/);
  });
});
