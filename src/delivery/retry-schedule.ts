// When a deferred recipient is tried again, and when it is given up. The schedule is a list
// of waits (delivery.retrySchedule, "5m,10m,20m,40m,1h"): the wait after the n-th attempt is
// the n-th step, the last step repeats. Each wait is stretched by a random 0-10% so that
// messages deferred together (a destination that was down) do not come back together.
// A recipient is given up once retryExpire has passed since the message was accepted; the
// last attempt is moved to that moment, so it is not given up long after its expiry.
// The default is close to Postfix (minimal_backoff_time 300s, doubling up to
// maximal_backoff_time 4000s, maximal_queue_lifetime 5d).
import { parseDurationList } from '../config/schema';

export const JITTER = 0.1;

export class RetrySchedule {
  private readonly stepsMs: number[];

  constructor(schedule: string, readonly expireMs: number, private readonly random: () => number = Math.random) {
    this.stepsMs = parseDurationList(schedule).map((s) => s * 1000);
  }

  /** Wait after the `attempts`-th attempt (1-based), with jitter. */
  delayAfter(attempts: number): number {
    const step = this.stepsMs[Math.min(Math.max(attempts, 1), this.stepsMs.length) - 1];
    return Math.round(step * (1 + JITTER * this.random()));
  }

  /** Epoch ms of the next attempt; never beyond the expiry of a message accepted at `acceptedAt`. */
  nextAttempt(attempts: number, acceptedAt: number, now = Date.now()): number {
    return Math.min(now + this.delayAfter(attempts), Math.max(now, acceptedAt + this.expireMs));
  }

  expired(acceptedAt: number, now = Date.now()): boolean {
    return now >= acceptedAt + this.expireMs;
  }
}
