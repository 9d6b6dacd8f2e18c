/**
 * backup-drill: provable backups for a PostgreSQL + Redis + MinIO stack.
 *
 * Every function runs the project's own CLI (`npx backup-drill ...`),
 * unchanged, inside one hermetic toolbox container built from pinned official
 * images: PostgreSQL's tools of the data's major, Redis's of its major.minor,
 * Node, and mc/minio from pinned Go builds. Servers arrive as services bound
 * under aliases, secrets as secret variables, and the backups root as a
 * directory that the call returns for `export --path output/backups`.
 */
import { dag, object, func, type Directory, type File, type Secret, type Service } from "@dagger.io/dagger";
import { parseConfig, sourceConfig, targetConfig, withOffsite, type OffsiteSection, type Sections } from "./config.js";
import {
  ALIAS,
  BACKUPS,
  CONFIG,
  DEFAULT_POSTGRES_MAJOR,
  DEFAULT_REDIS_VERSION,
  OFFSITE,
  SECRET_VAR,
  TARGETS,
  probePostgresMajor,
  probeRedisVersion,
  runCli,
  servicePort,
  setToolVersions,
  toolbox,
  type Binding,
  type ToolVersions,
} from "./toolbox.js";

const REPORT = "/report";

/** An offsite destination as the functions take it. */
type OffsiteArgs = {
  endpoint?: string;
  bucket?: string;
  accessKey?: Secret;
  secretKey?: Secret;
  prefix?: string;
  region?: string;
  pathStyle?: boolean;
  recipients?: string[];
  identity?: Secret;
};

/** The config file, secret variables and CLI flags for an offsite destination (none when no endpoint is given). */
function offsite(a: OffsiteArgs, what: string): { section?: OffsiteSection; binding?: Binding; flags: string[] } {
  if (!a.endpoint) return { flags: [] };
  if (!a.bucket || !a.accessKey || !a.secretKey) throw new Error(`${what} needs --offsite-endpoint, --offsite-bucket, --offsite-access-key and --offsite-secret-key`);
  return {
    section: { endpoint: a.endpoint, bucket: a.bucket, prefix: a.prefix, region: a.region, pathStyle: a.pathStyle, recipients: a.recipients },
    binding: { alias: OFFSITE, secrets: { [SECRET_VAR.offsiteAccessKey]: a.accessKey, [SECRET_VAR.offsiteSecretKey]: a.secretKey, [SECRET_VAR.offsiteIdentity]: a.identity } },
    flags: a.identity ? ["--identity", `env:${SECRET_VAR.offsiteIdentity}`] : [],
  };
}

/** The config the CLI reads for a function over a backups root: the caller's, with the offsite destination of the arguments. */
async function setConfig(config: File | undefined, section: OffsiteSection | undefined): Promise<Record<string, string>> {
  if (!config && !section) return {};
  return { [CONFIG]: JSON.stringify(withOffsite(parseConfig(config ? await config.contents() : undefined), section), null, 2) };
}

/** Back up, verify, restore-drill, restore and watch the freshness of a PostgreSQL + Redis + MinIO stack: the backup-drill CLI in a hermetic toolbox. */
@object()
export class BackupDrill {
  /** Node image whose node binary runs the CLI and whose npm installs its dependencies. */
  nodeImage: string;
  /** Go image that builds mc and minio from the pinned modules. */
  goImage: string;

  /**
   * Images the toolbox is built from (PostgreSQL and Redis images follow the data: postgres:<major>-bookworm, redis:<major.minor>-bookworm).
   *
   * Example: dagger call --node-image=node:20-bookworm-slim sandbox export --path output/backups
   *
   * @param nodeImage Node image (Debian bookworm, like every image of the toolbox).
   * @param goImage Go image that builds mc and minio (go install, cached).
   */
  constructor(nodeImage: string = "node:20-bookworm-slim", goImage: string = "golang:1.24.8-bookworm") {
    this.nodeImage = nodeImage;
    this.goImage = goImage;
  }

