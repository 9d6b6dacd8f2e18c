import type { Redis } from "ioredis";
import { connectRedis, type RedisTarget } from "../../probes/redis.js";
import { OperationError } from "../errors.js";
import { encodeCommands, RespPipe } from "./resp-pipe.js";

export type KeyCopyOptions = {
  dbs: number[];
  /** SCAN MATCH pattern (glob). */
  pattern?: string;
  /** RESTORE ... REPLACE: overwrite keys that exist on the target. */
  replace: boolean;
  batch?: number;
  onProgress?: (db: number, copied: number) => void;
};

export type KeyCopyResult = { keys: number; skippedExpired: number; ms: number };

type Batch = { keys: Buffer[]; payloads: Buffer[]; ttls: number[] };

/** DUMP and PTTL of every key given, in one round trip (a read-only script on the throwaway source). */
const DUMP_BATCH_LUA = `
local out = {}
for i, k in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('DUMP', k)
  out[2 * i] = redis.call('PTTL', k)
end
return out`;

/** SCAN one page and DUMP + PTTL its keys in one script call. */
async function readBatch(src: Redis, cursor: string, count: number, pattern?: string): Promise<{ next: string; batch: Batch; expired: number }> {
  const args = pattern ? ["MATCH", pattern, "COUNT", String(count)] : ["COUNT", String(count)];
  const [next, keys] = (await src.callBuffer("SCAN", cursor, ...args)) as [Buffer, Buffer[]];
  const batch: Batch = { keys: [], payloads: [], ttls: [] };
  let expired = 0;
  if (keys.length > 0) {
    const replies = (await src.callBuffer("EVAL", DUMP_BATCH_LUA, String(keys.length), ...keys)) as (Buffer | number | null)[];
    for (let i = 0; i < keys.length; i++) {
      const payload = replies[2 * i];
      const ttl = Number(replies[2 * i + 1]);
      if (!Buffer.isBuffer(payload) || ttl === -2) {
        expired++; // expired between SCAN and DUMP
        continue;
      }
      batch.keys.push(keys[i]!);
      batch.payloads.push(payload);
      batch.ttls.push(ttl > 0 ? ttl : 0);
    }
  }
  return { next: next.toString(), batch, expired };
}

/** RESTORE a batch on the target in one write; the first failure names its key. */
async function writeBatch(dst: RespPipe, b: Batch, replace: boolean, db: number): Promise<void> {
  if (b.keys.length === 0) return;
  const commands = b.keys.map((k, i) => (replace ? ["RESTORE", k, String(b.ttls[i]), b.payloads[i]!, "REPLACE"] : ["RESTORE", k, String(b.ttls[i]), b.payloads[i]!]));
  const errors = await dst.send(encodeCommands(commands), commands.length);
  if (errors.length > 0) {
    const first = errors[0]!;
    const key = b.keys[first.index]!.toString("utf8");
    throw new OperationError(`redis RESTORE of ${JSON.stringify(key)} into db${db} failed (${errors.length} key(s) in all): ${first.message}`);
  }
}

/**
 * Copy keys from a server holding the set's data (a throwaway Redis loaded
 * from the RDB) to a running target with DUMP / RESTORE, TTLs kept.
 * Reading the next page overlaps writing the previous one; the writes go
 * out as raw RESP, the way redis-cli --pipe sends them.
 */
export async function copyRedisKeys(source: RedisTarget, target: RedisTarget, opts: KeyCopyOptions): Promise<KeyCopyResult> {
  const t0 = Date.now();
  const count = opts.batch ?? 2000;
  let keys = 0;
  let skippedExpired = 0;
  for (const db of opts.dbs) {
    const src = await connectRedis(source, db);
    let dst: RespPipe;
    try {
      dst = await RespPipe.open(target.host, target.port);
      await dst.hello({ username: target.username, password: target.password?.reveal(), db });
    } catch (err) {
      src.disconnect();
      throw new OperationError(`redis ${target.host}:${target.port}: ${(err as Error).message}`, { cause: err });
    }
    try {
      let cursor = "0";
      let pending: Promise<void> = Promise.resolve();
      let copiedInDb = 0;
      do {
        const page = await readBatch(src, cursor, count, opts.pattern);
        cursor = page.next;
        skippedExpired += page.expired;
        await pending;
        pending = writeBatch(dst, page.batch, opts.replace, db);
        copiedInDb += page.batch.keys.length;
        if (copiedInDb % (count * 50) < page.batch.keys.length) opts.onProgress?.(db, copiedInDb);
      } while (cursor !== "0");
      await pending;
      keys += copiedInDb;
    } finally {
      src.disconnect();
      dst.close();
    }
  }
  return { keys, skippedExpired, ms: Date.now() - t0 };
}

/** Redis glob (as in SCAN MATCH / KEYS) as a RegExp, for filtering recorded keys the same way. */
export function redisGlobToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "\\" && i + 1 < glob.length) re += glob[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    else if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        let cls = glob.slice(i + 1, end);
        if (cls.startsWith("^")) cls = `^${cls.slice(1).replace(/\\/g, "\\\\")}`;
        else cls = cls.replace(/\\/g, "\\\\");
        re += `[${cls}]`;
        i = end;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}
