// What the status page shows of the recent past, kept in memory and bounded: the last
// refusals at submission (a ring), deliveries per hour per provider over the last day,
// destinations paused now, and counts since start. Fed by the relay's events; each update is
// a few array writes, no allocation beyond the refusal record itself, no I/O.
import { Outcome } from '../replies/outcome';
import { Refusal } from '../submission/refusal-log';

export const REFUSALS_KEPT = 50;
export const HOURS_KEPT = 24;
/** Providers with their own row in the hourly counts; later ones are counted as "other". */
export const PROVIDERS_KEPT = 20;

export interface RecentRefusal extends Refusal { at: number }

export interface Pause { provider: string; until: number; reply: string; since: number }

export interface HourlyDeliveries {
  /** Epoch ms of the start of each hour, oldest first (HOURS_KEPT of them, the current one last). */
  hours: number[];
  /** Delivered recipients per hour, by provider. */
  byProvider: Map<string, number[]>;
}

const HOUR_MS = 3600_000;

export class RecentActivity {
  private readonly refusals: RecentRefusal[] = [];
  private refusalNext = 0;
  /** Per provider: delivered counts by hour slot (hour number % HOURS_KEPT), and the hour each slot holds. */
  private readonly hourly = new Map<string, { counts: Int32Array; hourOf: Float64Array }>();
  private readonly pauses = new Map<string, Pause>();
  readonly totals = { accepted: 0, refused: 0, delivered: 0, deferred: 0, failed: 0 };

  constructor(private readonly now: () => number = Date.now) {}

  refused(refusal: Refusal): void {
    this.totals.refused++;
    const entry = { ...refusal, at: this.now() };
    if (this.refusals.length < REFUSALS_KEPT) this.refusals.push(entry);
    else this.refusals[this.refusalNext] = entry;
    this.refusalNext = (this.refusalNext + 1) % REFUSALS_KEPT;
  }

  accepted(): void {
    this.totals.accepted++;
  }

  recipientDone(provider: string, outcome: Outcome): void {
    this.totals[outcome]++;
    if (outcome !== 'delivered') return;
    // one row is kept for "other", so the rows stay PROVIDERS_KEPT at most
    const key = this.hourly.has(provider) || this.hourly.size < PROVIDERS_KEPT - 1 ? provider : 'other';
    let row = this.hourly.get(key);
    if (!row) {
      row = { counts: new Int32Array(HOURS_KEPT), hourOf: new Float64Array(HOURS_KEPT) };
      this.hourly.set(key, row);
    }
    const hour = Math.floor(this.now() / HOUR_MS);
    const slot = hour % HOURS_KEPT;
    if (row.hourOf[slot] !== hour) {
      row.hourOf[slot] = hour;
      row.counts[slot] = 0;
    }
    row.counts[slot]++;
  }

  paused(provider: string, until: number, reply: string): void {
    const was = this.pauses.get(provider);
    this.pauses.set(provider, { provider, until: Math.max(until, was?.until ?? 0), reply, since: was && was.until > this.now() ? was.since : this.now() });
  }

  /** The last refusals, newest first. */
  lastRefusals(): RecentRefusal[] {
    return [...this.refusals].sort((a, b) => b.at - a.at);
  }

  /** Destinations paused now; ended pauses are dropped. */
  pausedNow(): Pause[] {
    const now = this.now();
    for (const [key, p] of this.pauses) if (p.until <= now) this.pauses.delete(key);
    return [...this.pauses.values()].sort((a, b) => a.provider.localeCompare(b.provider));
  }

  hourlyDeliveries(): HourlyDeliveries {
    const current = Math.floor(this.now() / HOUR_MS);
    const hours = Array.from({ length: HOURS_KEPT }, (_, i) => (current - HOURS_KEPT + 1 + i) * HOUR_MS);
    const byProvider = new Map<string, number[]>();
    for (const [provider, row] of this.hourly) {
      const counts = hours.map((start) => {
        const hour = start / HOUR_MS;
        const slot = hour % HOURS_KEPT;
        return row.hourOf[slot] === hour ? row.counts[slot] : 0;
      });
      if (counts.some((n) => n > 0)) byProvider.set(provider, counts);
    }
    return { hours, byProvider };
  }
}
