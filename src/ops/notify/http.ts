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
  const target = redactUrl(url);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...headers },
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
    text = (await res.text()).slice(0, 200);
  } catch {
    /* ignore body errors */
  }
  if (res.status >= 200 && res.status < 300) return;
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
  throw new DeliveryError(redactText(`POST ${target}: HTTP ${res.status}${text ? ` ${text.replace(/\s+/g, ' ').trim()}` : ''}`, secrets), retryable);
}
