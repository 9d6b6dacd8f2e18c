import type { Redis } from "ioredis";
import { connectRedis, type RedisTarget } from "../../probes/redis.js";
import { OperationError } from "../errors.js";
import { RespPipe } from "./resp-pipe.js";

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

/**
 * One script call per SCAN page on the throwaway source: DUMP and PTTL each
 * key and write its RESTORE command as RESP right there, so the whole page
 * comes back as one string that goes to the target unchanged — Node never
 * handles a key's payload on its own. Keys that expired since the SCAN are
 * left out; their positions are not in the returned index list.
 */
const RESTORE_PAGE_LUA = `
local head = ARGV[1] == '1' and '*5\\r\\n$7\\r\\nRESTORE\\r\\n$' or '*4\\r\\n$7\\r\\nRESTORE\\r\\n$'
local tail = ARGV[1] == '1' and '\\r\\n$7\\r\\nREPLACE\\r\\n' or '\\r\\n'
local parts, included, n = {}, {}, 0
for i, k in ipairs(KEYS) do
  local payload = redis.call('DUMP', k)
  local ttl = redis.call('PTTL', k)
  if payload and ttl ~= -2 then
    if ttl < 0 then ttl = 0 end
    local t = tostring(ttl)
    -- pieces go into one table and are joined once: no intermediate copies of a payload
    parts[n + 1] = head; parts[n + 2] = #k; parts[n + 3] = '\\r\\n'; parts[n + 4] = k
    parts[n + 5] = '\\r\\n$'; parts[n + 6] = #t; parts[n + 7] = '\\r\\n'; parts[n + 8] = t
    parts[n + 9] = '\\r\\n$'; parts[n + 10] = #payload; parts[n + 11] = '\\r\\n'; parts[n + 12] = payload
    parts[n + 13] = tail
    n = n + 13
    included[#included + 1] = i
  end
end
return {table.concat(parts), included}`;

type Page = { next: string; keys: Buffer[]; resp: Buffer; included: number[] };

async function readPage(src: Redis, cursor: string, count: number, replace: boolean, pattern?: string): Promise<Page> {
  const args = pattern ? ["MATCH", pattern, "COUNT", String(count)] : ["COUNT", String(count)];
  const [next, keys] = (await src.callBuffer("SCAN", cursor, ...args)) as [Buffer, Buffer[]];
  if (keys.length === 0) return { next: next.toString(), keys, resp: Buffer.alloc(0), included: [] };
  const [resp, included] = (await src.callBuffer("EVAL", RESTORE_PAGE_LUA, String(keys.length), ...keys, replace ? "1" : "0")) as [Buffer, number[]];
  return { next: next.toString(), keys, resp, included: included.map(Number) };
}

/** Send a page's RESTORE commands; the first failure names its key. */
async function writePage(dst: RespPipe, page: Page, db: number): Promise<void> {
  const errors = await dst.send(page.resp, page.included.length);
  if (errors.length > 0) {
    const first = errors[0]!;
    const key = page.keys[page.included[first.index]! - 1]!.toString("utf8");
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
  const count = opts.batch ?? 5000;
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
        const page = await readPage(src, cursor, count, opts.replace, opts.pattern);
        cursor = page.next;
        skippedExpired += page.keys.length - page.included.length;
        await pending;
        pending = writePage(dst, page, db);
        pending.catch(() => {}); // surfaced by the next await; a rejection must not go unhandled meanwhile
        copiedInDb += page.included.length;
        if (copiedInDb % (count * 50) < page.included.length) opts.onProgress?.(db, copiedInDb);
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

/**
 * Copy every FUNCTION library from a server holding the set's data to a
 * target (FUNCTION DUMP / FUNCTION RESTORE): APPEND refuses a library the
 * target has already, REPLACE (--force) overwrites it. Returns how many
 * libraries were copied.
 */
export async function copyRedisFunctions(source: RedisTarget, target: RedisTarget, opts: { replace: boolean }): Promise<number> {
  const src = await connectRedis(source);
  let payload: Buffer;
  let count: number;
  try {
    count = ((await src.call("FUNCTION", "LIST")) as unknown[]).length;
    payload = (await src.callBuffer("FUNCTION", "DUMP")) as Buffer;
  } finally {
    src.disconnect();
  }
  if (count === 0) return 0;
  const dst = await connectRedis(target);
  try {
    await dst.callBuffer("FUNCTION", "RESTORE", payload, opts.replace ? "REPLACE" : "APPEND");
  } catch (err) {
    throw new OperationError(`redis FUNCTION RESTORE on ${target.host}:${target.port} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    dst.disconnect();
  }
  return count;
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
