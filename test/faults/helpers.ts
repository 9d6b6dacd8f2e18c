/**
 * The fault suite's tools: a TMPDIR of its own per test file (the runs'
 * temp dirs and registry live there, so nothing else on the machine can
 * fail these tests, and they look at nothing else), the CLI run with a
 * stopwatch and a hook at its pause points, Toxiproxy between the tool and
 * a server, and the process table filtered by this test's own paths.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { freePort, makeTempDir, spawnServer, type ServerProcess } from "../../pipeline/throwaway/process.js";
import { BIN, REPO } from "../cli.js";
import { SECRET_ENV, type SandboxServers } from "../services/index.js";

/** A TMPDIR for this test file only; set for this process (throwaway servers) and handed to every CLI run. */
export function useOwnTmpdir(name: string): () => string {
  let dir: string | undefined;
  const previous = process.env.TMPDIR;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `backup-drill-faults-${name}-`));
    chmodSync(dir, 0o755); // the postgres user runs throwaway PostgreSQL servers in here
    process.env.TMPDIR = dir;
  });
  afterAll(() => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return () => dir!;
}

/** Fast deadlines for tests (the defaults are hours). */
export const TEST_TIMEOUTS = { connect: "2s", redisCommand: "2s", pgQuery: "4s", s3Request: "3s", stall: "3s", restoreStall: "4s", phase: "40s" };

export type Where = { postgres?: { host: string; port: number }; redis?: { host: string; port: number }; minio?: { endpoint: string } };

/** A config for the servers (each address replaceable by a proxy's), secrets by env reference. */
export function writeConfig(dir: string, s: SandboxServers, output: string, opts: { services?: ("postgres" | "redis" | "minio")[]; via?: Where; extra?: Record<string, unknown> } = {}): string {
  const services = opts.services ?? ["postgres", "redis", "minio"];
  const pg = opts.via?.postgres ?? s.postgres;
  const rd = opts.via?.redis ?? s.redis;
  const cfg: Record<string, unknown> = { output, timeouts: TEST_TIMEOUTS, retention: "off" };
  if (services.includes("postgres")) cfg.postgres = { host: pg.host, port: pg.port, user: "postgres", password: `env:${SECRET_ENV.pg}`, databases: ["app"], jobs: 2 };
  if (services.includes("redis")) cfg.redis = { host: rd.host, port: rd.port, password: `env:${SECRET_ENV.redis}`, bgsaveTimeout: "20s", sampleSize: 200 };
  if (services.includes("minio")) {
    cfg.minio = { endpoint: opts.via?.minio?.endpoint ?? s.minio.endpoint, accessKey: `env:${SECRET_ENV.minioAccess}`, secretKey: `env:${SECRET_ENV.minioSecret}`, buckets: ["assets"], canary: false };
  }
  Object.assign(cfg, opts.extra ?? {});
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(cfg, null, 2));
  return path;
}

export type Run = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; pid: number; ms: number };

export type PauseHandler = (point: string, pid: number) => Promise<"continue" | "killed">;

/**
 * Run the CLI. With `pauseAt`, the run stops itself at those points
 * (BACKUP_DRILL_PAUSE_AT); `onPause` acts and says whether to SIGCONT it
 * or whether it killed it.
 */
export function runCli(args: string[], opts: { env: Record<string, string>; pauseAt?: string[]; onPause?: PauseHandler }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.pauseAt) env.BACKUP_DRILL_PAUSE_AT = opts.pauseAt.join(",");
    else delete env.BACKUP_DRILL_PAUSE_AT;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let pending = Promise.resolve();
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      const text = d.toString();
      stderr += text;
      for (const m of text.matchAll(/^backup-drill: paused at (\S+) \(pid (\d+)\)$/gm)) {
        const point = m[1]!;
        const pid = Number(m[2]);
        pending = pending.then(async () => {
          await waitStopped(pid);
          const what = opts.onPause ? await opts.onPause(point, pid) : "continue";
          if (what === "continue") process.kill(pid, "SIGCONT");
        });
      }
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      void pending.finally(() => resolve({ code, signal, stdout, stderr, pid: child.pid!, ms: Date.now() - t0 }));
    });
  });
}

async function waitStopped(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
    } catch {
      return;
    }
    await sleep(10);
  }
}