  /**
   * The backup-drill version this module was built from (package.json).
   *
   * Example: dagger call version
   */
  @func()
  async version(): Promise<string> {
    return (JSON.parse(await dag.currentModule().source().file("package.json").contents()) as { version: string }).version;
  }

  /**
   * Back up every given server into one new checksummed set; returns the backups root with the new set and latest.json (and retention applied).
   *
   * Example: dagger call backup --backups=output/backups --pg=tcp://localhost:5432 --pg-password=env://PGPASSWORD --redis=tcp://localhost:6379 --redis-password=env://REDIS_PASSWORD --minio=tcp://localhost:9000 --minio-access-key=env://MINIO_ACCESS_KEY --minio-secret-key=env://MINIO_SECRET_KEY export --path output/backups
   *
   * @param backups The existing backups root (its latest.json and sets; retention prunes it). Default: an empty root.
   * @param config A backup-drill config file for everything else (sampling, retention, freshness, sanity queries); the servers below replace its connection settings.
   * @param pg PostgreSQL server, e.g. tcp://localhost:5432 (bound as host "pg").
   * @param pgUser Role pg_dump connects as.
   * @param pgPassword Password of that role.
   * @param pgDatabases Databases to dump (default: every database that accepts connections and is not a template).
   * @param pgGlobals Also dump roles (pg_dumpall --globals-only; needs a superuser).
   * @param pgJobs pg_dump --jobs.
   * @param redis Redis server, e.g. tcp://localhost:6379 (bound as host "redis").
   * @param redisUsername ACL user (default: the default user).
   * @param redisPassword Password.
   * @param minio MinIO / S3 server, e.g. tcp://localhost:9000 (bound as host "minio", spoken to over http).
   * @param minioEndpoint An S3 endpoint URL the container reaches directly (e.g. https://s3.example.com), instead of --minio.
   * @param minioAccessKey Access key.
   * @param minioSecretKey Secret key.
   * @param minioBuckets Buckets to back up (default: every bucket).
   * @param minioRegion Region of the buckets.
   */
  @func({ cache: "never" })
  async backup(
    backups?: Directory,
    config?: File,
    pg?: Service,
    pgUser: string = "postgres",
    pgPassword?: Secret,
    pgDatabases?: string[],
    pgGlobals?: boolean,
    pgJobs?: number,
    redis?: Service,
    redisUsername?: string,
    redisPassword?: Secret,
    minio?: Service,
    minioEndpoint?: string,
    minioAccessKey?: Secret,
    minioSecretKey?: Secret,
    minioBuckets?: string[],
    minioRegion?: string,
  ): Promise<Directory> {
    const run = await this.sources(config, { pg, pgUser, pgPassword, pgDatabases, pgGlobals, pgJobs, redis, redisUsername, redisPassword, minio, minioEndpoint, minioAccessKey, minioSecretKey, minioBuckets, minioRegion });
    const ran = await runCli(toolbox(this.images(), run.versions), {
      args: ["backup", "--config", CONFIG, "--output", BACKUPS],
      backups,
      files: { [CONFIG]: JSON.stringify(run.config, null, 2) },
      bindings: run.bindings,
    });
    return ran.directory(BACKUPS);
  }

