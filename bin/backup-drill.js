#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), the same files the Dagger module imports.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../pipeline/cli.ts");
await main();
