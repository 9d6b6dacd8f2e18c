import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One temp root per run, one TMPDIR per test file and per test (see test/setup/).
    globalSetup: ["test/setup/global.ts"],
    setupFiles: ["test/setup/tmpdir.ts"],
    // Suites start real servers; on a 2-core machine one file at a time is faster and steadier.
    fileParallelism: false,
    pool: "forks",
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
