import { TimeoutError } from "./errors.js";
import type { Progress } from "./progress.js";

/**
 * Every wait has a deadline. The defaults suit a 100 GB database: an exact
 * count(*) of a large table or a pg_restore index build may take an hour,
 * a Redis command never should take minutes, and a tool that writes nothing
 * and does no I/O for half an hour is stuck. Tests configure seconds.
 */
export type Timeouts = {
  /** Connecting to any server (TCP + authentication). */
  connectMs: number;
  /** One Redis command. */
  redisCommandMs: number;
  /** One PostgreSQL query (client side: also ends a query to a stopped server). */
  pgQueryMs: number;
  /** One S3 request: no byte sent or received for this long ends it. */
  s3RequestMs: number;
  /** A tool step that writes no byte and does no I/O for this long is killed. */
  stallMs: number;
  /** The same for a step that waits on a server doing the work (pg_restore building indexes). */
  restoreStallMs: number;
  /** A whole phase: one service's backup, drill or restore. */
  phaseMs: number;
};

export const DEFAULT_TIMEOUTS = {
  connect: "30s",
  redisCommand: "2m",
  pgQuery: "2h",
  s3Request: "10m",
  stall: "30m",
  restoreStall: "4h",
  phase: "24h",
} as const;

const ms = (s: string) => {
  const m = /^(\d+)([smh])$/.exec(s)!;
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "s" | "m" | "h"];
};

export const DEFAULT_TIMEOUTS_MS: Timeouts = {
  connectMs: ms(DEFAULT_TIMEOUTS.connect),
  redisCommandMs: ms(DEFAULT_TIMEOUTS.redisCommand),
  pgQueryMs: ms(DEFAULT_TIMEOUTS.pgQuery),
  s3RequestMs: ms(DEFAULT_TIMEOUTS.s3Request),
  stallMs: ms(DEFAULT_TIMEOUTS.stall),
  restoreStallMs: ms(DEFAULT_TIMEOUTS.restoreStall),
  phaseMs: ms(DEFAULT_TIMEOUTS.phase),
};

let current: Timeouts = DEFAULT_TIMEOUTS_MS;

/**
 * The timeouts server clients use (probes/*). Set once by the CLI from the
 * config, so every connection of the run is bounded without each call site
 * carrying them.
 */
export function clientTimeouts(): Timeouts {
  return current;
}

export function configureTimeouts(t: Timeouts): void {
  current = t;
}

function seconds(msValue: number): string {
  return msValue % 1000 === 0 ? `${msValue / 1000}s` : `${msValue}ms`;
}

/**
 * Run one phase under an overall deadline, with a progress line every
 * `heartbeatMs` while it runs. On the deadline the phase's abort signal
 * fires (running tools are killed) and the phase fails naming itself.
 */
export async function withPhaseDeadline<T>(
  name: string,
  opts: { deadlineMs: number; progress: Progress; signal?: AbortSignal; heartbeatMs?: number },
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const abort = new AbortController();
  const onOuter = () => abort.abort(opts.signal?.reason);
  if (opts.signal?.aborted) abort.abort(opts.signal.reason);
  opts.signal?.addEventListener("abort", onOuter, { once: true });
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TimeoutError(`${name}: did not finish within the phase deadline of ${seconds(opts.deadlineMs)} (timeouts.phase)`);
      abort.abort(err);
      // Give the phase a moment to stop its tools and loops (they watch the signal) before its owner cleans up.
      const grace = setTimeout(() => reject(err), 5_000);
      work.then(
        () => (clearTimeout(grace), reject(err)),
        () => (clearTimeout(grace), reject(err)),
      );
    }, opts.deadlineMs);
  });
  const work = fn(abort.signal);
  const beat = setInterval(() => opts.progress.info(`${name}: still running, ${Math.round((Date.now() - t0) / 1000)}s`), opts.heartbeatMs ?? 10_000);
  beat.unref();
  work.catch(() => {}); // after the deadline its rejection is not ours to report
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    clearInterval(beat);
    opts.signal?.removeEventListener("abort", onOuter);
  }
}

/** Reject with a message naming what was waited for when `promise` takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, msValue: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${seconds(msValue)}`)), msValue);
  });
  promise.catch(() => {});
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
