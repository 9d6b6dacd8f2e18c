/**
 * A fault proxy (Toxiproxy) between backup-drill and each server: latency,
 * a bandwidth limit, connection resets and a black hole (traffic accepted,
 * never answered). The fault is switched on once the set is staged (after
 * the preflight), so it hits the real work. Each run is bounded, ends with
 * the documented outcome naming the server, leaves nothing staged and no
 * child behind, and the next run through the healed proxy succeeds.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretEnv, secretValues, useServers } from "../services/index.js";
import { latestId, printsNoSecret, runCli, settleProcesses, staged, startToxiproxy, tmpLeftovers, useOwnTmpdir, writeConfig, type Toxiproxy, type Where } from "./helpers.js";

const servers = useServers();
const tmp = useOwnTmpdir("proxy");
let toxi: Toxiproxy;
const via: Where = {};

beforeAll(async () => {
  toxi = await startToxiproxy();
  const s = servers();
  via.postgres = { host: "127.0.0.1", port: await toxi.proxy("postgres", `${s.postgres.host}:${s.postgres.port}`) };
  via.redis = { host: "127.0.0.1", port: await toxi.proxy("redis", `${s.redis.host}:${s.redis.port}`) };
  via.minio = { endpoint: `http://127.0.0.1:${await toxi.proxy("minio", new URL(s.minio.endpoint).host)}` };
});
afterAll(async () => {
  await toxi?.stop();
});

type Service = "postgres" | "redis" | "minio";
const SERVICES: Service[] = ["postgres", "redis", "minio"];
const proxyAddr = (s: Service) => (s === "minio" ? new URL(via.minio!.endpoint).host : `${via[s]!.host}:${via[s]!.port}`);

let n = 0;
function setup(service: Service, extra: Record<string, unknown> = {}) {
  const root = join(tmp(), `out-${service}-${++n}`);
  const config = writeConfig(tmp(), servers(), root, { services: [service], via, extra });
  return { root, config, env: { ...secretEnv(servers()), TMPDIR: tmp() } };
}

/** Run a backup with `fault` switched on once the set is staged; heal the proxy afterwards. */
async function backupWith(service: Service, config: string, env: Record<string, string>, fault: () => Promise<void>) {
  try {
    const r = await runCli(["backup", "--config", config], {
      env,
      pauseAt: ["backup:staged"],
      onPause: async () => {
        await fault();
        return "continue";
      },
    });
    expect(printsNoSecret(r, secretValues(servers()))).toBe(true); // error paths quote servers' and tools' messages
    return r;
  } finally {
    await toxi.clear(service);
  }
}

async function leavesNothing(root: string) {
  expect(staged(root)).toEqual([]);
  expect(await settleProcesses(3000, root)).toEqual([]);
  expect(tmpLeftovers(tmp()).registry).toEqual([]);
}

async function nextRunSucceeds(config: string, env: Record<string, string>, root: string) {
  const r = await runCli(["backup", "--config", config, "--json"], { env });
  expect(r.code, r.stderr).toBe(0);
  expect(latestId(root)).toBe(JSON.parse(r.stdout).id);
}

describe.each(SERVICES)("%s behind a fault proxy", (service) => {
  it("latency (40 ms each way): the backup completes, in bounded time (round trips per page, not per key)", async () => {
    const { root, config, env } = setup(service);
    const r = await backupWith(service, config, env, async () => {
      await toxi.toxic(service, "latency", { latency: 40 }, "downstream");
      await toxi.toxic(service, "latency", { latency: 40 }, "upstream");
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.ms).toBeLessThan(60_000);
    await leavesNothing(root);
    expect(latestId(root)).toBeDefined();
  });

  it("bandwidth limit (1 KB/s): the phase deadline ends it, exit 1 naming the service", async () => {
    const { root, config, env } = setup(service, { timeouts: { connect: "2s", redisCommand: "3s", pgQuery: "4s", s3Request: "3s", stall: "30s", restoreStall: "30s", phase: "6s" } });
    const r = await backupWith(service, config, env, async () => {
      await toxi.toxic(service, "bandwidth", { rate: 1 }, "downstream");
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(25_000);
    expect(r.stderr).toMatch(new RegExp(`error: ${service}.*(phase deadline of 6s|no answer|timed out|no data|timeout)`, "i"));
    await leavesNothing(root);
    await nextRunSucceeds(config, env, root);
  });

  it("connection reset: exit 1 with the cause, naming the server", async () => {
    const { root, config, env } = setup(service);
    const r = await backupWith(service, config, env, async () => {
      await toxi.toxic(service, "reset_peer", { timeout: 0 }, "upstream");
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(25_000);
    expect(r.stderr).toMatch(new RegExp(`error: ${service}[ /]`));
    expect(r.stderr).toMatch(/reset|closed|ECONNRESET|EOF|terminated|socket hang up|lost/i);
    expect(r.stderr).toContain(proxyAddr(service));
    await leavesNothing(root);
    await nextRunSucceeds(config, env, root);
  });

  it("black hole (accepted, never answered): bounded by the stall and command timeouts, exit 1 naming the server", async () => {
    const { root, config, env } = setup(service);
    const r = await backupWith(service, config, env, async () => {
      await toxi.toxic(service, "timeout", { timeout: 0 }, "upstream");
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(25_000);
    expect(r.stderr).toMatch(new RegExp(`error: ${service}[ /]`));
    expect(r.stderr).toMatch(/no progress|timed out|timeout|no answer/i);
    expect(r.stderr).toContain(proxyAddr(service));
    await leavesNothing(root);
    await nextRunSucceeds(config, env, root);
  });
});
