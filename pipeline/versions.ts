/**
 * Pinned versions of the external tools. scripts/ensure-tools.sh installs the
 * same Go module versions on a host; the Dagger runner builds the same ones in
 * a container (test/versions.test.ts keeps the two in step).
 */
export const MC_MODULE = "github.com/minio/mc";
export const MC_VERSION = "v0.0.0-20250313080218-cf909e1063a9";
export const MINIO_MODULE = "github.com/minio/minio";
export const MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c";
/**
 * Go toolchain image used to build mc and minio inside Dagger (and to run
 * them). minio at MINIO_VERSION declares `go 1.24.0` / `toolchain go1.24.8`
 * in its go.mod, mc at MC_VERSION `go 1.23.0`: 1.24.8 builds both without a
 * toolchain download.
 */
export const GOLANG_IMAGE = "golang:1.24.8-bookworm";
/** Node image for the project's own CLI inside Dagger. */
export const NODE_IMAGE = "node:20-bookworm-slim";
