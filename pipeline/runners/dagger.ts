import { dirname } from "node:path";
import { dag, ExecError, type Container, type Directory, type File, type Secret, type Service } from "@dagger.io/dagger";
import type { StepRecord } from "../dagger-glue.js";
import { MC_IMAGE } from "../plan.js";
import type { SecretName, Step } from "../step.js";
import { MC_MODULE, MC_VERSION, MINIO_MODULE, MINIO_VERSION } from "../versions.js";

/**
 * The Dagger runner: executes the same Steps as runners/host.ts, each in its
 * image, with the set directory mounted as the working directory, secrets as
 * secret variables and services bound by alias (the Step's argv then names
 * the alias as host: plans are made with an Endpoint of the alias). It
 * records each step's outcome as a StepRecord for the glue to replay.
 */

/** Plain env var that makes every container of one call unique: a call never returns a cached (stale) set. */
export const CACHE_BUSTER_ENV = "BACKUP_DRILL_RUN";
/** Where a tool step sees the set directory (its working directory). */
export const SET_MOUNT = "/set";
/** The project's CLI inside the Node container. */
export const CLI = ["node", "/app/bin/backup-drill.js"];

/** Entry point of the mc image: builds MC_HOST_<alias> inside the container. */
export const MC_ENV_SHIM_PATH = "/usr/local/bin/backup-drill-mc-env";

/**
 * mc reads its alias, credentials included, from MC_HOST_<alias>
 * (scheme://ACCESS:SECRET@host:port, taken apart by a regular expression:
 * the keys are used as written, not percent-decoded). On the host,
 * secretBagFromConfig composes that value in-process; under Dagger the keys
 * exist only as secret variables inside the container, so this shim composes
 * it there and execs the step's argv unchanged. A key mc's format cannot
 * carry (":" in the access key, "@" in the secret key) fails loudly instead
 * of being misread. Needs /bin/sh in the image.
 */
export const MC_ENV_SHIM = `#!/bin/sh
# backup-drill: MC_HOST_<alias> from an endpoint and two keys in the environment.
set -eu
if [ -n "\${BACKUP_DRILL_MC_ALIAS:-}" ]; then
  ak="\${BACKUP_DRILL_MC_ACCESS_KEY:-}"
  sk="\${BACKUP_DRILL_MC_SECRET_KEY:-}"
  case "$ak" in *:*) echo "backup-drill: the MinIO access key contains ':', which MC_HOST_<alias> cannot carry" >&2; exit 2;; esac
  case "$sk" in *@*) echo "backup-drill: the MinIO secret key contains '@', which MC_HOST_<alias> cannot carry" >&2; exit 2;; esac
  scheme="\${BACKUP_DRILL_MC_ENDPOINT%%://*}"
  rest="\${BACKUP_DRILL_MC_ENDPOINT#*://}"
  export "MC_HOST_\${BACKUP_DRILL_MC_ALIAS}=\${scheme}://\${ak}:\${sk}@\${rest}"
  unset BACKUP_DRILL_MC_ACCESS_KEY BACKUP_DRILL_MC_SECRET_KEY ak sk
fi
exec "$@"
`;

export type ToolboxOptions = {
  /** Node image for the project's CLI (the glue). */
  nodeImage: string;
  /** Go image that builds mc and minio (and runs them). */
  goImage: string;
  /** Use this image for mc instead of building it (it must have mc on PATH and /bin/sh). */
  mcImage?: string;
  /** Use this image for the MinIO drill/sandbox server instead of building it (minio on PATH). */
  minioImage?: string;
  /** This call's cache buster value. */
  runId: string;
};

/**
 * Built once per call and shared by every step: the CLI container (npm ci on
 * the package files first, then the sources, so a source change keeps the
 * dependency layer), and mc and minio from the pinned Go modules (go install
 * with the module and build caches mounted, as scripts/ensure-tools.sh does
 * on a host). The cache buster is added on top, after the cached builds.
 */
export class Toolbox {
  readonly opts: ToolboxOptions;
  #cli?: Container;
  #go?: Container;

  constructor(opts: ToolboxOptions) {
    this.opts = opts;
  }

  get runId(): string {
    return this.opts.runId;
  }

  /** The project's own CLI, from the module source. */
  cli(): Container {
    if (!this.#cli) {
      const src = dag.currentModule().source();
      this.#cli = dag
        .container()
        .from(this.opts.nodeImage)
        .withMountedCache("/root/.npm", dag.cacheVolume("backup-drill-npm"))
        .withWorkdir("/app")
        .withFile("/app/package.json", src.file("package.json"))
        .withFile("/app/package-lock.json", src.file("package-lock.json"))
        .withExec(["npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"])
        .withDirectory("/app", src, { include: ["bin/**", "pipeline/**", "probes/**", "tsconfig.json"] })
        .withEnvVariable(CACHE_BUSTER_ENV, this.runId);
    }
    return this.#cli;
  }

