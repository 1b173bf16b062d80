// What the queue runner tells an observer (the HTTP metrics and status page) while it works.
// Optional and one-way: delivery never waits for or reads anything back from it, and each
// call is cheap (no I/O), so an observer cannot slow delivery down.
import { Outcome } from '../replies/outcome';
import { TlsLevel } from './tls-outcome';

export interface RecipientDone {
  /** The destination as the limits see it: the matching rule (e.g. "*.protection.outlook.com"), else the first MX host; "unroutable" without a route. */
  provider: string;
  /** The recipient's domain. */
  domain: string;
  outcome: Outcome;
  /** The reply (or local failure) the outcome came from. */
  reply: string;
  host?: string;
  /** Given up after delivery.retryExpire (the outcome is then "failed"). */
  expired?: boolean;
}

export interface DeliveryEvents {
  /** One recipient's attempt ended: delivered, deferred (to be tried again) or failed. */
  recipientDone(event: RecipientDone): void;
  /** One message went over a connection (whatever the recipients' outcomes), in `durationMs`. */
  messageSent(provider: string, durationMs: number): void;
  /** A delivery connection was opened, reaching this TLS level. */
  connectionOpened(provider: string, tls: TlsLevel): void;
  /** The destination throttled us and is left alone until `untilMs`. */
  destinationPaused(provider: string, untilMs: number, reply: string): void;
}