  /**
   * Preflight: can a backup of these servers work (reachable, credentials, tool versions, permissions)? Returns the report; fails when a check fails.
   *
   * Example: dagger call check --pg=tcp://localhost:5432 --pg-password=env://PGPASSWORD
   *
   * @param config A backup-drill config file; the servers below replace its connection settings.
   * @param pg PostgreSQL server (bound as host "pg").
   * @param pgUser Role pg_dump connects as.
   * @param pgPassword Password of that role.
   * @param pgDatabases Databases to check (default: every database that accepts connections and is not a template).
   * @param pgGlobals Check that the role may dump roles (a superuser).
   * @param redis Redis server (bound as host "redis").
   * @param redisUsername ACL user (default: the default user).
   * @param redisPassword Password.
   * @param minio MinIO / S3 server (bound as host "minio").
   * @param minioEndpoint An S3 endpoint URL the container reaches directly, instead of --minio.
   * @param minioAccessKey Access key.
   * @param minioSecretKey Secret key.
   * @param minioBuckets Buckets to check (default: every bucket).
   * @param json Print the report as one JSON document.
   */
  @func({ cache: "never" })
  async check(
    config?: File,
    pg?: Service,
    pgUser: string = "postgres",
    pgPassword?: Secret,
    pgDatabases?: string[],
    pgGlobals?: boolean,
    redis?: Service,
    redisUsername?: string,
    redisPassword?: Secret,
    minio?: Service,
    minioEndpoint?: string,
    minioAccessKey?: Secret,
    minioSecretKey?: Secret,
    minioBuckets?: string[],
    json: boolean = false,
  ): Promise<string> {
    const run = await this.sources(config, { pg, pgUser, pgPassword, pgDatabases, pgGlobals, redis, redisUsername, redisPassword, minio, minioEndpoint, minioAccessKey, minioSecretKey, minioBuckets });
    const ran = await runCli(toolbox(this.images(), run.versions), {
      args: ["check", "--config", CONFIG, "--output", BACKUPS, ...(json ? ["--json"] : [])],
      files: { [CONFIG]: JSON.stringify(run.config, null, 2) },
      bindings: run.bindings,
    });
    return ran.stdout();
  }

  /**
   * Restore a set into throwaway servers inside the toolbox and prove the data came back; returns the backups root with restore-drill-summary.json written into the set, also when a check failed (read its "ok").
   *
   * Example: dagger call restore-drill --backups=output/backups export --path output/backups
   *
   * @param backups The backups root (latest.json and the sets); not needed with --from-offsite.
   * @param set Set id (default: the set latest.json names; with --from-offsite, the newest complete copy there).
   * @param config A backup-drill config file whose postgres.sanityQueries the drill also runs.
   * @param fromOffsite Drill the copy at the offsite destination (pulled, decrypted with --offsite-identity, verified) instead of a local set.
   * @param offsiteEndpoint S3 endpoint URL of the offsite destination.
   * @param offsiteBucket Bucket of the offsite destination.
   * @param offsiteAccessKey Access key of the offsite destination.
   * @param offsiteSecretKey Secret key of the offsite destination.
   * @param offsitePrefix Key prefix of the copies.
   * @param offsiteRegion Region of the bucket.
   * @param offsitePathStyle Path-style requests (false: virtual-host style).
   * @param offsiteIdentity age private key of an encrypted copy.
   * @param postgresMajor PostgreSQL major of the tools (default: the set's; with --from-offsite, 17).
   * @param redisVersion Redis major.minor of the tools (default: the set's; with --from-offsite, 7.4).
   */
  @func({ cache: "never" })
  async restoreDrill(
    backups?: Directory,
    set?: string,
    config?: File,
    fromOffsite: boolean = false,
    offsiteEndpoint?: string,
    offsiteBucket?: string,
    offsiteAccessKey?: Secret,
    offsiteSecretKey?: Secret,
    offsitePrefix?: string,
    offsiteRegion?: string,
    offsitePathStyle?: boolean,
    offsiteIdentity?: Secret,
    postgresMajor?: number,
    redisVersion?: string,
  ): Promise<Directory> {
    const o = offsite({ endpoint: offsiteEndpoint, bucket: offsiteBucket, accessKey: offsiteAccessKey, secretKey: offsiteSecretKey, prefix: offsitePrefix, region: offsiteRegion, pathStyle: offsitePathStyle, identity: offsiteIdentity }, "--from-offsite");
    if (fromOffsite && !o.section) throw new Error("--from-offsite needs --offsite-endpoint and its keys");
    // A copy's versions are known only once it is pulled: the newest tools we pin restore older data.
    const versions = fromOffsite || !backups ? { postgresMajor: DEFAULT_POSTGRES_MAJOR, redisVersion: DEFAULT_REDIS_VERSION } : await setToolVersions(backups, set);
    const files = await setConfig(config, o.section);
    const ran = await runCli(toolbox(this.images(), { postgresMajor: postgresMajor ?? versions.postgresMajor, redisVersion: redisVersion ?? versions.redisVersion }), {
      args: ["restore-drill", "--output", BACKUPS, ...(set ? ["--set", set] : []), ...(CONFIG in files ? ["--config", CONFIG] : []), ...(fromOffsite ? ["--from", OFFSITE, ...o.flags] : [])],
      backups,
      files,
      bindings: o.binding ? [o.binding] : [],
      // A local set's summary comes back for export even when a check failed; a pulled copy (and its
      // summary) is removed after the drill, so there a failed check must fail the call.
      accept: fromOffsite ? [] : [3],
    });
    return ran.directory(BACKUPS);
  }

