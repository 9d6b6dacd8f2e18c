/**
 * The config file the CLI reads inside the toolbox: the caller's config (if
 * any) with the bound servers' sections on top. Hosts are the aliases the
 * services are bound under; secrets are `env:` references to secret
 * variables, never values. Pure: test/dagger.module.test.ts loads the result
 * with the CLI's own loadConfig.
 */
import { ALIAS, OFFSITE, SECRET_VAR } from "./toolbox.js";

type Json = Record<string, unknown>;

export type PostgresSection = { port: number; user: string; password: boolean; databases?: string[]; globals?: boolean; jobs?: number };
export type RedisSection = { port: number; username?: string; password: boolean };
/** `port` when the server is a bound service; `endpoint` when it is reached by URL. */
export type MinioSection = { port?: number; endpoint?: string; buckets?: string[]; region?: string };
export type Sections = { postgres?: PostgresSection; redis?: RedisSection; minio?: MinioSection };

const ref = (name: string) => `env:${name}`;

function section(base: unknown): Json {
  return base && typeof base === "object" && !Array.isArray(base) ? { ...(base as Json) } : {};
}

/** Parse the caller's config file; an empty object when none was given. */
export function parseConfig(text: string | undefined): Json {
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`--config: not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("--config: expected a JSON object");
  return parsed as Json;
}

/** The caller's config with the bound servers as its sources. */
export function sourceConfig(base: Json, s: Sections): Json {
  const out: Json = { ...base };
  if (s.postgres) {
    const pg = section(base.postgres);
    delete pg.password;
    out.postgres = {
      ...pg,
      host: ALIAS.pg,
      port: s.postgres.port,
      user: s.postgres.user,
      ...(s.postgres.password ? { password: ref(SECRET_VAR.pgPassword) } : {}),
      ...(s.postgres.databases ? { databases: s.postgres.databases } : {}),
      ...(s.postgres.globals !== undefined ? { globals: s.postgres.globals } : {}),
      ...(s.postgres.jobs !== undefined ? { jobs: s.postgres.jobs } : {}),
    };
  }
  if (s.redis) {
    const r = section(base.redis);
    delete r.password;
    delete r.username;
    out.redis = {
      ...r,
      host: ALIAS.redis,
      port: s.redis.port,
      ...(s.redis.username ? { username: s.redis.username } : {}),
      ...(s.redis.password ? { password: ref(SECRET_VAR.redisPassword) } : {}),
    };
  }
  if (s.minio) {
    out.minio = {
      ...section(base.minio),
      endpoint: s.minio.endpoint ?? `http://${ALIAS.minio}:${s.minio.port}`,
      accessKey: ref(SECRET_VAR.minioAccessKey),
      secretKey: ref(SECRET_VAR.minioSecretKey),
      ...(s.minio.buckets ? { buckets: s.minio.buckets } : {}),
      ...(s.minio.region ? { region: s.minio.region } : {}),
    };
  }
  return out;
}

/** One S3 destination for push and the --from / --remote forms; keys and identity by reference. */
export type OffsiteSection = { endpoint: string; bucket: string; prefix?: string; region?: string; pathStyle?: boolean; recipients?: string[] };

/**
 * The caller's config with `offsite` naming exactly the destination the
 * arguments describe (the private key for pulling goes as --identity), or
 * with no offsite section at all: a caller's own
 * destinations refer to keys in its host environment, which the toolbox does
 * not have (so a backup there never pushes; `push` does).
 */
export function withOffsite(base: Json, o: OffsiteSection | undefined): Json {
  const { offsite: _dropped, ...rest } = base;
  void _dropped;
  if (!o) return rest;
  const encrypt = o.recipients?.length ? { encrypt: { recipients: o.recipients } } : {};
  return {
    ...rest,
    offsite: {
      destinations: {
        [OFFSITE]: {
          endpoint: o.endpoint,
          bucket: o.bucket,
          ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
          ...(o.region ? { region: o.region } : {}),
          ...(o.pathStyle !== undefined ? { pathStyle: o.pathStyle } : {}),
          accessKey: ref(SECRET_VAR.offsiteAccessKey),
          secretKey: ref(SECRET_VAR.offsiteSecretKey),
          ...encrypt,
        },
      },
    },
  };
}

/** A --target-config file naming the bound restore targets. */
export function targetConfig(t: { postgres?: { port: number; user: string; password: boolean }; redis?: { port: number; username?: string; password: boolean }; minio?: { port?: number; endpoint?: string; region?: string } }): Json {
  return {
    ...(t.postgres
      ? { postgres: { host: ALIAS.targetPg, port: t.postgres.port, user: t.postgres.user, ...(t.postgres.password ? { password: ref(SECRET_VAR.targetPgPassword) } : {}) } }
      : {}),
    ...(t.redis
      ? { redis: { host: ALIAS.targetRedis, port: t.redis.port, ...(t.redis.username ? { username: t.redis.username } : {}), ...(t.redis.password ? { password: ref(SECRET_VAR.targetRedisPassword) } : {}) } }
      : {}),
    ...(t.minio
      ? {
          minio: {
            endpoint: t.minio.endpoint ?? `http://${ALIAS.targetMinio}:${t.minio.port}`,
            accessKey: ref(SECRET_VAR.targetMinioAccessKey),
            secretKey: ref(SECRET_VAR.targetMinioSecretKey),
            ...(t.minio.region ? { region: t.minio.region } : {}),
          },
        }
      : {}),
  };
}
