import {
  connectRedis,
  decodeKey,
  digestKeys,
  functionLibraries,
  groupsOf,
  parseInfo,
  parseKeyspace,
  type FunctionLibrary,
  type RedisTarget,
  type StreamGroups,
} from "../../probes/redis.js";
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
  /** FUNCTION libraries were not restored (a selective restore): do not check them. */
  skipFunctions?: boolean;
  /** The target had FUNCTION libraries of its own before: they are not failures. */
  allowExtraFunctions?: boolean;
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

function keyLabel(s: Pick<RedisSample, "key" | "keyEncoding">): string {
  return s.keyEncoding === "base64" ? `base64:${s.key}` : s.key;
}

/**
 * The drill's Redis checks on a server holding the restored data: per db,
 * the persistent key count exactly and the keys with a TTL (which may only
 * have expired since), then every sampled key by type, value digest and TTL,
 * the FUNCTION libraries and the streams' consumer groups.
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
  if (facts.functions && facts.functions.length > 0 && !opts.skipFunctions) checks.push(await functionsCheck(facts.functions, target, opts.allowExtraFunctions ?? false));
  if (facts.streamGroups && facts.streamGroups.length > 0) checks.push(...(await streamGroupChecks(facts.streamGroups, target, wanted, match)));
  return checks;
}

function libraryLabel(l: FunctionLibrary): string {
  return `${l.name} (${l.engine}, ${l.functions.length} function(s), code ${l.codeSha256.slice(0, 12)})`;
}

/**
 * Every FUNCTION library of the snapshot is on the target with the same
 * engine, code and functions (with their flags). Libraries the target has
 * beside them fail the check unless the target had libraries before.
 */
async function functionsCheck(recorded: FunctionLibrary[], target: RedisTarget, allowExtra: boolean): Promise<DrillCheck> {
  const t = Date.now();
  const c = await connectRedis(target);
  let actual: FunctionLibrary[];
  try {
    actual = await functionLibraries(c);
  } finally {
    c.disconnect();
  }
  const byName = new Map(actual.map((l) => [l.name, l]));
  const problems: string[] = [];
  for (const lib of recorded) {
    const got = byName.get(lib.name);
    if (!got) problems.push(`${lib.name} (missing)`);
    else if (got.engine !== lib.engine || got.codeSha256 !== lib.codeSha256) problems.push(`${lib.name} (code differs)`);
    else if (JSON.stringify(got.functions) !== JSON.stringify(lib.functions)) problems.push(`${lib.name} (functions or flags differ)`);
  }
  const names = new Set(recorded.map((l) => l.name));
  if (!allowExtra) for (const l of actual.filter((x) => !names.has(x.name))) problems.push(`${l.name} (not in the backup)`);
  return check("redis", "functions", "libraries", recorded.map(libraryLabel), actual.filter((l) => allowExtra ? names.has(l.name) : true).map(libraryLabel), t, {
    ok: problems.length === 0,
    ...(problems.length ? { detail: `libraries: ${nameSome(problems)}` } : {}),
  });
}

/**
 * Per db: every stream that had consumer groups has the same groups, each
 * with its last-delivered ID, pending count and number of consumers.
 */
async function streamGroupChecks(recorded: StreamGroups[], target: RedisTarget, wanted: Set<number>, match: RegExp | undefined): Promise<DrillCheck[]> {
  const byDb = new Map<number, StreamGroups[]>();
  for (const s of recorded) {
    if (!wanted.has(s.db) || (match && !match.test(decodeKey(s).toString("utf8")))) continue;
    byDb.set(s.db, [...(byDb.get(s.db) ?? []), s]);
  }
  const checks: DrillCheck[] = [];
  for (const [db, streams] of [...byDb].sort((a, b) => a[0] - b[0])) {
    const t = Date.now();
    const c = await connectRedis(target, db);
    const bad: string[] = [];
    try {
      for (const s of streams) {
        let got: StreamGroups["groups"];
        try {
          got = await groupsOf(c, decodeKey(s));
        } catch (err) {
          bad.push(`${keyLabel(s)} (${/no such key/i.test((err as Error).message) ? "missing" : (err as Error).message})`);
          continue;
        }
        const want = new Map(s.groups.map((g) => [g.name, g]));
        const diffs: string[] = [];
        for (const g of s.groups) {
          const h = got.find((x) => x.name === g.name);
          if (!h) diffs.push(`group ${g.name} missing`);
          else if (h.lastDeliveredId !== g.lastDeliveredId) diffs.push(`group ${g.name} last-delivered ${h.lastDeliveredId}, backup has ${g.lastDeliveredId}`);
          else if (h.pending !== g.pending) diffs.push(`group ${g.name} ${h.pending} pending, backup has ${g.pending}`);
          else if (h.consumers !== g.consumers) diffs.push(`group ${g.name} ${h.consumers} consumers, backup has ${g.consumers}`);
        }
        for (const h of got) if (!want.has(h.name)) diffs.push(`group ${h.name} not in the backup`);
        if (diffs.length) bad.push(`${keyLabel(s)} (${diffs.join(", ")})`);
      }
    } finally {
      c.disconnect();
    }
    const groups = streams.reduce((a, s) => a + s.groups.length, 0);
    checks.push(
      check("redis", "stream-groups", `db${db}`, `${streams.length} stream(s), ${groups} group(s)`, bad.length ? `${bad.length} stream(s) differ` : `${streams.length} stream(s), ${groups} group(s)`, t, {
        ok: bad.length === 0,
        ...(bad.length ? { detail: `streams: ${nameSome(bad)}` } : {}),
      }),
    );
  }
  return checks;
}