  /**
   * Copy a sealed set to an offsite S3 destination, encrypted with age to --offsite-recipients; a rerun uploads only what is missing. Returns the backups root (with the push journal).
   *
   * Example: dagger call push --backups=output/backups --offsite-endpoint=https://s3.example.com --offsite-bucket=backups --offsite-access-key=env://OFFSITE_ACCESS_KEY --offsite-secret-key=env://OFFSITE_SECRET_KEY --offsite-recipients=age1... export --path output/backups
   *
   * @param backups The backups root (latest.json and the sets).
   * @param offsiteEndpoint S3 endpoint URL the toolbox reaches (any S3 server).
   * @param offsiteBucket Bucket the copies go to.
   * @param offsiteAccessKey Access key.
   * @param offsiteSecretKey Secret key.
   * @param set Set id (default: the set latest.json names).
   * @param config A backup-drill config file (its own offsite section is replaced by these arguments).
   * @param offsitePrefix Key prefix under which each set is stored as <prefix>/<set id>/.
   * @param offsiteRegion Region of the bucket.
   * @param offsitePathStyle Path-style requests (false: virtual-host style).
   * @param offsiteRecipients age X25519 public keys every file is encrypted to before it leaves.
   */
  @func({ cache: "never" })
  async push(
    backups: Directory,
    offsiteEndpoint: string,
    offsiteBucket: string,
    offsiteAccessKey: Secret,
    offsiteSecretKey: Secret,
    set?: string,
    config?: File,
    offsitePrefix?: string,
    offsiteRegion?: string,
    offsitePathStyle?: boolean,
    offsiteRecipients?: string[],
  ): Promise<Directory> {
    const o = offsite({ endpoint: offsiteEndpoint, bucket: offsiteBucket, accessKey: offsiteAccessKey, secretKey: offsiteSecretKey, prefix: offsitePrefix, region: offsiteRegion, pathStyle: offsitePathStyle, recipients: offsiteRecipients }, "push");
    const ran = await runCli(toolbox(this.images(), await setToolVersions(backups, set)), {
      args: ["push", "--config", CONFIG, "--output", BACKUPS, "--to", OFFSITE, ...(set ? ["--set", set] : [])],
      backups,
      files: await setConfig(config, o.section),
      bindings: [o.binding!],
    });
    return ran.directory(BACKUPS);
  }

