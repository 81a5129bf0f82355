import { errorMessage } from '../../errors.js';
import { redactText } from '../templates.js';
import { DeliveryError, type AlertMessage, type DeliveryResult, type Notifier } from './notifier.js';

/** One message through one notifier with its timeout and retries. Never throws. */
export async function deliver(
  notifier: Notifier,
  msg: AlertMessage,
  opts: { sleep?: (ms: number) => Promise<void> } = {},
): Promise<DeliveryResult> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let attempts = 0;
  let lastError = '';
  for (;;) {
    attempts++;
    try {
      await notifier.send(msg);
      return { channel: notifier.name, ok: true, attempts };
    } catch (err) {
      const retryable = err instanceof DeliveryError ? err.retryable : true;
      // errors from send() are redacted by the notifier; redact again in case a foreign error slipped through
      lastError = err instanceof DeliveryError ? err.message : redactText(`${notifier.type} ${notifier.target}: ${errorMessage(err)}`);
      if (!retryable || attempts > notifier.retries) return { channel: notifier.name, ok: false, attempts, error: lastError };
    }
    await sleep(notifier.retryDelayMs * 2 ** (attempts - 1));
  }
}
