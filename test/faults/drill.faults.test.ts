/**
 * Faults during `restore-drill` and `restore`: backup-drill killed at each
 * named point (throwaway servers and pg_restore must not survive; the next
 * run of any command reaps their temp dirs in one line), a throwaway server
 * stopped mid-restore, two drills of one set at once, prune during a drill,
 * a set removed under a drill, and a bad or interrupted drill record.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { secretEnv, SECRET_ENV, useServers } from "../services/index.js";
import { pidOf, processesUnder, runCli, settleProcesses, sets, sleep, tmpLeftovers, useOwnTmpdir, writeConfig } from "./helpers.js";

const servers = useServers();
const tmp = useOwnTmpdir("drill");
let root: string;
let config: string;
let env: Record<string, string>;
let setId: string;

beforeAll(async () => {
  root = join(tmp(), "out");
  config = writeConfig(tmp(), servers(), root, { services: ["postgres", "redis", "minio"] });
  env = { ...secretEnv(servers()), TMPDIR: tmp() };
  const r = await runCli(["backup", "--config", config, "--json"], { env });
  expect(r.code, r.stderr).toBe(0);
  setId = JSON.parse(r.stdout).id;
});

const drill = (opts: Parameters<typeof runCli>[1] extends infer O ? Partial<O> : never = {}, set = setId) =>
  runCli(["restore-drill", "--config", config, "--set", set], { env, ...opts });

/** Throwaway servers of this test's runs: processes working in this test's TMPDIR. */
const throwaways = () => processesUnder(tmp()).filter((p) => /postgres|redis-server|minio/.test(p.cmd) && !p.cmd.includes("toxiproxy"));

async function nextCommandReaps(killedPid: number) {
  const v = await runCli(["verify", "--config", config, "--set", setId, "--no-formats"], { env });
  expect(v.code, v.stderr).toBe(0);
  expect(v.stderr).toMatch(new RegExp(`reaped what a killed run \\(pid ${killedPid}\\) left: .*throwaway`));
  expect(tmpLeftovers(tmp())).toEqual({ registry: [], dirs: [] });
}

async function drillPasses() {
  const r = await drill();
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(readFileSync(join(root, setId, "restore-drill-summary.json"), "utf8"))).toMatchObject({ setId, ok: true });
}

