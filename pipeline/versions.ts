/**
 * Pinned versions of the Go-built tools. scripts/ensure-tools.sh installs the
 * same module versions on a host and src/toolbox.ts builds them in the Dagger
 * toolbox (test/repo.test.ts and test/dagger.module.test.ts keep them in step).
 */
export const MC_MODULE = "github.com/minio/mc";
export const MC_VERSION = "v0.0.0-20250313080218-cf909e1063a9";
export const MINIO_MODULE = "github.com/minio/minio";
export const MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c";
