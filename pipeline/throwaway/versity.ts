import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ToolPaths } from "../config.js";
import { Secret } from "../secret.js";
import { resolveTool } from "../tools.js";
import { freePort, makeTempDir, spawnServer, type ServerProcess } from "./process.js";
import type { MinioServer } from "./servers.js";

/**
 * A throwaway Versity Gateway (Apache-2.0): S3 over a plain directory (posix
 * backend, metadata in extended attributes), on a free loopback port. A
 * second, independent S3 server, so nothing in the tool leans on MinIO.
 * The root keys go in through the environment, never argv.
 */
export type VersityServer = MinioServer & { root: string };

export async function startVersity(opts: { tools: ToolPaths; accessKey?: Secret; secretKey?: Secret }): Promise<VersityServer> {
  const bin = resolveTool("versitygw", opts.tools);
  const accessKey = opts.accessKey ?? new Secret(`vgw${randomBytes(4).toString("hex")}`, "generated");
  const secretKey = opts.secretKey ?? new Secret(randomBytes(18).toString("base64url"), "generated");
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = makeTempDir("versity");
    const root = join(dir, "data");
    mkdirSync(root);
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      const server: ServerProcess = await spawnServer({
        name: `throwaway versitygw :${port}`,
        bin,
        args: ["--port", `127.0.0.1:${port}`, "--quiet", "posix", root],
        dir,
        port,
        env: { ...process.env, ROOT_ACCESS_KEY: accessKey.reveal(), ROOT_SECRET_KEY: secretKey.reveal() },
        stopSignal: "SIGTERM",
        // Any S3 answer (an anonymous request is refused with XML) means it listens.
        ready: async () => (await fetch(`${endpoint}/`)).status > 0,
      });
      return { ...server, endpoint, accessKey, secretKey, root };
    } catch (err) {
      last = err;
      if (!/address already in use|EADDRINUSE|bind/i.test((err as Error).message)) throw err;
    }
  }
  throw last;
}