describe("restore-drill: killed, stopped, raced", () => {
  it("kill -9 once the throwaway servers run: they die with it; the next command reaps their temp dirs in one line", async () => {
    let running: number[] = [];
    const r = await drill({
      pauseAt: ["drill:postgres:server-started"],
      onPause: async (_p, pid) => {
        running = throwaways().map((p) => p.pid);
        process.kill(pid, "SIGKILL");
        return "killed";
      },
    });
    expect(r.signal, r.stderr).toBe("SIGKILL");
    expect(running.length, r.stderr).toBeGreaterThan(0);
    expect(await settleProcesses(3000, tmp())).toEqual([]);
    expect(tmpLeftovers(tmp()).dirs.length).toBeGreaterThan(0); // the killed run's temp dirs, until the next run
    await nextCommandReaps(r.pid);
    await drillPasses();
  });

  it("kill -9 while pg_restore runs into the throwaway server: pg_restore and the servers die with it", async () => {
    let restoring: number | undefined;
    let postmaster: number | undefined;
    const r = await drill({
      pauseAt: ["before-step:postgres/restore/app", "step:postgres/restore/app"],
      onPause: async (point, pid) => {
        if (point.startsWith("before-step:")) {
          postmaster = pidOf([tmp()], /postgres -D /);
          process.kill(postmaster!, "SIGSTOP"); // pg_restore then waits on it
          return "continue";
        }
        restoring = processesUnder(join(root, setId)).find((p) => /pg_restore/.test(p.cmd))?.pid;
        process.kill(pid, "SIGKILL");
        return "killed";
      },
    });
    expect(r.signal, r.stderr).toBe("SIGKILL");
    expect(restoring).toBeGreaterThan(0);
    expect(await settleProcesses(3000, tmp(), join(root, setId))).toEqual([]);
    await nextCommandReaps(r.pid);
    await drillPasses();
  });

  it("SIGSTOP of the throwaway PostgreSQL during pg_restore: the stall (timeouts.restoreStall) ends it, exit 1 naming postgres — not a failed check", async () => {
    let postmaster: number | undefined;
    const r = await drill({
      pauseAt: ["before-step:postgres/restore/app"],
      onPause: async () => {
        postmaster = pidOf([tmp()], /postgres -D /);
        process.kill(postmaster!, "SIGSTOP");
        return "continue";
      },
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(60_000);
    expect(r.stderr).toMatch(/postgres\/restore\/app: pg_restore made no progress for 4s .*waiting for postgres at 127\.0\.0\.1:\d+/);
    expect(await settleProcesses(3000, tmp())).toEqual([]);
    expect(tmpLeftovers(tmp())).toEqual({ registry: [], dirs: [] });
    await drillPasses();
  });

  it("two drills of one set at once: the second exits 4 naming the first; the first passes", async () => {
    let second: Awaited<ReturnType<typeof drill>> | undefined;
    const first = await drill({
      pauseAt: ["drill:postgres:server-started"],
      onPause: async (_p, pid) => {
        second = await drill();
        void pid;
        return "continue";
      },
    });
    expect(second!.code, second!.stderr).toBe(4);
    expect(second!.stderr).toContain(`set ${setId} is being drilled by pid ${first.pid}`);
    expect(first.code, first.stderr).toBe(0);
  });

  it("prune during a drill of an older set: prune skips it and says why; the drill passes; a later prune removes it", async () => {
    const b = await runCli(["backup", "--config", config, "--json"], { env });
    expect(b.code, b.stderr).toBe(0);
    const newer = JSON.parse(b.stdout).id as string;
    // The newer set drilled first: then nothing but the drill in progress keeps the older one (the newest drilled set is a floor).
    expect((await drill({}, newer)).code).toBe(0);
    const pruneConfig = writeConfig(tmp(), servers(), root, { services: [], extra: { retention: { keepLast: 1 } } });
    let prune: Awaited<ReturnType<typeof runCli>> | undefined;
    const r = await drill({
      pauseAt: ["drill:postgres:server-started"],
      onPause: async () => {
        prune = await runCli(["prune", "--config", pruneConfig, "--json"], { env });
        return "continue";
      },
    });
    expect(prune!.code, prune!.stderr).toBe(0);
    expect(JSON.parse(prune!.stdout).skipped).toEqual([{ id: setId, reason: expect.stringMatching(new RegExp(`in use by restore-drill \\(pid ${r.pid}\\)`)) }]);
    expect(prune!.stderr).toContain(`prune: kept ${setId}: in use by restore-drill`);
    expect(r.code, r.stderr).toBe(0);
    expect(sets(root)).toEqual([setId, newer].sort());
    const later = await runCli(["prune", "--config", pruneConfig, "--json"], { env });
    expect(later.code, later.stderr).toBe(0);
    expect(JSON.parse(later.stdout).skipped).toEqual([]);
    expect(sets(root)).toEqual([newer]);
    setId = newer;
  });

  it("a set removed by hand during a drill is named as vanished", async () => {
    const b = await runCli(["backup", "--config", config, "--json"], { env });
    const doomed = JSON.parse(b.stdout).id as string;
    const r = await drill(
      {
        pauseAt: ["before-step:postgres/restore/app"],
        onPause: async () => {
          rmSync(join(root, doomed), { recursive: true, force: true });
          return "continue";
        },
      },
      doomed,
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`set ${doomed} vanished from ${root} during the drill`);
    expect(await settleProcesses(3000, tmp())).toEqual([]);
  });
});

describe("the drill record never locks a good set out", () => {
  it("kill -9 while the drill record is written: verify and the next drill are fine", async () => {
    const r = await drill({
      pauseAt: ["drill:summary"],
      onPause: async (_p, pid) => {
        process.kill(pid, "SIGKILL");
        return "killed";
      },
    });
    expect(r.signal, r.stderr).toBe("SIGKILL");
    const v = await runCli(["verify", "--config", config, "--set", setId, "--json"], { env });
    expect(v.code, v.stderr).toBe(0);
    await drillPasses();
  });

  it("a corrupt drill record (or a pair that disagrees, as older versions could leave): verify passes and reports it; freshness says unproven; the next drill rewrites it", async () => {
    const summary = join(root, setId, "restore-drill-summary.json");
    writeFileSync(summary, readFileSync(summary, "utf8").replace('"ok": true', '"ok": false'));
    writeFileSync(`${summary}.sha256`, `${"0".repeat(64)}  restore-drill-summary.json\n`);
    const v = await runCli(["verify", "--config", config, "--set", setId, "--json"], { env });
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).drillRecord).toEqual({ status: "invalid", problem: expect.stringContaining("does not match its own sha256") });
    const human = await runCli(["verify", "--config", config, "--set", setId], { env });
    expect(human.stdout).toContain("drill record invalid (the data is not affected");
    const f = await runCli(["freshness", "--config", config, "--json"], { env });
    expect(f.code).toBe(1); // WARNING: not proven
    expect(JSON.parse(f.stdout).summary).toMatch(/not proven/);
    await drillPasses();
    expect(existsSync(`${summary}.sha256`)).toBe(false);
    const again = await runCli(["freshness", "--config", config, "--json"], { env });
    expect(again.code, again.stdout).toBe(0);
  });
});