  /**
   * Recompute every checksum of a set and check its dump formats; returns the report, fails on any finding.
   *
   * Example: dagger call verify --backups=output/backups
   *
   * @param backups The backups root (latest.json and the sets).
   * @param set Set id (default: the set latest.json names).
   * @param formats Also run pg_restore --list and redis-check-rdb.
   * @param json Print the report as one JSON document.
   * @param remote Check the copy at the offsite destination instead (presence, sizes, ETags from one listing).
   * @param readData With --remote: download, decrypt (--offsite-identity) and hash every object.
   * @param offsiteEndpoint S3 endpoint URL of the offsite destination.
   * @param offsiteBucket Bucket of the offsite destination.
   * @param offsiteAccessKey Access key of the offsite destination.
   * @param offsiteSecretKey Secret key of the offsite destination.
   * @param offsitePrefix Key prefix of the copies.
   * @param offsiteRegion Region of the bucket.
   * @param offsitePathStyle Path-style requests (false: virtual-host style).
   * @param offsiteIdentity age private key of an encrypted copy (for --read-data).
   */
  @func({ cache: "never" })
  async verify(
    backups: Directory,
    set?: string,
    formats: boolean = true,
    json: boolean = false,
    remote: boolean = false,
    readData: boolean = false,
    offsiteEndpoint?: string,
    offsiteBucket?: string,
    offsiteAccessKey?: Secret,
    offsiteSecretKey?: Secret,
    offsitePrefix?: string,
    offsiteRegion?: string,
    offsitePathStyle?: boolean,
    offsiteIdentity?: Secret,
  ): Promise<string> {
    const o = offsite({ endpoint: offsiteEndpoint, bucket: offsiteBucket, accessKey: offsiteAccessKey, secretKey: offsiteSecretKey, prefix: offsitePrefix, region: offsiteRegion, pathStyle: offsitePathStyle, identity: offsiteIdentity }, "--remote");
    if (remote && !o.section) throw new Error("--remote needs --offsite-endpoint and its keys");
    const files = await setConfig(undefined, o.section);
    const ran = await runCli(toolbox(this.images(), remote ? { postgresMajor: DEFAULT_POSTGRES_MAJOR, redisVersion: DEFAULT_REDIS_VERSION } : await setToolVersions(backups, set)), {
      args: [
        "verify", "--output", BACKUPS, ...(set ? ["--set", set] : []), ...(formats ? [] : ["--no-formats"]), ...(json ? ["--json"] : []),
        ...(remote ? ["--config", CONFIG, "--remote", OFFSITE, ...(readData ? ["--read-data", ...o.flags] : [])] : []),
      ],
      backups,
      files,
      bindings: o.binding ? [o.binding] : [],
    });
    return ran.stdout();
  }

  /**
   * Is every service's newest good set fresh and proven by a drill? Returns freshness.json (status, Nagios exitCode), freshness.md and freshness.prom.
   *
   * Example: dagger call freshness --backups=output/backups export --path output/freshness
   *
   * @param backups The backups root (latest.json and the sets).
   * @param config A backup-drill config file with a "freshness" section (thresholds, drillMaxAge).
   * @param deep Re-hash every file of the sets the verdict rests on.
   * @param now Evaluate as if it were this ISO 8601 time (default: the clock).
   */
  @func({ cache: "never" })
  async freshness(backups: Directory, config?: File, deep: boolean = false, now?: string): Promise<Directory> {
    const box = toolbox(this.images(), await setToolVersions(backups)).withExec(["mkdir", "-p", "-m", "0755", REPORT]);
    const ran = await runCli(box, {
      args: ["freshness", "--output", BACKUPS, "--json", "--prometheus", `${REPORT}/freshness.prom`, "--markdown", `${REPORT}/freshness.md`, ...(deep ? ["--deep"] : []), ...(now ? ["--now", now] : []), ...(config ? ["--config", CONFIG] : [])],
      backups,
      files: await setConfig(config, undefined),
      accept: [1, 2, 3],
      stdoutTo: `${REPORT}/freshness.json`,
    });
    return ran.directory(REPORT);
  }

