import { readFile } from "node:fs/promises";
import type { Argv, CommandModule } from "yargs";
import { loadTargetConfig } from "../config.js";
import {
  drillFinish,
  drillGlobals,
  fetchAnswer,
  glueError,
  minioBackup,
  minioProbe,
  redisPrepare,
  sealSet,
  serveSnapshots,
  setPlan,
  verifyReplayed,
  type DrillFinishInput,
  type GlueAnswer,
  type GlueTargets,
  type SealInput,
  type StepRecord,
} from "../dagger-glue.js";
import { targetsFrom } from "../drill.js";
import { UserError } from "../errors.js";
import { stderrProgress } from "../progress.js";
import { minioClient } from "../../probes/minio.js";
import { seedMinio, seedPostgres, seedRedis } from "../seed.js";
import { configFrom, withGlobalOptions, type GlobalArgs } from "./common.js";

/**
 * `backup-drill internal <phase>`: the glue phases the Dagger runner runs in
 * the project's Node container (pipeline/dagger-glue.ts). Hidden from --help:
 * not a user interface. Each phase prints exactly one JSON document,
 * {"ok":true,"value":...} or {"ok":false,"kind":...,"message":...}, and exits
 * 0 either way, so the Dagger runner always gets the answer (and the error's
 * kind) back from stdout; only `pg-snapshots` keeps running, as a service.
 */
export const INTERNAL_PHASES = [
  "pg-snapshots",
  "fetch",
  "redis-prepare",
  "minio-probe",
  "minio-backup",
  "seal",
  "set-plan",
  "verify",
  "drill-globals",
  "drill-finish",
  "seed",
] as const;
export type InternalPhase = (typeof INTERNAL_PHASES)[number];

type InternalArgs = GlobalArgs & {
  phase: InternalPhase;
  url?: string;
  port: number;
  set?: string;
  setDir?: string;
  steps?: string;
  input?: string;
  targetConfig?: string;
};

async function readJson<T>(path: string | undefined, flag: string): Promise<T> {
  if (!path) throw new UserError(`internal: --${flag} is required for this phase`);
  return JSON.parse(await readFile(path, "utf8")) as T;
}

function required<T>(v: T | undefined, flag: string): T {
  if (v === undefined) throw new UserError(`internal: --${flag} is required for this phase`);
  return v;
}

function targets(args: InternalArgs): GlueTargets {
  const t = targetsFrom(loadTargetConfig(required(args.targetConfig, "target-config")));
  return t;
}

async function runPhase(args: InternalArgs): Promise<unknown> {
  const progress = args.quiet ? { info() {}, warn() {} } : stderrProgress();
  switch (args.phase) {
    case "pg-snapshots": {
      const held = await serveSnapshots(configFrom(args), args.port, progress);
      // Serves until the Dagger runner stops the service; then the snapshots' transactions end.
      const stop = () => void held.close().finally(() => process.exit(0));
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
      return new Promise(() => {});
    }
    case "fetch":
      return JSON.parse(await fetchAnswer(required(args.url, "url"))) as GlueAnswer<unknown>;
    case "redis-prepare":
      return redisPrepare(configFrom(args), progress);
    case "minio-probe":
      return minioProbe(configFrom(args), progress);
    case "minio-backup":
      return minioBackup(configFrom(args), required(args.setDir, "set-dir"), await readJson<StepRecord[]>(args.steps, "steps"), progress);
    case "seal":
      return sealSet(required(args.output, "output"), await readJson<SealInput>(args.input, "input"), new Date());
    case "set-plan":
      return setPlan(required(args.output, "output"), args.set);
    case "verify":
      return verifyReplayed(required(args.output, "output"), required(args.set, "set"), await readJson<StepRecord[]>(args.steps, "steps"), progress);
    case "drill-globals": {
      const pg = targets(args).postgres;
      if (!pg) throw new UserError("internal drill-globals: the target config has no postgres section");
      return drillGlobals(required(args.output, "output"), required(args.set, "set"), pg, progress);
    }
    case "drill-finish": {
      const input = await readJson<DrillFinishInput>(args.input, "input");
      // Sanity queries of a config file given to restore-drill count too.
      const fromConfig = args.config ? (configFrom(args, { resolveSecrets: false }).postgres?.sanityQueries ?? []) : [];
      const withQueries = { ...input, sanityQueries: [...input.sanityQueries, ...fromConfig] };
      return drillFinish(required(args.output, "output"), required(args.set, "set"), targets(args), withQueries, progress, () => new Date());
    }
    case "seed": {
      const cfg = configFrom(args);
      if (!cfg.postgres || !cfg.redis || !cfg.minio) throw new UserError("internal seed: the config needs postgres, redis and minio sections");
      await Promise.all([
        seedPostgres(cfg.postgres),
        seedRedis({ host: cfg.redis.host, port: cfg.redis.port, password: cfg.redis.password }),
        seedMinio(minioClient(cfg.minio, { partSize: 5 * 1024 * 1024 })),
      ]);
      return { seeded: true };
    }
  }
}

export const internalCommand: CommandModule = {
  command: "internal <phase> [url]",
  describe: false,
  builder: (y: Argv) =>
    withGlobalOptions(y)
      .positional("phase", { choices: INTERNAL_PHASES, describe: "glue phase" })
      .positional("url", { type: "string", describe: "fetch: the URL to read" })
      .option("port", { type: "number", default: 8000, describe: "pg-snapshots: port to serve on" })
      .option("set", { type: "string", describe: "set id" })
      .option("set-dir", { type: "string", describe: "minio-backup: the staged set directory" })
      .option("steps", { type: "string", describe: "JSON file of the tool steps the Dagger runner ran" })
      .option("input", { type: "string", describe: "JSON file with the phase's input" })
      .option("target-config", { type: "string", describe: "drill targets (postgres/redis/minio sections)" }) as unknown as Argv,
  handler: async (raw) => {
    const args = raw as unknown as InternalArgs;
    let answer: GlueAnswer<unknown>;
    try {
      answer = { ok: true, value: await runPhase(args) };
    } catch (err) {
      answer = glueError(err);
    }
    if (args.phase === "fetch" && answer.ok) answer = answer.value as GlueAnswer<unknown>; // pass the service's answer through
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  },
};