describe("restore into real servers: killed", () => {
  const restoreEnv = () => ({ ...env, TARGET_PG: servers().postgres.password.reveal() });
  function targets(): string {
    const path = join(tmp(), "targets.json");
    const s = servers();
    writeFileSync(path, JSON.stringify({ postgres: { host: s.postgres.host, port: s.postgres.port, user: "postgres", password: "env:TARGET_PG" } }));
    return path;
  }
  // A config without sources: the target is not a configured backup source.
  const restoreConfig = () => writeConfig(tmp(), servers(), root, { services: [] });

  it("kill -9 while pg_restore writes into the target: pg_restore dies with it; the next restore succeeds", async () => {
    const pid = servers().postgres.pid;
    let restoring: number | undefined;
    const r = await runCli(["restore", "--config", restoreConfig(), "--set", setId, "--target-config", targets(), "--services", "postgres", "--rename-db", "app=app_killed"], {
      env: restoreEnv(),
      pauseAt: ["before-step:postgres/restore/app_killed", "step:postgres/restore/app_killed"],
      onPause: async (point, cli) => {
        if (point.startsWith("before-step:")) {
          process.kill(pid, "SIGSTOP");
          return "continue";
        }
        restoring = processesUnder(join(root, setId)).find((p) => /pg_restore/.test(p.cmd))?.pid;
        process.kill(cli, "SIGKILL");
        return "killed";
      },
    });
    try {
      expect(r.signal, r.stderr).toBe("SIGKILL");
      expect(restoring).toBeGreaterThan(0);
      expect(await settleProcesses(3000, join(root, setId))).toEqual([]);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const next = await runCli(["restore", "--config", restoreConfig(), "--set", setId, "--target-config", targets(), "--services", "postgres", "--rename-db", "app=app_after"], { env: restoreEnv() });
    expect(next.code, next.stderr).toBe(0);
    void SECRET_ENV;
  });

  it("kill -9 while the throwaway Redis holds the set's RDB for a key copy: it dies; the next command reaps it", async () => {
    const s = servers();
    const path = join(tmp(), "targets-redis.json");
    writeFileSync(path, JSON.stringify({ redis: { host: s.redis.host, port: s.redis.port, password: "env:TARGET_REDIS" } }));
    let loaded: number[] = [];
    const r = await runCli(["restore", "--config", restoreConfig(), "--set", setId, "--target-config", path, "--services", "redis", "--dry-run"], {
      env: { ...env, TARGET_REDIS: s.redis.password.reveal() },
    });
    expect(r.code).toBe(2); // the target has keys: a real run would be refused without --force
    const k = await runCli(["restore", "--config", restoreConfig(), "--set", setId, "--target-config", path, "--services", "redis", "--force"], {
      env: { ...env, TARGET_REDIS: s.redis.password.reveal() },
      pauseAt: ["restore:redis:loaded"],
      onPause: async (_p, pid) => {
        loaded = throwaways().map((p) => p.pid);
        process.kill(pid, "SIGKILL");
        return "killed";
      },
    });
    expect(k.signal).toBe("SIGKILL");
    expect(loaded.length).toBe(1);
    expect(await settleProcesses(3000, tmp())).toEqual([]);
    await sleep(100);
    await nextCommandReaps(k.pid);
  });
});
