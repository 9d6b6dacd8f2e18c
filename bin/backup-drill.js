#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), the same files the Dagger module imports.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../pipeline/cli.ts");
await main();
// The outcome is printed: do not wait for sockets a timed-out phase left open.
process.exit(process.exitCode ?? 0);
