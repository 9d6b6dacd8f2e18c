/**
 * Faults during `backup`: a server stopped (SIGSTOP) at each wait, and
 * backup-drill killed with SIGKILL while each tool runs. Every run is
 * bounded, says which server it waited for, leaves nothing staged and no
 * child alive, and the next run succeeds (after reaping what a killed run
 * left, in one line).
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { secretEnv, secretValues, useServers, type SandboxServers } from "../services/index.js";
import { latestId, printsNoSecret, processesUnder, runCli, sets, settleProcesses, staged, tmpLeftovers, writeConfig } from "./helpers.js";
import { useOwnTmpdir } from "./helpers.js";

const servers = useServers();
const tmp = useOwnTmpdir("backup");

type Service = "postgres" | "redis" | "minio";
const STEP: Record<Service, string> = { postgres: "postgres/dump/app", redis: "redis/rdb", minio: "minio/mirror/assets" };
/** The steps that may notice a stopped server first: postgres runs its schema dump beside the data dump. */
const STALLING: Record<Service, string> = { postgres: "postgres/(dump|schema)/app", redis: "redis/rdb", minio: "minio bucket assets: mirror/assets" };
const TOOL: Record<Service, RegExp> = { postgres: /pg_dump/, redis: /redis-cli/, minio: /\bmc\b/ };

function serverPid(s: SandboxServers, service: Service): number {
  return s[service].pid;
}

let n = 0;
function setup(service: Service) {
  const root = join(tmp(), `out-${service}-${++n}`);
  const config = writeConfig(tmp(), servers(), root, { services: [service] });
  return { root, config, env: { ...secretEnv(servers()), TMPDIR: tmp() } };
}

/** The next run: reaps nothing or what was left, and succeeds. */
async function nextRunSucceeds(config: string, env: Record<string, string>, root: string) {
  const r = await runCli(["backup", "--config", config, "--json"], { env });
  expect(r.code, r.stderr).toBe(0);
  expect(staged(root)).toEqual([]);
  expect(latestId(root)).toBe(JSON.parse(r.stdout).id);
  return r;
}

describe("backup: a server stopped while the tool waits on it", () => {
  beforeAll(() => {
    expect(servers().postgres.pid).toBeGreaterThan(0);
  });

  it.each(["postgres", "redis", "minio"] as const)("SIGSTOP of %s while its tool runs: the stalled tool is killed, exit 1 naming the server, nothing staged", async (service) => {
    const { root, config, env } = setup(service);
    const pid = serverPid(servers(), service);
    let stopped = false;
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: [`before-step:${STEP[service]}`],
      onPause: async () => {
        process.kill(pid, "SIGSTOP");
        stopped = true;
        return "continue";
      },
    });
    if (stopped) process.kill(pid, "SIGCONT");
    expect(stopped).toBe(true);
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(30_000); // stall 3s, phase 40s: bounded by the stall
    const addr = service === "minio" ? new URL(servers().minio.endpoint).host : `${servers()[service].host}:${servers()[service].port}`;
    // The error names the step that stalled (for postgres the dump or the schema dump beside it, whichever notices first) and the server it waited for.
    const error = r.stderr.split("\n").find((l) => l.startsWith("backup-drill backup: error: ")) ?? "";
    expect(error, r.stderr).toMatch(new RegExp(`error: ${STALLING[service]}: \\S+ made no progress for 3s .*waiting for ${service} at ${addr.replaceAll(".", "\\.")}$`));
    expect(printsNoSecret(r, secretValues(servers()))).toBe(true);
    expect(staged(root)).toEqual([]);
    expect(sets(root)).toEqual([]);
    expect(await settleProcesses(3000, root, tmp())).toEqual([]);
    expect(tmpLeftovers(tmp()).registry).toEqual([]);
    await nextRunSucceeds(config, env, root);
  });

  it("SIGSTOP of Redis before its first command: every command is bounded (timeouts.redisCommand), exit 1 naming redis", async () => {
    const { root, config, env } = setup("redis");
    const pid = serverPid(servers(), "redis");
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: ["backup:staged"],
      onPause: async () => {
        process.kill(pid, "SIGSTOP");
        return "continue";
      },
    });
    process.kill(pid, "SIGCONT");
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(30_000);
    expect(r.stderr).toMatch(/backup-drill backup: error: redis .*(timed out|no answer)/i);
    expect(staged(root)).toEqual([]);
    await nextRunSucceeds(config, env, root);
  });
});

