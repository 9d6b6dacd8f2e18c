import { connect, type Socket } from "node:net";
import { clientTimeouts } from "../timeouts.js";
import { OperationError } from "../errors.js";

export type RespError = { index: number; message: string };

/**
 * Commands as RESP in one buffer: the sizes are summed first, then every
 * header and argument is written in place — no buffer per argument.
 */
export function encodeCommands(commands: (Buffer | string)[][]): Buffer {
  let size = 0;
  for (const args of commands) {
    size += 3 + String(args.length).length;
    for (const a of args) {
      const len = typeof a === "string" ? Buffer.byteLength(a) : a.length;
      size += 5 + String(len).length + len;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const args of commands) {
    at += out.write(`*${args.length}\r\n`, at, "latin1");
    for (const a of args) {
      if (typeof a === "string") {
        at += out.write(`$${Buffer.byteLength(a)}\r\n`, at, "latin1");
        at += out.write(a, at, "utf8");
      } else {
        at += out.write(`$${a.length}\r\n`, at, "latin1");
        at += a.copy(out, at);
      }
      at += out.write("\r\n", at, "latin1");
    }
  }
  return out;
}

/** One command as RESP. */
export function encodeCommand(args: (Buffer | string)[]): Buffer {
  return encodeCommands([args]);
}

/**
 * Writes commands whose replies are simple strings or errors (AUTH, SELECT,
 * RESTORE) straight onto a socket, as `redis-cli --pipe` does: one write per
 * batch, then count the replies. No per-command objects: this is the hot
 * path of a Redis restore.
 */
export class RespPipe {
  readonly #socket: Socket;
  #buffer = "";
  #waiting: { total: number; count: number; errors: RespError[]; resolve: (errors: RespError[]) => void; reject: (e: Error) => void } | undefined;
  #failed: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (err) => this.#fail(err));
    socket.on("close", () => this.#fail(new Error("connection closed")));
    // A batch whose replies stop coming (a stopped server, a black hole) fails instead of waiting forever.
    const ms = clientTimeouts().redisCommandMs;
    socket.setTimeout(ms, () => {
      if (!this.#waiting) return;
      this.#fail(new Error(`no reply within ${Math.round(ms / 1000)}s (timeouts.redisCommand)`));
      socket.destroy();
    });
  }

  static async open(host: string, port: number): Promise<RespPipe> {
    const ms = clientTimeouts().connectMs;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port, timeout: ms }, () => {
        s.setTimeout(0);
        resolve(s);
      });
      s.once("timeout", () => s.destroy(new Error(`cannot connect within ${Math.round(ms / 1000)}s (timeouts.connect)`)));
      s.once("error", reject);
    });
    return new RespPipe(socket);
  }

  #fail(err: Error): void {
    this.#failed ??= err;
    this.#waiting?.reject(err);
    this.#waiting = undefined;
  }

  #onData(chunk: Buffer): void {
    // Replies are single lines: "+OK" or "-ERR ...". Bulk or array replies are not expected here.
    this.#buffer += chunk.toString("latin1");
    let nl: number;
    while (this.#waiting && (nl = this.#buffer.indexOf("\r\n")) >= 0) {
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 2);
      if (line.startsWith("-")) this.#waiting.errors.push({ index: this.#waiting.total - this.#waiting.count, message: line.slice(1) });
      else if (!line.startsWith("+")) {
        this.#fail(new Error(`unexpected reply ${JSON.stringify(line.slice(0, 40))}`));
        return;
      }
      if (--this.#waiting.count === 0) {
        const w = this.#waiting;
        this.#waiting = undefined;
        w.resolve(w.errors);
      }
    }
  }

  /** Send `count` commands already encoded in `payload`; resolves with the error replies and their command's index. */
  send(payload: Buffer, count: number): Promise<RespError[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#waiting) return Promise.reject(new Error("RespPipe: one batch at a time"));
    if (count === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#waiting = { total: count, count, errors: [], resolve, reject };
      this.#socket.write(payload);
    });
  }

  /** AUTH and SELECT; any error is fatal. */
  async hello(opts: { username?: string; password?: string; db: number }): Promise<void> {
    const cmds: Buffer[] = [];
    if (opts.password !== undefined) cmds.push(encodeCommand(opts.username ? ["AUTH", opts.username, opts.password] : ["AUTH", opts.password]));
    cmds.push(encodeCommand(["SELECT", String(opts.db)]));
    const errors = await this.send(Buffer.concat(cmds), cmds.length);
    if (errors.length > 0) throw new OperationError(`redis target: ${errors[0]!.message}`);
  }

  close(): void {
    this.#socket.destroy();
  }
}
