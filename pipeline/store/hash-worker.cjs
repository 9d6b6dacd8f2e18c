// A hashing thread of hash-pool.ts: reads each file it is sent in 1 MiB
// chunks, hashes it with sha256 (and fsyncs it when asked), and answers
// { id, size, sha256 } or { id, code, message }. Plain JavaScript: worker
// threads do not go through the TypeScript loader.
"use strict";
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { openSync, readSync, closeSync, fsyncSync } = require("node:fs");

const buffer = Buffer.allocUnsafe(1024 * 1024);

parentPort.on("message", ({ id, path, durable }) => {
  let fd;
  try {
    fd = openSync(path, "r");
    const hash = createHash("sha256");
    let size = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      hash.update(n === buffer.length ? buffer : buffer.subarray(0, n));
      size += n;
    }
    if (durable) fsyncSync(fd);
    parentPort.postMessage({ id, size, sha256: hash.digest("hex") });
  } catch (err) {
    parentPort.postMessage({ id, code: err.code, message: err.message });
  } finally {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // nothing to do
      }
    }
  }
});
