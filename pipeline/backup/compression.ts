import { UserError } from "../errors.js";

/**
 * postgres.compression: how pg_dump compresses the data files of a
 * directory-format dump. Pure: spec + the pg_dump major in use -> argv.
 */
export type CompressionMethod = "none" | "gzip" | "lz4" | "zstd";
export type Compression = { method: CompressionMethod; level?: number };

/** The levels each method takes (as pg_dump 16+ accepts them). */
export const LEVELS: Record<Exclude<CompressionMethod, "none">, [number, number]> = { gzip: [1, 9], lz4: [1, 12], zstd: [1, 22] };

/** What the config accepts: none, gzip[:1-9], lz4[:1-12], zstd[:1-22]. */
export const COMPRESSION_PATTERN = /^(none|gzip(:[1-9])?|lz4(:([1-9]|1[0-2]))?|zstd(:([1-9]|1[0-9]|2[0-2]))?)$/;

/**
 * The default, chosen from measurements on the bench data (README,
 * "Compression"): gzip level 1 dumps about twice as fast as pg_dump's own
 * default (gzip level 6) for a set a few percent larger.
 */
export const DEFAULT_COMPRESSION = "gzip:1";

/** The first pg_dump that knows a method other than gzip (--compress=METHOD[:LEVEL]). */
export const METHODS_SINCE_MAJOR = 16;

export function parseCompression(spec: string): Compression {
  if (!COMPRESSION_PATTERN.test(spec)) throw new UserError(`postgres.compression: "${spec}" is not one of none, gzip[:1-9], lz4[:1-12], zstd[:1-22]`);
  const [method, level] = spec.split(":") as [CompressionMethod, string | undefined];
  return level === undefined ? { method } : { method, level: Number(level) };
}

/** The spec as written in the manifest: "none", "gzip:1", "zstd" (the method's own default level). */
export function compressionText(c: Compression): string {
  return c.level === undefined ? c.method : `${c.method}:${c.level}`;
}

/**
 * pg_dump's compression flag for `spec`, in the form its major version
 * understands: 16 and newer take --compress=METHOD[:LEVEL]; older ones only
 * gzip levels (--compress=0-9, 0 meaning none). lz4 and zstd with an older
 * pg_dump are refused, naming the field and the version. An empty list
 * leaves pg_dump's default (gzip at zlib's default level).
 */
export function compressionArgs(spec: string, pgDump: { version: string; major: number }): string[] {
  const c = parseCompression(spec);
  if (pgDump.major >= METHODS_SINCE_MAJOR) return [`--compress=${compressionText(c)}`];
  if (c.method === "none") return ["--compress=0"];
  if (c.method === "gzip") return c.level === undefined ? [] : [`--compress=${c.level}`];
  throw new UserError(
    `postgres.compression: ${c.method} needs pg_dump ${METHODS_SINCE_MAJOR} or newer, and pg_dump ${pgDump.version} is in use (it compresses with gzip only: use none or gzip[:1-9], or point tools.pg_dump at pg_dump ${METHODS_SINCE_MAJOR}+)`,
  );
}
