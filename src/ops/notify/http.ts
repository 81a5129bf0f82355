import { formatDuration } from '../../util/format.js';
import { redactText, redactUrl } from '../templates.js';
import { DeliveryError } from './notifier.js';

/** The HTTP POST shared by the Slack and generic webhook channels. */

export const USER_AGENT = 'lifeboat-alerts/1';

export interface HttpNotifierOptions {
  name: string;
  url: string;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

export async function postJson(url: string, body: string, headers: Record<string, string>, timeoutMs: number, secrets: string[]): Promise<void> {
  await postBody(url, body, { 'content-type': 'application/json', ...headers }, timeoutMs, secrets);
}

/**
 * POST any body (the channels set content-type); resolves with the response
 * text (first 2 KiB) on 2xx, throws a redacted DeliveryError otherwise
 * (retryable: network errors, 5xx, 408, 429).
 */
export async function postBody(url: string, body: string, headers: Record<string, string>, timeoutMs: number, secrets: string[]): Promise<string> {
  const target = redactUrl(url);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'user-agent': USER_AGENT, ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `timed out after ${formatDuration(timeoutMs)}` : e.cause?.code ?? e.cause?.message ?? e.message;
    throw new DeliveryError(redactText(`POST ${target}: ${why}`, secrets), true);
  }
  let text = '';
  try {
    text = (await res.text()).slice(0, 2048);
  } catch {
    /* ignore body errors */
  }
  if (res.status >= 200 && res.status < 300) return text;
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
  throw new DeliveryError(redactText(`POST ${target}: HTTP ${res.status}${text ? ` ${text.slice(0, 200).replace(/\s+/g, ' ').trim()}` : ''}`, secrets), retryable);
}