  #goBuilder(): Container {
    this.#go ??= dag
      .container()
      .from(this.opts.goImage)
      .withMountedCache("/go/pkg/mod", dag.cacheVolume("backup-drill-go-mod"))
      .withMountedCache("/root/.cache/go-build", dag.cacheVolume("backup-drill-go-build"))
      .withEnvVariable("GOBIN", "/out")
      .withEnvVariable("GOFLAGS", "-trimpath");
    return this.#go;
  }

  /** `go install <module>@<version>`: the same pinned build as scripts/ensure-tools.sh. */
  goInstall(module: string, version: string, binary: string): File {
    return this.#goBuilder().withExec(["go", "install", `${module}@${version}`]).file(`/out/${binary}`);
  }

  /** mc, with the MC_HOST shim as entry point. */
  mc(): Container {
    const base = this.opts.mcImage
      ? dag.container().from(this.opts.mcImage)
      : dag.container().from(this.opts.goImage).withFile("/usr/local/bin/mc", this.goInstall(MC_MODULE, MC_VERSION, "mc"));
    return base
      .withNewFile(MC_ENV_SHIM_PATH, MC_ENV_SHIM, { permissions: 0o755 })
      .withEntrypoint([MC_ENV_SHIM_PATH])
      .withEnvVariable(CACHE_BUSTER_ENV, this.runId);
  }

  /** The MinIO server, with `minio` as entry point. */
  minio(): Container {
    const base = this.opts.minioImage
      ? dag.container().from(this.opts.minioImage)
      : dag.container().from(this.opts.goImage).withFile("/usr/local/bin/minio", this.goInstall(MINIO_MODULE, MINIO_VERSION, "minio"));
    return base.withEntrypoint(["minio"]).withEnvVariable(CACHE_BUSTER_ENV, this.runId);
  }

  /** The container a step runs in: its image (mc: the built one), plus the cache buster. */
  imageFor(step: Step, override?: string): Container {
    if (step.image === MC_IMAGE) return this.mc();
    return dag
      .container()
      .from(override ?? step.image)
      .withEnvVariable(CACHE_BUSTER_ENV, this.runId);
  }
}

/** How the Dagger runner supplies one named secret to a step. */
export type SecretSource =
  /** One Dagger Secret, set as the step's env var. */
  | { kind: "secret"; secret: Secret }
  /** MC_HOST_<alias>: endpoint (plain) and keys (secrets), composed in the container by the shim. */
  | { kind: "mc-host"; endpoint: string; accessKey: Secret; secretKey: Secret };

export type DaggerSecrets = Partial<Record<SecretName, SecretSource>>;

/** A service a step reaches, bound under the alias its argv names. */
export type Binding = { alias: string; service: Service };

export type DaggerStepOutcome = { record: StepRecord; set: Directory };

const STDERR_TAIL = 2000;

/** The set with every output's parent directory created, as HostRunner does before a step. */
export function withOutputParents(set: Directory, outputs: string[]): Directory {
  let out = set;
  for (const o of outputs) {
    const parent = dirname(o);
    if (parent !== "." && parent !== "/") out = out.withNewDirectory(parent);
  }
  return out;
}

export class DaggerRunner {
  readonly #toolbox: Toolbox;
  readonly #secrets: DaggerSecrets;
  readonly #images: { postgres?: string; redis?: string };

  constructor(toolbox: Toolbox, secrets: DaggerSecrets, images: { postgres?: string; redis?: string } = {}) {
    this.#toolbox = toolbox;
    this.#secrets = secrets;
    this.#images = images;
  }

  /** The container that runs `step` (lazy: nothing runs until it is evaluated). */
  container(step: Step, set: Directory, bind?: Binding): Container {
    const override = step.service === "postgres" ? this.#images.postgres : step.service === "redis" ? this.#images.redis : undefined;
    let ctr = this.#toolbox
      .imageFor(step, override)
      .withMountedDirectory(SET_MOUNT, withOutputParents(set, step.outputs))
      .withWorkdir(SET_MOUNT);
    for (const [name, value] of Object.entries(step.env)) ctr = ctr.withEnvVariable(name, value);
    let shim = false;
    for (const [name, secretName] of Object.entries(step.secretEnv)) {
      const source = this.#secrets[secretName];
      if (!source) throw new Error(`${step.id}: secret ${secretName} is not configured`);
      if (source.kind === "secret") {
        ctr = ctr.withSecretVariable(name, source.secret);
      } else {
        if (!name.startsWith("MC_HOST_")) throw new Error(`${step.id}: ${secretName} can only be supplied as MC_HOST_<alias>`);
        shim = true;
        ctr = ctr
          .withEnvVariable("BACKUP_DRILL_MC_ALIAS", name.slice("MC_HOST_".length))
          .withEnvVariable("BACKUP_DRILL_MC_ENDPOINT", source.endpoint)
          .withSecretVariable("BACKUP_DRILL_MC_ACCESS_KEY", source.accessKey)
          .withSecretVariable("BACKUP_DRILL_MC_SECRET_KEY", source.secretKey);
      }
    }
    if (bind) ctr = ctr.withServiceBinding(bind.alias, bind.service);
    // The argv is the Step's, unchanged; only mc goes through its image's entry point (the shim).
    return ctr.withExec(step.argv, shim ? { useEntrypoint: true } : {});
  }

  /**
   * Run one step and wait for it. A tool that fails is a failed StepRecord
   * (the glue turns it into the same error a host run would raise); the set
   * comes back with the step's outputs.
   */
  async run(step: Step, set: Directory, bind?: Binding): Promise<DaggerStepOutcome> {
    const t0 = Date.now();
    const ctr = this.container(step, set, bind);
    const base = { id: step.id, service: step.service, argv: [...step.argv] };
    try {
      const done = await ctr.sync();
      const stdout = step.captureStdout ? await done.stdout() : undefined;
      return {
        record: { ...base, exitCode: 0, durationMs: Date.now() - t0, ...(stdout !== undefined ? { stdout } : {}) },
        set: step.outputs.length ? done.directory(SET_MOUNT) : set,
      };
    } catch (err) {
      if (!(err instanceof ExecError)) throw err;
      const tail = (err.stderr || err.message).trim().slice(-STDERR_TAIL).split("\n").slice(-5).join(" | ");
      return { record: { ...base, exitCode: err.exitCode, durationMs: Date.now() - t0, error: tail }, set };
    }
  }
}
