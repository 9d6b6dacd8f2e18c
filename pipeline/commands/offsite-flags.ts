import type { Argv } from "yargs";
import { resolveSecretRef } from "../config.js";
import { Secret } from "../secret.js";

/** --identity: the age private key by reference, overriding offsite.destinations.<name>.encrypt.identity. */
export function withIdentityOption<T>(y: Argv<T>): Argv<T & { identity?: string }> {
  return y.option("identity", {
    type: "string",
    describe: 'age private key for an encrypted copy, as "env:NAME" or "file:PATH" (default: the destination\'s encrypt.identity)',
  }) as Argv<T & { identity?: string }>;
}

/** Resolved on first use only, so a command that needs no key never reads it. */
export function identityFrom(flag: string | undefined): { secret: Secret; field: string } | undefined {
  if (flag === undefined) return undefined;
  return { secret: new Secret(() => resolveSecretRef(flag, "--identity", process.env, process.cwd()).reveal(), /^(env|file):/.test(flag) ? flag : "--identity"), field: "--identity" };
}
