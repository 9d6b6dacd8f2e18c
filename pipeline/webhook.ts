import { resolveSecretRef } from "./config.js";
import { errorMessage, UserError } from "./errors.js";

/**
 * The freshness alert webhook: POST the JSON report, with a timeout. Every
 * failure comes back as data for the report, never as a thrown error. The
 * URL may carry a token (Slack-style), so only its origin is ever shown.
 */

export type WebhookTarget = { url: URL; timeoutMs: number; from: string };

export type WebhookOutcome =
  | { sent: false; reason: string }
  | { sent: true; ok: true; target: string; status: number; durationMs: number }
  | { sent: true; ok: false; target: string; error: string; durationMs: number };

export const DEFAULT_WEBHOOK_TIMEOUT_MS = 5000;

/**
 * Where to send: --webhook, else $BACKUP_DRILL_WEBHOOK_URL, else
 * freshness.webhook.url. Each may be a URL or "env:NAME" / "file:PATH".
 */
export function resolveWebhook(
  sources: { flag?: string; env: NodeJS.ProcessEnv; config?: { url: string; timeoutMs: number }; timeoutFlag?: number; baseDir: string },
): WebhookTarget | undefined {
  const [value, from] =
    sources.flag !== undefined && sources.flag !== ""
      ? [sources.flag, "--webhook"]
      : sources.env.BACKUP_DRILL_WEBHOOK_URL
        ? [sources.env.BACKUP_DRILL_WEBHOOK_URL, "$BACKUP_DRILL_WEBHOOK_URL"]
        : sources.config
          ? [sources.config.url, "freshness.webhook.url"]
          : [undefined, ""];
  if (value === undefined) return undefined;
  const text = /^(env|file):/.test(value) ? resolveSecretRef(value, from, sources.env, sources.baseDir).reveal() : value;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError(`${from}: not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UserError(`${from}: must be an http or https URL`);
  const timeoutMs = sources.timeoutFlag ?? sources.config?.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new UserError(`--webhook-timeout: must be a positive number of milliseconds`);
  return { url, timeoutMs, from };
}

function failure(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === "TimeoutError" || e.name === "AbortError") return `timed out after ${timeoutMs}ms`;
  // undici puts the socket error (ECONNREFUSED, ...) in cause; its message never holds the URL.
  return e.cause?.code ?? e.cause?.message ?? errorMessage(err);
}

export async function postWebhook(target: WebhookTarget, payload: unknown, now: () => number = Date.now): Promise<WebhookOutcome> {
  const t0 = now();
  const shown = target.url.origin;
  try {
    const res = await fetch(target.url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "backup-drill" },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(target.timeoutMs),
    });
    await res.arrayBuffer().catch(() => undefined);
    const durationMs = now() - t0;
    if (!res.ok) return { sent: true, ok: false, target: shown, error: `HTTP ${res.status}`, durationMs };
    return { sent: true, ok: true, target: shown, status: res.status, durationMs };
  } catch (err) {
    return { sent: true, ok: false, target: shown, error: failure(err, target.timeoutMs), durationMs: now() - t0 };
  }
}
