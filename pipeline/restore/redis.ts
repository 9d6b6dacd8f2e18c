import { connectRedis, decodeKey, digestKeys, parseInfo, parseKeyspace, type RedisTarget } from "../../probes/redis.js";
import type { DrillCheck } from "../drill-summary.js";
import type { RedisSample } from "../manifest.js";
import { check, nameSome } from "./checks.js";
import { redisGlobToRegExp } from "./redis-copy.js";
import type { LoadedSet } from "./set.js";

export type RedisCheckOptions = {
  now: Date;
  /** Only these dbs were restored (default: all the set has). */
  dbs?: number[];
  /** Only keys matching this glob were restored: sampled keys are filtered the same way. */
  pattern?: string;
  /** The key counts say nothing (a pattern restore, or a target db that had keys): skip them. */
  skipKeyspace?: boolean;
};

/** Why a sampled key does not match on the target, or undefined when it does. */
export function keyMismatch(
  sample: RedisSample,
  actual: { type: string; digest: string; ttlMs: number },
  window: { backupStarted: number; backupFinished: number; now: number },
): string | undefined {
  if (actual.type === "none") {
    // A key with a TTL may have expired since: the RDB keeps absolute expiry times.
    if (sample.ttlMs > 0 && window.backupFinished + sample.ttlMs <= window.now) return undefined;
    if (sample.ttlMs > 0 && window.backupStarted + sample.ttlMs <= window.now) return undefined;
    return "missing";
  }
  if (actual.type !== sample.type) return `type ${actual.type}, backup has ${sample.type}`;
  if (actual.digest !== sample.digest) return "value differs";
  if (sample.ttlMs === -1 && actual.ttlMs !== -1) return `has a TTL (${actual.ttlMs} ms), backup has none`;
  if (sample.ttlMs > 0 && actual.ttlMs === -1) return "lost its TTL";
  if (sample.ttlMs > 0 && actual.ttlMs > sample.ttlMs + 1_000) return `TTL ${actual.ttlMs} ms, longer than the ${sample.ttlMs} ms recorded`;
  return undefined;
}

function keyLabel(s: RedisSample): string {
  return s.keyEncoding === "base64" ? `base64:${s.key}` : s.key;
}

/**
 * The drill's Redis checks on a server holding the restored data: per db,
 * the persistent key count exactly and the keys with a TTL (which may only
 * have expired since), then every sampled key by type, value digest and TTL.
 */
export async function checkRedis(set: LoadedSet, target: RedisTarget, opts: RedisCheckOptions): Promise<DrillCheck[]> {
  const facts = set.manifest.services.redis!;
  const wanted = new Set(opts.dbs ?? facts.keyspace.map((k) => k.db));
  const checks: DrillCheck[] = [];
  const t0 = Date.now();
  const client = await connectRedis(target);
  let actualKeyspace;
  try {
    actualKeyspace = parseKeyspace(parseInfo(await client.info("keyspace")));
  } finally {
    client.disconnect();
  }
  for (const rec of opts.skipKeyspace ? [] : facts.keyspace.filter((k) => wanted.has(k.db))) {
    const got = actualKeyspace.find((k) => k.db === rec.db) ?? { db: rec.db, keys: 0, expires: 0 };
    const persistentOk = got.keys - got.expires === rec.keys - rec.expires;
    const volatileOk = got.expires <= rec.expires;
    const expired = rec.expires - got.expires;
    checks.push(
      check("redis", "keyspace", `db${rec.db}`, { keys: rec.keys, expires: rec.expires }, { keys: got.keys, expires: got.expires }, t0, {
        ok: persistentOk && volatileOk,
        ...(!persistentOk
          ? { detail: `${got.keys - got.expires} keys without TTL, backup had ${rec.keys - rec.expires}` }
          : expired > 0
            ? { detail: `${expired} key(s) with a TTL expired since the backup` }
            : {}),
      }),
    );
  }
  if (!opts.dbs && !opts.skipKeyspace) {
    for (const extra of actualKeyspace.filter((k) => !facts.keyspace.some((r) => r.db === k.db))) {
      checks.push(check("redis", "keyspace", `db${extra.db}`, null, { keys: extra.keys, expires: extra.expires }, t0, { ok: false, detail: "db not in the backup" }));
    }
  }

  const window = { backupStarted: Date.parse(set.manifest.startedAt), backupFinished: Date.parse(set.manifest.finishedAt), now: opts.now.getTime() };
  const byDb = new Map<number, RedisSample[]>();
  const match = opts.pattern ? redisGlobToRegExp(opts.pattern) : undefined;
  for (const s of facts.sample) {
    if (!wanted.has(s.db) || (match && !match.test(decodeKey(s).toString("utf8")))) continue;
    byDb.set(s.db, [...(byDb.get(s.db) ?? []), s]);
  }
  for (const [db, samples] of [...byDb].sort((a, b) => a[0] - b[0])) {
    const t = Date.now();
    const c = await connectRedis(target, db);
    const bad: string[] = [];
    try {
      const digests = await digestKeys(c, samples.map(decodeKey));
      samples.forEach((s, i) => {
        const why = keyMismatch(s, digests[i]!, window);
        if (why) bad.push(`${keyLabel(s)} (${why})`);
      });
    } finally {
      c.disconnect();
    }
    checks.push(
      check("redis", "key-values", `db${db}`, samples.length, samples.length - bad.length, t, {
        ok: bad.length === 0,
        ...(bad.length ? { detail: `mismatched keys: ${nameSome(bad)}` } : {}),
      }),
    );
  }
  return checks;
}
