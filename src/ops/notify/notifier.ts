import type { Tier } from '../../config/tiers.js';
import type { Severity } from '../catalog/types.js';
import type { MessageKind } from '../templates.js';

/** The message every channel sends, and the Notifier interface each channel implements. */

export interface AlertMessage {
  kind: MessageKind;
  /** "job/check" */
  key: string;
  job: string;
  check: string;
  severity: Severity;
  tier: Tier;
  title: string;
  text: string;
  /** The finding's one-line message. */
  message: string;
  details: Record<string, unknown>;
  firstAt: Date;
  at: Date;
  /** Notifications of this episode including this one. */
  count: number;
  host: string;
}

/** A failed delivery attempt. `retryable` false: do not try again (4xx, bad config). Message is already redacted. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

export interface Notifier {
  readonly name: string;
  readonly type: 'slack' | 'webhook' | 'email' | 'pagerduty' | 'opsgenie' | 'teams' | 'discord' | 'telegram' | 'ntfy' | 'sms';
  /** Where it sends to, safe to log (scheme://host, SMTP host:port). */
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  /** One attempt. Throws DeliveryError (redacted) on failure. */
  send(msg: AlertMessage): Promise<void>;
  close?(): Promise<void>;
}

export interface DeliveryResult {
  channel: string;
  ok: boolean;
  attempts: number;
  error?: string;
}
