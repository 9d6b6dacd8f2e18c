import { inspect } from "node:util";

const REDACTED = "[redacted]";

/**
 * A resolved secret value. It never prints itself: toString, toJSON and
 * util.inspect all give "[redacted]". The only way out is `reveal()`, which
 * is called where a value goes into a child's environment or a client
 * library's connection options — never into argv, logs or files.
 */
export class Secret {
  #value: string | (() => string);
  /** Where the value came from, e.g. "env:PGPASSWORD" (safe to print). */
  readonly ref: string;

  /** `value` may be a function: then it is resolved (and may throw) on first reveal. */
  constructor(value: string | (() => string), ref: string) {
    this.#value = value;
    this.ref = ref;
  }

  reveal(): string {
    if (typeof this.#value === "function") this.#value = this.#value();
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${this.ref})`;
  }
}

/**
 * Replace every occurrence of the given secret values in `text`. Used on
 * tool stderr before it goes into an error message: a tool may echo a
 * connection string back.
 */
export function scrub(text: string, secrets: Iterable<Secret | undefined>): string {
  let out = text;
  for (const s of secrets) {
    const v = s?.reveal();
    if (v && v.length >= 3) out = out.split(v).join(REDACTED);
  }
  return out;
}
