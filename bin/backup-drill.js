#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx): on a host, and in the Dagger toolbox.
import { setFlagsFromString } from "node:v8";
import { register } from "tsx/esm/api";

// A heap that grows less eagerly: peak memory stays flat with a bucket of 100,000 objects
// (about 190 MiB instead of 240 in the bench's scale run), at no measurable cost in speed.
setFlagsFromString("--optimize-for-size");

register();
const { main } = await import("../pipeline/cli.ts");
await main();
// The outcome is printed: do not wait for sockets a timed-out phase left open.
process.exit(process.exitCode ?? 0);
