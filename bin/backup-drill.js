#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx): on a host, and in the Dagger toolbox.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../pipeline/cli.ts");
await main();
// The outcome is printed: do not wait for sockets a timed-out phase left open.
process.exit(process.exitCode ?? 0);
