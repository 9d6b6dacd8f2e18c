/**
 * backup-drill: provable backups for a PostgreSQL + Redis + MinIO stack.
 *
 * The same Steps as the host runner (`npx backup-drill`), each tool in its
 * image (postgres:<server major>, redis:<major.minor>, mc and minio built
 * from pinned Go modules), our own logic as the project's CLI in a Node
 * container. A backup is a checksummed set: export it with
 * `export --path output/backups`.
 */
import { func, object, type Directory, type File, type Secret, type Service } from "@dagger.io/dagger";
import { randomUUID } from "node:crypto";
import { daggerBackup, daggerFreshness, daggerRestoreDrill, daggerSandbox, daggerVerify } from "../pipeline/dagger-pipeline.js";
import { Toolbox } from "../pipeline/runners/dagger.js";
import { SANDBOX_SAMPLE_PATTERNS, SANDBOX_SANITY_QUERIES } from "../pipeline/sandbox.js";
import { TOOL_VERSION } from "../pipeline/version.js";
import { GOLANG_IMAGE, NODE_IMAGE } from "../pipeline/versions.js";

/** PostgreSQL image of the sandbox's throwaway server. */
export const SANDBOX_POSTGRES_IMAGE = "postgres:17";
/** Redis image of the sandbox's throwaway server. */
export const SANDBOX_REDIS_IMAGE = "redis:7.4";

/** Back up, verify, restore-drill and check the freshness of a PostgreSQL + Redis + MinIO stack, in containers. */
@object()
export class BackupDrill {
  /** Node image the project's CLI (the glue) runs in. */
  nodeImage: string;
  /** Go image that builds mc and minio from the pinned modules. */
  goImage: string;
  /** Image with mc instead of the Go build. */
  mcImage?: string;
  /** Image with minio instead of the Go build. */
  minioImage?: string;

  /**
   * Images the pipeline builds its tools with.
   *
   * Example: dagger call --go-image=golang:1.24.8-bookworm sandbox
   *
   * @param nodeImage Node image for the project's own CLI (probes, manifest, verify, drill checks).
   * @param goImage Go image that builds mc and minio from the pinned modules (go install, cached).
   * @param mcImage Use this image for mc instead of building it (needs mc on PATH and /bin/sh).
   * @param minioImage Use this image for the throwaway MinIO server instead of building it (needs minio on PATH).
   */
  constructor(nodeImage: string = NODE_IMAGE, goImage: string = GOLANG_IMAGE, mcImage?: string, minioImage?: string) {
    this.nodeImage = nodeImage;
    this.goImage = goImage;
    this.mcImage = mcImage;
    this.minioImage = minioImage;
  }

  /** One toolbox per call; its cache buster makes every container of this call new. */
  private toolbox(): Toolbox {
    return new Toolbox({ nodeImage: this.nodeImage, goImage: this.goImage, mcImage: this.mcImage, minioImage: this.minioImage, runId: randomUUID() });
  }

  /**
   * The backup-drill version this module was built from.
   *
   * Example: dagger call version
   */
  @func()
  version(): string {
    return TOOL_VERSION;
  }

  /**
   * Back up PostgreSQL, Redis and MinIO into one new checksummed set; returns the backups root (the set and latest.json).
   *
   * Example: dagger call backup --pg=tcp://localhost:5432 --pg-password=env://PGPASSWORD --redis=tcp://localhost:6379 --redis-password=env://REDIS_PASSWORD --minio=tcp://localhost:9000 --minio-access-key=env://MINIO_ACCESS_KEY --minio-secret-key=env://MINIO_SECRET_KEY export --path output/backups
   *
   * @param pg PostgreSQL server to back up, e.g. tcp://localhost:5432 (bound as host "pg").
   * @param pgUser Role pg_dump connects as.
   * @param pgPassword Password of that role (reaches pg_dump only as PGPASSWORD).
   * @param pgDatabases Databases to dump (default: every database that is not a template).
   * @param pgGlobals Also run pg_dumpall --globals-only (roles; needs a superuser).
   * @param pgJobs pg_dump --jobs.
   * @param pgImage Image for pg_dump (default: postgres:<server major>, as probed).
   * @param redis Redis server to back up, e.g. tcp://localhost:6379 (bound as host "redis").
   * @param redisUsername ACL user (default: the default user).
   * @param redisPassword Password (reaches redis-cli only as REDISCLI_AUTH).
   * @param redisSampleSize Keys whose type and value digest are recorded for the drill.
   * @param redisSamplePatterns SCAN MATCH patterns whose keys are always recorded.
   * @param redisBgsaveTimeout How long to wait for BGSAVE, e.g. 10m.
   * @param redisImage Image for redis-cli (default: redis:<server major.minor>, as probed).
   * @param minio MinIO / S3 server to back up, e.g. tcp://localhost:9000 (bound as host "minio").
   * @param minioAccessKey Access key.
   * @param minioSecretKey Secret key.
   * @param minioBuckets Buckets to mirror (default: every bucket).
   * @param minioCanary Write, read back and delete a random object in each bucket.
   * @param minioRegion Region of the buckets.
   */
  @func({ cache: "never" })
  async backup(
    pg?: Service,
    pgUser: string = "postgres",
    pgPassword?: Secret,
    pgDatabases?: string[],
    pgGlobals: boolean = false,
    pgJobs: number = 2,
    pgImage?: string,
    redis?: Service,
    redisUsername?: string,
    redisPassword?: Secret,
    redisSampleSize: number = 1000,
    redisSamplePatterns: string[] = [],
    redisBgsaveTimeout: string = "10m",
    redisImage?: string,
    minio?: Service,
    minioAccessKey?: Secret,
    minioSecretKey?: Secret,
    minioBuckets?: string[],
    minioCanary: boolean = true,
    minioRegion: string = "us-east-1",
  ): Promise<Directory> {
    if (minio && (!minioAccessKey || !minioSecretKey)) throw new Error("--minio needs --minio-access-key and --minio-secret-key");
    return daggerBackup(this.toolbox(), {
      ...(pg ? { postgres: { service: pg, user: pgUser, password: pgPassword, databases: pgDatabases, jobs: pgJobs, globals: pgGlobals, image: pgImage } } : {}),
      ...(redis
        ? { redis: { service: redis, username: redisUsername, password: redisPassword, sampleSize: redisSampleSize, samplePatterns: redisSamplePatterns, bgsaveTimeout: redisBgsaveTimeout, image: redisImage } }
        : {}),
      ...(minio ? { minio: { service: minio, accessKey: minioAccessKey!, secretKey: minioSecretKey!, buckets: minioBuckets, canary: minioCanary, region: minioRegion } } : {}),
    });
  }

