// The observer the relay's parts report to: it counts (metrics.ts) and remembers the recent
// past (recent-activity.ts). Each call is a few counter updates; a reply is classified only
// when it is not a success, so the path of a delivered message stays as it was.
import { DeliveryEvents, RecipientDone } from '../delivery/delivery-events';
import { TlsLevel } from '../delivery/tls-outcome';
import { verdictOf } from '../replies/verdict';
import { Refusal } from '../submission/refusal-log';
import { RelayMetrics } from './metrics';
import { RecentActivity } from './recent-activity';
import { RelayState } from './relay-state';

/** Providers with their own metric label; later ones are labelled "other" (bounded series). */
export const PROVIDER_LABELS_KEPT = 100;

const STAGE_LABELS: Record<Refusal['stage'], string> = {
  connect: 'connect', AUTH: 'auth', 'MAIL FROM': 'mail_from', 'RCPT TO': 'rcpt_to', DATA: 'data',
};

interface ProviderSeries {
  label: string;
  delivered: { inc(): void };
  duration: { observe(seconds: number): void };
}

export class RelayMonitor implements DeliveryEvents {
  readonly activity = new RecentActivity();
  readonly state: RelayState;
  readonly metrics: RelayMetrics;
  /** By provider: its label and the series of the common path, looked up once (prom-client hashes the labels on every call otherwise). */
  private readonly providers = new Map<string, ProviderSeries>();

  constructor(state: Omit<RelayState, 'activity' | 'submissionListening'>) {
    this.state = { ...state, activity: this.activity, submissionListening: false };
    this.metrics = new RelayMetrics(this.state);
  }

  accepted(): void {
    this.metrics.accepted.inc();
    this.activity.accepted();
  }

  refused(refusal: Refusal): void {
    this.metrics.refused.inc({ stage: STAGE_LABELS[refusal.stage] ?? 'other', status: refusal.enhanced ?? String(refusal.code) });
    this.activity.refused(refusal);
  }

  signingFailed(): void {
    this.metrics.signingFailures.inc();
  }

  recipientDone(e: RecipientDone): void {
    if (e.outcome === 'delivered') this.series(e.provider).delivered.inc();
    else this.metrics.deliveries.inc({ provider: this.label(e.provider), outcome: e.outcome, class: verdictOf(e.reply, e.host).class });
    this.activity.recipientDone(e.provider, e.outcome);
  }

  messageSent(provider: string, durationMs: number): void {
    this.series(provider).duration.observe(durationMs / 1000);
  }

  connectionOpened(provider: string, tls: TlsLevel): void {
    this.metrics.connections.inc({ provider: this.label(provider), tls });
  }

  destinationPaused(provider: string, untilMs: number, reply: string): void {
    this.metrics.pauses.inc({ provider: this.label(provider) });
    this.activity.paused(provider, untilMs, reply);
  }

  /** The provider's label ("other" beyond PROVIDER_LABELS_KEPT, so the series stay bounded). */
  private label(provider: string): string {
    return this.series(provider).label;
  }

  private series(provider: string): ProviderSeries {
    let s = this.providers.get(provider);
    if (s) return s;
    const label = this.providers.size < PROVIDER_LABELS_KEPT ? provider : 'other';
    s = this.providers.get(label) ?? {
      label,
      delivered: this.metrics.deliveries.labels({ provider: label, outcome: 'delivered', class: 'delivered' }),
      duration: this.metrics.duration.labels({ provider: label }),
    };
    this.providers.set(label, s);
    return s;
  }
}