/** No secret of the servers in what a run printed. */
export function printsNoSecret(r: Pick<Run, "stdout" | "stderr">, secrets: string[]): boolean {
  return secrets.every((s) => !r.stdout.includes(s) && !r.stderr.includes(s));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Live processes whose working directory or command line is under one of `dirs`: what this test started. */
export function processesUnder(...dirs: string[]): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      if (dirs.some((d) => cwd.startsWith(d) || cmd.includes(d))) out.push({ pid, cmd });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** Wait until no process of this test's paths is left (or give up after `ms`). */
export async function settleProcesses(ms: number, ...dirs: string[]): Promise<{ pid: number; cmd: string }[]> {
  const until = Date.now() + ms;
  for (;;) {
    const left = processesUnder(...dirs);
    if (left.length === 0 || Date.now() > until) return left;
    await sleep(100);
  }
}

/** What a run left in its TMPDIR: registered leftovers and temp dirs (the registry dir itself is not a leftover). */
export function tmpLeftovers(tmp: string): { registry: string[]; dirs: string[] } {
  const registryDir = join(tmp, "backup-drill-registry");
  // Entries of this test process (its own servers) are not a run's leftovers.
  const registry = (existsSync(registryDir) ? readdirSync(registryDir) : []).filter((n) => !n.startsWith(`${process.pid}-`));
  const own = new Set(
    (existsSync(registryDir) ? readdirSync(registryDir) : [])
      .filter((n) => n.startsWith(`${process.pid}-`))
      .map((n) => {
        try {
          return JSON.parse(readFileSync(join(registryDir, n), "utf8")).path as string;
        } catch {
          return "";
        }
      }),
  );
  const dirs = readdirSync(tmp).filter((n) => n.startsWith("backup-drill-") && n !== "backup-drill-registry" && !own.has(join(tmp, n)));
  return { registry, dirs };
}

export function staged(root: string): string[] {
  return existsSync(root) ? readdirSync(root).filter((n) => n.startsWith(".partial-") || n.endsWith(".tmp")) : [];
}

export function sets(root: string): string[] {
  return existsSync(root) ? readdirSync(root).filter((n) => /^\d{4}-\d\d-\d\dT/.test(n)).sort() : [];
}

export function latestId(root: string): string | undefined {
  try {
    return JSON.parse(readFileSync(join(root, "latest.json"), "utf8")).id;
  } catch {
    return undefined;
  }
}

/** The pid of the process whose command line starts with `bin` and mentions `arg` (a server of ours). */
export function pidOf(dirs: string[], match: RegExp): number | undefined {
  return processesUnder(...dirs).find((p) => match.test(p.cmd))?.pid;
}

// ---------------------------------------------------------------------------
// Toxiproxy
// ---------------------------------------------------------------------------

export type Toxiproxy = ServerProcess & {
  api: string;
  /** A proxy on a free loopback port in front of `upstream` ("127.0.0.1:5432"); returns its port. */
  proxy(name: string, upstream: string): Promise<number>;
  toxic(proxy: string, type: "latency" | "bandwidth" | "reset_peer" | "timeout", attributes: Record<string, number>, stream?: "downstream" | "upstream"): Promise<void>;
  clear(proxy: string): Promise<void>;
};

export async function startToxiproxy(): Promise<Toxiproxy> {
  const bin = resolveToxiproxy();
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const dir = makeTempDir("toxiproxy");
  const server = await spawnServer({
    name: `toxiproxy :${port}`,
    bin,
    args: ["-host", "127.0.0.1", "-port", String(port)],
    dir,
    port,
    stopSignal: "SIGTERM",
    ready: async () => (await fetch(`${api}/version`)).ok,
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, { method, headers: { "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });
    if (!res.ok && res.status !== 404) throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.status === 204 ? undefined : res.json().catch(() => undefined);
  };
  const toxics = new Map<string, string[]>();
  return {
    ...server,
    api,
    async proxy(name, upstream) {
      const listen = await freePort();
      await call("POST", "/proxies", { name, listen: `127.0.0.1:${listen}`, upstream, enabled: true });
      return listen;
    },
    async toxic(proxy, type, attributes, stream = "downstream") {
      const name = `${type}-${stream}-${Math.random().toString(36).slice(2, 7)}`;
      await call("POST", `/proxies/${proxy}/toxics`, { name, type, stream, toxicity: 1, attributes });
      toxics.set(proxy, [...(toxics.get(proxy) ?? []), name]);
    },
    async clear(proxy) {
      for (const t of toxics.get(proxy) ?? []) await call("DELETE", `/proxies/${proxy}/toxics/${t}`);
      toxics.delete(proxy);
      // Connections made while a toxic was on may be wedged: recycle the proxy.
      await call("POST", `/proxies/${proxy}`, { enabled: false });
      await call("POST", `/proxies/${proxy}`, { enabled: true });
    },
  };
}

export function resolveToxiproxy(): string {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/local/bin", join(process.env.HOME ?? "/root", "go", "bin")]) {
    const p = join(dir, "toxiproxy-server");
    if (existsSync(p)) return p;
  }
  throw new Error("toxiproxy-server not found: run scripts/ensure-tools.sh (it builds it with go install)");
}

export function ensureDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

export type { ChildProcess };