  /**
   * Restore a set into throwaway servers and prove the data came back; returns the backups root with restore-drill-summary.json written into the set (its "ok" says whether every check passed).
   *
   * Example: dagger call restore-drill --backups=output/backups export --path output/backups
   *
   * @param backups The backups root (holds latest.json and the sets).
   * @param set Set id (default: the set latest.json names).
   * @param config A backup-drill config file whose postgres.sanityQueries the drill also runs.
   * @param pgImage Image of the throwaway PostgreSQL and of pg_restore (default: postgres:<major of the backed-up server>).
   * @param redisImage Image of the throwaway Redis (default: redis:<major.minor of the backed-up server>).
   */
  @func({ cache: "never" })
  async restoreDrill(backups: Directory, set?: string, config?: File, pgImage?: string, redisImage?: string): Promise<Directory> {
    const drilled = await daggerRestoreDrill(this.toolbox(), { backups, set, config, pgImage, redisImage });
    return drilled.backups;
  }

  /**
   * Recompute every checksum of a set and check dump formats; returns the report, fails on any finding.
   *
   * Example: dagger call verify --backups=output/backups
   *
   * @param backups The backups root (holds latest.json and the sets).
   * @param set Set id (default: the set latest.json names).
   * @param pgImage Image for pg_restore --list (default: postgres:<major of the backed-up server>).
   * @param redisImage Image for redis-check-rdb (default: redis:<major.minor of the backed-up server>).
   */
  @func()
  async verify(backups: Directory, set?: string, pgImage?: string, redisImage?: string): Promise<string> {
    return daggerVerify(this.toolbox(), { backups, set, pgImage, redisImage });
  }

  /**
   * Is every service's newest good backup fresh and proven by a drill? Returns freshness.json (status, Nagios exitCode), freshness.md and freshness.prom.
   *
   * Example: dagger call freshness --backups=output/backups export --path output/freshness
   *
   * @param backups The backups root (holds latest.json and the sets).
   * @param config A backup-drill config file with a "freshness" section (thresholds, drillMaxAge).
   * @param deep Re-hash every file of the sets the verdict rests on.
   * @param now Evaluate as if it were this ISO 8601 time (default: the clock).
   */
  @func({ cache: "never" })
  async freshness(backups: Directory, config?: File, deep: boolean = false, now?: string): Promise<Directory> {
    return daggerFreshness(this.toolbox(), { backups, config, deep, now });
  }

  /**
   * Throwaway PostgreSQL, Redis and MinIO as services, seeded, backed up and restore-drilled: the containerised npm run sandbox. Returns the backups root; fails when a check fails.
   *
   * Example: dagger call sandbox export --path output/backups
   *
   * @param pgImage Image of the sandbox PostgreSQL server.
   * @param redisImage Image of the sandbox Redis server.
   */
  @func({ cache: "never" })
  async sandbox(pgImage: string = SANDBOX_POSTGRES_IMAGE, redisImage: string = SANDBOX_REDIS_IMAGE): Promise<Directory> {
    const r = await daggerSandbox(this.toolbox(), { pgImage, redisImage }, { sanityQueries: SANDBOX_SANITY_QUERIES, samplePatterns: SANDBOX_SAMPLE_PATTERNS });
    return r.backups;
  }
}
