import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserError } from "../pipeline/errors.js";
import { postWebhook, resolveWebhook } from "../pipeline/webhook.js";
import { runCli } from "./cli.js";
import { writeDrill, writeSet } from "./fixtures/sets.js";
import { useTempDir } from "./services/index.js";

const tmp = useTempDir("webhook");
const H = 3_600_000;
const TOKEN = "T0KEN-sh0uld-never-be-printed";

type Received = { method: string; path: string; contentType: string; body: string };

/** A local endpoint whose behaviour each test sets: answer with a status, or hang. */
class Endpoint {
  server!: Server;
  received: Received[] = [];
  mode: { status: number } | "hang" = { status: 204 };
  private hanging: ServerResponse[] = [];

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        this.received.push({ method: req.method!, path: req.url!, contentType: req.headers["content-type"] ?? "", body });
        if (this.mode === "hang") this.hanging.push(res);
        else res.writeHead(this.mode.status).end();
      });
    });
    await new Promise<void>((res) => this.server.listen(0, "127.0.0.1", res));
  }
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/${TOKEN}`;
  }
  reset(mode: Endpoint["mode"]): void {
    this.received = [];
    this.mode = mode;
  }
  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.server.closeAllConnections();
    await new Promise((res) => this.server.close(res));
  }
}

const endpoint = new Endpoint();
beforeAll(() => endpoint.start());
afterAll(() => endpoint.stop());

let n = 0;
/** An output root whose freshness is WARNING (27h old) or OK (1h old), with a drill. */
async function root(ageH: number): Promise<string> {
  const r = join(tmp(), `r${++n}`, "backups");
  mkdirSync(r, { recursive: true });
  const set = await writeSet(r, { time: new Date(Date.now() - ageH * H) });
  await writeDrill(set, { finishedAt: new Date(Date.now() - (ageH - 0.5) * H) });
  return r;
}

describe("freshness webhook against a local HTTP server", () => {
  it("POSTs the JSON report when the status is WARNING; the URL's token is never printed", async () => {
    endpoint.reset({ status: 204 });
    const r = await runCli(["freshness", "--output", await root(27), "--webhook", endpoint.url, "--json"]);
    expect(r.code).toBe(1);
    expect(endpoint.received).toHaveLength(1);
    const got = endpoint.received[0]!;
    expect(got).toMatchObject({ method: "POST", path: `/hooks/${TOKEN}`, contentType: "application/json" });
    const payload = JSON.parse(got.body);
    expect(payload).toMatchObject({ check: "backup-drill freshness", status: "WARNING", exitCode: 1 });
    expect(payload.services.map((s: { service: string; status: string }) => [s.service, s.status])).toEqual([
      ["postgres", "WARNING"],
      ["redis", "WARNING"],
    ]);
    const doc = JSON.parse(r.stdout);
    expect(doc.webhook).toMatchObject({ sent: true, ok: true, status: 204, target: new URL(endpoint.url).origin });
    // The payload is the report the check printed (less what only the caller knows).
    const { webhook: _w, outputs: _o, ...report } = doc;
    expect(payload).toEqual(report);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it("sends nothing when the status is OK", async () => {
    endpoint.reset({ status: 204 });
    const r = await runCli(["freshness", "--output", await root(1), "--webhook", endpoint.url, "--json"]);
    expect(r.code).toBe(0);
    expect(endpoint.received).toEqual([]);
    expect(JSON.parse(r.stdout).webhook).toEqual({ sent: false, reason: "status is OK" });
  });

  it("a hanging endpoint times out: reported, the exit code stays the check's", async () => {
    endpoint.reset("hang");
    const t0 = Date.now();
    const r = await runCli(["freshness", "--output", await root(27), "--webhook", endpoint.url, "--webhook-timeout", "400", "--json"]);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expect(endpoint.received).toHaveLength(1);
    expect(JSON.parse(r.stdout).webhook).toMatchObject({ sent: true, ok: false, error: "timed out after 400ms" });
    expect(r.stderr).toContain("timed out after 400ms");
  });

  it("an endpoint answering 500 is reported, not a crash", async () => {
    endpoint.reset({ status: 500 });
    const r = await runCli(["freshness", "--output", await root(51), "--webhook", endpoint.url]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^FRESHNESS CRITICAL/);
    expect(r.stdout).toContain(`webhook: FAILED to reach ${new URL(endpoint.url).origin}: HTTP 500`);
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  it("a closed port is reported (ECONNREFUSED), not a crash", async () => {
    const closed = createServer();
    await new Promise<void>((res) => closed.listen(0, "127.0.0.1", res));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((res) => closed.close(res));
    const r = await runCli(["freshness", "--output", await root(27), "--webhook", `http://127.0.0.1:${port}/x`, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).webhook).toMatchObject({ sent: true, ok: false, error: "ECONNREFUSED" });
  });

  it("takes the URL from $BACKUP_DRILL_WEBHOOK_URL, and from the config as an env: reference with its timeout", async () => {
    endpoint.reset({ status: 200 });
    const out = await root(27);
    const fromEnv = await runCli(["freshness", "--output", out, "--quiet"], { env: { BACKUP_DRILL_WEBHOOK_URL: endpoint.url } });
    expect(fromEnv.code).toBe(1);
    expect(endpoint.received).toHaveLength(1);

    endpoint.reset("hang");
    const config = join(tmp(), "webhook-config.json");
    writeFileSync(config, JSON.stringify({ output: out, freshness: { webhook: { url: "env:HOOK_URL", timeoutMs: 300 } } }));
    const fromConfig = await runCli(["freshness", "--config", config, "--json"], { env: { HOOK_URL: endpoint.url } });
    expect(fromConfig.code).toBe(1);
    expect(endpoint.received).toHaveLength(1);
    expect(JSON.parse(fromConfig.stdout).webhook).toMatchObject({ ok: false, error: "timed out after 300ms" });
  });

  it("a malformed webhook URL is bad input: UNKNOWN (3), one line naming where it came from", async () => {
    const r = await runCli(["freshness", "--output", await root(1), "--webhook", "ftp://example.invalid/x"]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe("backup-drill freshness: error: --webhook: must be an http or https URL");
  });
});

describe("postWebhook / resolveWebhook", () => {
  it("returns a failure as data, never throws", async () => {
    endpoint.reset({ status: 404 });
    const target = resolveWebhook({ flag: endpoint.url, env: {}, baseDir: "/" })!;
    await expect(postWebhook(target, { a: 1 })).resolves.toMatchObject({ sent: true, ok: false, error: "HTTP 404" });
    expect(JSON.parse(endpoint.received[0]!.body)).toEqual({ a: 1 });
  });

  it("flag beats env beats config; nothing configured means no webhook", () => {
    const env = { BACKUP_DRILL_WEBHOOK_URL: "http://env.invalid/" };
    const config = { url: "http://config.invalid/", timeoutMs: 1234 };
    expect(resolveWebhook({ flag: "http://flag.invalid/", env, config, baseDir: "/" })).toMatchObject({ from: "--webhook", timeoutMs: 1234 });
    expect(resolveWebhook({ env, config, baseDir: "/" })?.url.host).toBe("env.invalid");
    expect(resolveWebhook({ env: {}, config, baseDir: "/" })?.url.host).toBe("config.invalid");
    expect(resolveWebhook({ env: {}, baseDir: "/" })).toBeUndefined();
    expect(() => resolveWebhook({ flag: "env:MISSING_HOOK", env: {}, baseDir: "/" })).toThrow(UserError);
  });
});