  /**
   * One document: the latest set and its verify result, the last drill, freshness per service, what prune would do.
   *
   * Example: dagger call status --backups=output/backups
   *
   * @param backups The backups root (latest.json and the sets).
   * @param config A backup-drill config file (freshness and retention sections).
   * @param formats Also run the format checks on the latest set.
   * @param now Evaluate as if it were this ISO 8601 time (default: the clock).
   * @param json Print one JSON document instead of the human summary.
   */
  @func({ cache: "never" })
  async status(backups: Directory, config?: File, formats: boolean = false, now?: string, json: boolean = false): Promise<string> {
    const ran = await runCli(toolbox(this.images(), await setToolVersions(backups)), {
      args: ["status", "--output", BACKUPS, ...(formats ? ["--formats"] : []), ...(now ? ["--now", now] : []), ...(json ? ["--json"] : []), ...(config ? ["--config", CONFIG] : [])],
      backups,
      files: await setConfig(config, undefined),
      accept: [1, 3],
    });
    return ran.stdout();
  }

  /**
   * Apply the retention policy to a backups root; returns it without the removed sets (export it with --wipe to remove them on the host too).
   *
   * Example: dagger call prune --backups=output/backups export --wipe --path output/backups
   *
   * @param backups The backups root (latest.json and the sets).
   * @param config A backup-drill config file with a "retention" section (default policy otherwise).
   * @param dryRun Only say what would be removed and why each set is kept (the root comes back unchanged).
   * @param now Evaluate as if it were this ISO 8601 time (default: the clock).
   */
  @func({ cache: "never" })
  async prune(backups: Directory, config?: File, dryRun: boolean = false, now?: string): Promise<Directory> {
    const ran = await runCli(toolbox(this.images(), await setToolVersions(backups)), {
      args: ["prune", "--output", BACKUPS, ...(dryRun ? ["--dry-run"] : []), ...(now ? ["--now", now] : []), ...(config ? ["--config", CONFIG] : [])],
      backups,
      files: await setConfig(config, undefined),
    });
    return ran.directory(BACKUPS);
  }