describe("backup: backup-drill killed (SIGKILL) while each tool runs", () => {
  it.each(["postgres", "redis", "minio"] as const)("kill -9 while the %s tool runs: the tool dies with it; the next run reaps the staging dir in one line and succeeds", async (service) => {
    const { root, config, env } = setup(service);
    const pid = serverPid(servers(), service);
    let toolAlive: number | undefined;
    // Stop the server before the tool starts, so the tool is certainly still running when we kill.
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: [`before-step:${STEP[service]}`, `step:${STEP[service]}`],
      onPause: async (point, cli) => {
        if (point.startsWith("before-step:")) {
          process.kill(pid, "SIGSTOP");
          return "continue";
        }
        toolAlive = processesUnder(root).find((p) => TOOL[service].test(p.cmd))?.pid;
        process.kill(cli, "SIGKILL");
        return "killed";
      },
    });
    try {
      expect(r.signal).toBe("SIGKILL");
      expect(toolAlive, "the tool was running when backup-drill was killed").toBeGreaterThan(0);
      // The tool and its workers die with backup-drill (watchdog + parent-death signal).
      expect(await settleProcesses(3000, root)).toEqual([]);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    expect(staged(root)).toHaveLength(1); // the killed run's .partial-*: no one was left to remove it
    const next = await nextRunSucceeds(config, env, root);
    expect(next.stderr).toMatch(new RegExp(`reaped what a killed run \\(pid ${r.pid}\\) left: .*\\.partial-`));
    expect(tmpLeftovers(tmp()).dirs).toEqual([]);
  });
});

describe("backup: backup-drill killed (SIGKILL) at each point of seal and promote", () => {
  it.each(["backup:staged", "seal:manifest.json", "seal:SHA256SUMS", "seal:manifest.sha256", "promote:rename"])(
    "kill -9 at %s: no set appears, latest.json is untouched; the next run reaps the staging dir and succeeds",
    async (point) => {
      const { root, config, env } = setup("redis");
      const first = await nextRunSucceeds(config, env, root);
      const before = { latest: latestId(root), sets: sets(root) };
      const r = await runCli(["backup", "--config", config], {
        env,
        pauseAt: [point],
        onPause: async (_p, cli) => {
          process.kill(cli, "SIGKILL");
          return "killed";
        },
      });
      expect(r.signal).toBe("SIGKILL");
      expect({ latest: latestId(root), sets: sets(root) }).toEqual(before);
      const next = await nextRunSucceeds(config, env, root);
      expect(next.stderr).toMatch(new RegExp(`reaped what a killed run \\(pid ${r.pid}\\) left: .*\\.partial-`));
      void first;
    },
  );

  it("kill -9 at promote:latest.json: the set is complete (it verifies) but latest.json still names the previous one; the next run promotes its own", async () => {
    const { root, config, env } = setup("redis");
    await nextRunSucceeds(config, env, root);
    const before = { latest: latestId(root), sets: sets(root) };
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: ["promote:latest.json"],
      onPause: async (_p, cli) => {
        process.kill(cli, "SIGKILL");
        return "killed";
      },
    });
    expect(r.signal).toBe("SIGKILL");
    expect(latestId(root)).toBe(before.latest);
    const sealed = sets(root).find((s) => !before.sets.includes(s))!;
    expect(sealed).toBeDefined();
    const v = await runCli(["verify", "--config", config, "--set", sealed], { env });
    expect(v.code, v.stderr).toBe(0);
    expect(staged(root)).toEqual([]);
    await nextRunSucceeds(config, env, root);
  });
});
