import type { RetentionConfig } from "../config.js";
import { parseDuration } from "../duration.js";
import { UserError } from "../errors.js";
import type { Secret } from "../secret.js";
import type { OffsiteFileSection } from "./schema.js";

/** One destination with its secrets resolved (the identity only on first use). */
export type Destination = {
  name: string;
  endpoint: string;
  bucket: string;
  /** "" or ending in "/". */
  prefix: string;
  region: string;
  accessKey: Secret;
  secretKey: Secret;
  pathStyle: boolean;
  /** age recipients; empty: stored as is. */
  recipients: string[];
  /** The age identity, resolved only when revealed (pull, --read-data, drill). */
  identity?: Secret;
  pushAfterBackup: boolean;
  concurrency: number;
  partSize: number;
  freshness: { warnAfterMs: number; criticalAfterMs: number; drillMaxAgeMs: number | null };
  retention?: RetentionConfig;
};

export type Offsite = { destinations: Destination[] };

/**
 * The resolved offsite section. `secret(ref, field)` resolves a reference the
 * way the rest of the config does; `lazy(ref, field)` resolves it on first
 * reveal (the identity is needed by few commands and must not be read by the others).
 */
export function resolveOffsite(
  file: OffsiteFileSection,
  secret: (ref: string, field: string) => Secret,
  lazy: (ref: string, field: string) => Secret,
): Offsite {
  const destinations = Object.entries(file.destinations).map(([name, d]): Destination => {
    const field = `offsite.destinations.${name}`;
    const warnAfterMs = parseDuration(d.freshness.warnAfter)!;
    const criticalAfterMs = parseDuration(d.freshness.criticalAfter)!;
    if (criticalAfterMs < warnAfterMs) throw new UserError(`${field}.freshness.criticalAfter: ${d.freshness.criticalAfter} is shorter than warnAfter ${d.freshness.warnAfter}`);
    return {
      name,
      endpoint: d.endpoint,
      bucket: d.bucket,
      prefix: d.prefix === "" || d.prefix.endsWith("/") ? d.prefix : `${d.prefix}/`,
      region: d.region,
      accessKey: secret(d.accessKey, `${field}.accessKey`),
      secretKey: secret(d.secretKey, `${field}.secretKey`),
      pathStyle: d.pathStyle,
      recipients: d.encrypt?.recipients ?? [],
      ...(d.encrypt?.identity ? { identity: lazy(d.encrypt.identity, `${field}.encrypt.identity`) } : {}),
      pushAfterBackup: d.pushAfterBackup,
      concurrency: d.concurrency,
      partSize: d.partSizeMiB * 1024 * 1024,
      freshness: { warnAfterMs, criticalAfterMs, drillMaxAgeMs: d.freshness.drillMaxAge === "off" ? null : parseDuration(d.freshness.drillMaxAge)! },
      ...(d.retention ? { retention: d.retention as RetentionConfig } : {}),
    };
  });
  return { destinations };
}

/** The destination `--to`/`--from`/`--remote` names; without a name, the only one (or a UserError naming the choices). */
export function pickDestination(offsite: Offsite | undefined, name: string | undefined, flag: string): Destination {
  const all = offsite?.destinations ?? [];
  if (all.length === 0) throw new UserError(`${flag}: no offsite destination configured (add an "offsite" section with destinations)`);
  if (name === undefined) {
    if (all.length === 1) return all[0]!;
    throw new UserError(`${flag}: name a destination (${all.map((d) => d.name).join(", ")})`);
  }
  const d = all.find((x) => x.name === name);
  if (!d) throw new UserError(`${flag}: no offsite destination "${name}" (configured: ${all.map((x) => x.name).join(", ")})`);
  return d;
}