  /**
   * Restore a set into real servers with the CLI's guards (nothing is overwritten without --force; --dry-run shows the plan), then run the drill's checks on them. Returns the report.
   *
   * Example: dagger call restore --backups=output/backups --target-pg=tcp://db2:5432 --target-pg-password=env://PG2_PASSWORD --dry-run
   *
   * @param backups The backups root (latest.json and the sets); not needed with --from-offsite.
   * @param set Set id (default: the set latest.json names).
   * @param config A backup-drill config file (its sources are refused as targets).
   * @param targetPg PostgreSQL server to restore into (bound as host "target-pg").
   * @param targetPgUser Role to restore as.
   * @param targetPgPassword Password of that role.
   * @param targetRedis Redis server to restore into (bound as host "target-redis").
   * @param targetRedisUsername ACL user (default: the default user).
   * @param targetRedisPassword Password.
   * @param targetMinio MinIO / S3 server to restore into (bound as host "target-minio").
   * @param targetMinioEndpoint An S3 endpoint URL the container reaches directly, instead of --target-minio.
   * @param targetMinioAccessKey Access key.
   * @param targetMinioSecretKey Secret key.
   * @param services Only these services (postgres, redis, minio).
   * @param db Only these databases.
   * @param renameDb Restore database OLD as NEW (OLD=NEW).
   * @param globals Also replay the set's roles.
   * @param redisDb Only these Redis dbs.
   * @param keyPattern Only Redis keys matching this glob.
   * @param bucket Only these buckets.
   * @param prefix Only objects whose key starts with this prefix.
   * @param dryRun Print the plan and change nothing.
   * @param force Overwrite what is there.
   * @param json Print one JSON document.
   * @param fromOffsite Restore the copy at the offsite destination (pulled, decrypted, verified) instead of a local set.
   * @param offsiteEndpoint S3 endpoint URL of the offsite destination.
   * @param offsiteBucket Bucket of the offsite destination.
   * @param offsiteAccessKey Access key of the offsite destination.
   * @param offsiteSecretKey Secret key of the offsite destination.
   * @param offsitePrefix Key prefix of the copies.
   * @param offsiteRegion Region of the bucket.
   * @param offsitePathStyle Path-style requests (false: virtual-host style).
   * @param offsiteIdentity age private key of an encrypted copy.
   */
  @func({ cache: "never" })
  async restore(
    backups?: Directory,
    set?: string,
    config?: File,
    targetPg?: Service,
    targetPgUser: string = "postgres",
    targetPgPassword?: Secret,
    targetRedis?: Service,
    targetRedisUsername?: string,
    targetRedisPassword?: Secret,
    targetMinio?: Service,
    targetMinioEndpoint?: string,
    targetMinioAccessKey?: Secret,
    targetMinioSecretKey?: Secret,
    services?: string[],
    db?: string[],
    renameDb?: string[],
    globals: boolean = false,
    redisDb?: number[],
    keyPattern?: string,
    bucket?: string[],
    prefix?: string,
    dryRun: boolean = false,
    force: boolean = false,
    json: boolean = false,
    fromOffsite: boolean = false,
    offsiteEndpoint?: string,
    offsiteBucket?: string,
    offsiteAccessKey?: Secret,
    offsiteSecretKey?: Secret,
    offsitePrefix?: string,
    offsiteRegion?: string,
    offsitePathStyle?: boolean,
    offsiteIdentity?: Secret,
  ): Promise<string> {
    const o = offsite({ endpoint: offsiteEndpoint, bucket: offsiteBucket, accessKey: offsiteAccessKey, secretKey: offsiteSecretKey, prefix: offsitePrefix, region: offsiteRegion, pathStyle: offsitePathStyle, identity: offsiteIdentity }, "--from-offsite");
    if (fromOffsite && !o.section) throw new Error("--from-offsite needs --offsite-endpoint and its keys");
    const bindings: Binding[] = o.binding ? [o.binding] : [];
    const targets: Parameters<typeof targetConfig>[0] = {};
    if (targetPg) {
      targets.postgres = { port: await servicePort(targetPg), user: targetPgUser, password: targetPgPassword !== undefined };
      bindings.push({ alias: ALIAS.targetPg, service: targetPg, secrets: { [SECRET_VAR.targetPgPassword]: targetPgPassword } });
    }
    if (targetRedis) {
      targets.redis = { port: await servicePort(targetRedis), username: targetRedisUsername, password: targetRedisPassword !== undefined };
      bindings.push({ alias: ALIAS.targetRedis, service: targetRedis, secrets: { [SECRET_VAR.targetRedisPassword]: targetRedisPassword } });
    }
    if (targetMinio || targetMinioEndpoint) {
      if (!targetMinioAccessKey || !targetMinioSecretKey) throw new Error("--target-minio needs --target-minio-access-key and --target-minio-secret-key");
      targets.minio = targetMinio ? { port: await servicePort(targetMinio) } : { endpoint: targetMinioEndpoint };
      bindings.push({ alias: ALIAS.targetMinio, service: targetMinio, secrets: { [SECRET_VAR.targetMinioAccessKey]: targetMinioAccessKey, [SECRET_VAR.targetMinioSecretKey]: targetMinioSecretKey } });
    }
    const flag = (name: string, values: (string | number)[] | undefined) => (values ?? []).flatMap((v) => [name, String(v)]);
    const files = await setConfig(config, o.section);
    const versions = fromOffsite || !backups ? { postgresMajor: DEFAULT_POSTGRES_MAJOR, redisVersion: DEFAULT_REDIS_VERSION } : await setToolVersions(backups, set);
    const ran = await runCli(toolbox(this.images(), versions), {
      args: [
        "restore", "--output", BACKUPS, "--target-config", TARGETS,
        ...(set ? ["--set", set] : []),
        ...(CONFIG in files ? ["--config", CONFIG] : []),
        ...(fromOffsite ? ["--from", OFFSITE, ...o.flags] : []),
        ...(services ? ["--services", services.join(",")] : []),
        ...flag("--db", db), ...flag("--rename-db", renameDb), ...flag("--redis-db", redisDb), ...flag("--bucket", bucket),
        ...(globals ? ["--globals"] : []),
        ...(keyPattern ? ["--key-pattern", keyPattern] : []),
        ...(prefix ? ["--prefix", prefix] : []),
        ...(dryRun ? ["--dry-run"] : []),
        ...(force ? ["--force"] : []),
        ...(json ? ["--json"] : []),
      ],
      backups,
      files: { [TARGETS]: JSON.stringify(targetConfig(targets), null, 2), ...files },
      bindings,
      // A dry run that a real run would refuse exits 2 and still prints the plan.
      accept: dryRun ? [2] : [],
    });
    return ran.stdout();
  }

  /**
   * Throwaway PostgreSQL, Redis and MinIO inside the toolbox, seeded, backed up, verified and restore-drilled: npm run sandbox in a container. Returns the backups root; fails when a check fails.
   *
   * Example: dagger call sandbox export --path output/backups
   *
   * @param postgresMajor PostgreSQL major of the sandbox server and its tools.
   * @param redisVersion Redis major.minor of the sandbox server and its tools.
   */
  @func({ cache: "never" })
  async sandbox(postgresMajor: number = 17, redisVersion: string = "7.4"): Promise<Directory> {
    const ran = await runCli(toolbox(this.images(), { postgresMajor, redisVersion }), { args: ["sandbox", "--output", BACKUPS] });
    return ran.directory(BACKUPS);
  }

  private images() {
    return { node: this.nodeImage, go: this.goImage };
  }

  /** Bindings, tool versions and config for the source servers of backup and check. */
  private async sources(
    config: File | undefined,
    a: {
      pg?: Service; pgUser: string; pgPassword?: Secret; pgDatabases?: string[]; pgGlobals?: boolean; pgJobs?: number;
      redis?: Service; redisUsername?: string; redisPassword?: Secret;
      minio?: Service; minioEndpoint?: string; minioAccessKey?: Secret; minioSecretKey?: Secret; minioBuckets?: string[]; minioRegion?: string;
    },
  ): Promise<{ config: Record<string, unknown>; bindings: Binding[]; versions: ToolVersions }> {
    const sections: Sections = {};
    const bindings: Binding[] = [];
    const versions: ToolVersions = { postgresMajor: DEFAULT_POSTGRES_MAJOR, redisVersion: DEFAULT_REDIS_VERSION };
    if (a.pg) {
      const port = await servicePort(a.pg);
      versions.postgresMajor = await probePostgresMajor(a.pg, port, a.pgUser, a.pgPassword);
      sections.postgres = { port, user: a.pgUser, password: a.pgPassword !== undefined, databases: a.pgDatabases, globals: a.pgGlobals, jobs: a.pgJobs };
      bindings.push({ alias: ALIAS.pg, service: a.pg, secrets: { [SECRET_VAR.pgPassword]: a.pgPassword } });
    }
    if (a.redis) {
      const port = await servicePort(a.redis);
      versions.redisVersion = await probeRedisVersion(a.redis, port, a.redisUsername, a.redisPassword);
      sections.redis = { port, username: a.redisUsername, password: a.redisPassword !== undefined };
      bindings.push({ alias: ALIAS.redis, service: a.redis, secrets: { [SECRET_VAR.redisPassword]: a.redisPassword } });
    }
    if (a.minio || a.minioEndpoint) {
      if (!a.minioAccessKey || !a.minioSecretKey) throw new Error("--minio needs --minio-access-key and --minio-secret-key");
      sections.minio = { ...(a.minio ? { port: await servicePort(a.minio) } : { endpoint: a.minioEndpoint }), buckets: a.minioBuckets, region: a.minioRegion };
      bindings.push({ alias: ALIAS.minio, service: a.minio, secrets: { [SECRET_VAR.minioAccessKey]: a.minioAccessKey, [SECRET_VAR.minioSecretKey]: a.minioSecretKey } });
    }
    const base = parseConfig(config ? await config.contents() : undefined);
    return { config: sourceConfig(withOffsite(base, undefined), sections), bindings, versions };
  }
}
