// The Prometheus metrics (prom-client), all named dkim_relay_*: counters fed by the relay's
// events (relay-monitor.ts), gauges read from the relay's state at scrape time. Node.js's
// default metrics are included, except the gauges named *_total (nodejs_active_handles_total
// and the like), which `promtool check metrics` rejects: a gauge must not end in _total.
import fsp from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { KEY_STATES } from '../dkim/key-metadata';
import { keySummaries, RelayState } from './relay-state';

export const PREFIX = 'dkim_relay_';

export class RelayMetrics {
  readonly registry = new Registry();
  readonly accepted: Counter;
  readonly refused: Counter<'stage' | 'status'>;
  readonly deliveries: Counter<'provider' | 'outcome' | 'class'>;
  readonly duration: Histogram<'provider'>;
  readonly connections: Counter<'provider' | 'tls'>;
  readonly pauses: Counter<'provider'>;
  readonly signingFailures: Counter;

  constructor(state: RelayState) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    for (const m of this.registry.getMetricsAsArray()) {
      if (m.name.endsWith('_total') && (m as unknown as { type?: string }).type === 'gauge') this.registry.removeSingleMetric(m.name);
    }

    this.accepted = new Counter({ name: `${PREFIX}messages_accepted_total`, help: 'Messages accepted at submission (250 after DATA).', registers });
    this.refused = new Counter({
      name: `${PREFIX}messages_refused_total`, registers, labelNames: ['stage', 'status'] as const,
      help: 'Refusals sent to submission clients, by SMTP stage (connect, auth, mail_from, rcpt_to, data) and enhanced status code (e.g. 5.7.1).',
    });
    this.deliveries = new Counter({
      name: `${PREFIX}deliveries_total`, registers, labelNames: ['provider', 'outcome', 'class'] as const,
      help: 'Delivery attempts per recipient, by provider (destination limit rule, else MX host), outcome (delivered, deferred, failed) and reply class.',
    });
    this.duration = new Histogram({
      name: `${PREFIX}delivery_duration_seconds`, registers, labelNames: ['provider'] as const,
      help: 'Time to send one message over an open delivery connection, by provider.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    });
    this.connections = new Counter({
      name: `${PREFIX}delivery_connections_total`, registers, labelNames: ['provider', 'tls'] as const,
      help: 'Delivery connections opened, by provider and the TLS level reached (none, opportunistic, sts, dane).',
    });
    this.pauses = new Counter({
      name: `${PREFIX}destination_pauses_total`, registers, labelNames: ['provider'] as const,
      help: 'Times a destination throttled us and was paused, by provider.',
    });
    this.signingFailures = new Counter({ name: `${PREFIX}signing_failures_total`, help: 'Messages refused because DKIM signing failed.', registers });

    new Gauge({
      name: `${PREFIX}delivery_connections_open`, registers, labelNames: ['provider'] as const,
      help: 'Delivery connections open (or opening) now, by provider.',
      collect() {
        this.reset();
        for (const [provider, n] of state.queue?.openConnections() ?? []) this.set({ provider }, n);
      },
    });
    new Gauge({
      name: `${PREFIX}destination_paused`, registers, labelNames: ['provider'] as const,
      help: 'Destinations paused now after a throttling reply (1), by provider.',
      collect() {
        this.reset();
        for (const p of state.activity.pausedNow()) this.set({ provider: p.provider }, 1);
      },
    });
    new Gauge({
      name: `${PREFIX}destination_pause_end_timestamp_seconds`, registers, labelNames: ['provider'] as const,
      help: 'When the pause of a paused destination ends (Unix time), by provider.',
      collect() {
        this.reset();
        for (const p of state.activity.pausedNow()) this.set({ provider: p.provider }, p.until / 1000);
      },
    });
    new Gauge({
      name: `${PREFIX}queue_messages`, registers, help: 'Messages in the queue (spool).',
      collect() {
        this.set(state.queue?.size ?? 0);
      },
    });
    new Gauge({
      name: `${PREFIX}queue_active_messages`, registers,
      help: 'Messages in the active queue (in memory: in delivery or due within a minute); the rest of queue_messages waits on disk.',
      collect() {
        this.set(state.queue?.activeSize ?? 0);
      },
    });
    // queue_recipients reads the active queue only: a large queue waits on disk and is not
    // read for a scrape (issue 20); queue_messages is the whole queue.
    new Gauge({
      name: `${PREFIX}queue_recipients`, registers, labelNames: ['state'] as const,
      help: 'Recipients of the messages in the active queue (in memory) by state: new (not tried yet), deferred (to be tried again), delivered, failed (waiting for their bounce).',
      collect() {
        const counts = { new: 0, deferred: 0, delivered: 0, failed: 0 };
        for (const e of state.queue?.envelopes() ?? []) {
          for (const r of e.recipients) {
            if (r.status === 'queued') counts[r.attempts ? 'deferred' : 'new']++;
            else counts[r.status]++;
          }
        }
        for (const [s, n] of Object.entries(counts)) this.set({ state: s }, n);
      },
    });
    new Gauge({
      name: `${PREFIX}queue_oldest_message_age_seconds`, registers, help: 'Age of the oldest queued message (in memory or on disk); 0 when the queue is empty. Read off the spool\'s file names, at most a minute old.',
      async collect() {
        let oldest = Infinity;
        for (const e of state.queue?.envelopes() ?? []) oldest = Math.min(oldest, Date.parse(e.receivedAt));
        // the messages on disk: by their names (ids begin with their time), a walk cached a minute
        if ((state.queue?.size ?? 0) > (state.queue?.activeSize ?? 0)) {
          const onDisk = await state.queue?.oldestQueuedAt().catch(() => null);
          if (onDisk) oldest = Math.min(oldest, onDisk);
        }
        this.set(oldest === Infinity ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
      },
    });
    new Gauge({
      name: `${PREFIX}dkim_keys`, registers, labelNames: ['state'] as const,
      help: 'DKIM keys in the key store by state (pending, active, retired, unknown: damaged metadata); a key that cannot be used also counts as unusable.',
      collect() {
        const counts: Record<string, number> = { unusable: 0, unknown: 0 };
        for (const s of KEY_STATES) counts[s] = 0;
        for (const k of keySummaries(state.keysDir)) {
          counts[k.state]++;
          if (k.problem && k.state !== 'retired') counts.unusable++;
        }
        for (const [s, n] of Object.entries(counts)) this.set({ state: s }, n);
      },
    });
    new Gauge({
      name: `${PREFIX}dkim_pending_key_age_seconds`, registers, labelNames: ['domain', 'selector'] as const,
      help: 'How long each pending DKIM key has waited for its DNS record (a key pending for days is worth an alert).',
      collect() {
        this.reset();
        for (const k of keySummaries(state.keysDir)) {
          if (k.state === 'pending') this.set({ domain: k.domain, selector: k.selector }, Math.max(0, (Date.now() - (Date.parse(k.created ?? '') || Date.now())) / 1000));
        }
      },
    });
    new Gauge({
      name: `${PREFIX}spool_free_bytes`, registers, help: 'Free space for the spool: bytes available to this user on the data dir\'s file system.',
      async collect() {
        try {
          const s = await fsp.statfs(state.dataDir);
          this.set(s.bavail * s.bsize);
        } catch {
          this.reset(); // no value rather than a wrong one
        }
      },
    });
    new Gauge({
      name: `${PREFIX}identity_check`, registers, labelNames: ['check', 'status'] as const,
      help: 'The sending identity checks at start (PTR, FCrDNS, HELO...): 1 for each check with its status (pass, warn, fail, error, info).',
      collect() {
        this.reset();
        for (const f of state.identity?.findings ?? []) this.set({ check: f.id, status: f.status }, 1);
      },
    });
    new Gauge({
      name: `${PREFIX}identity_ok`, registers, help: 'Whether the sending identity passed its checks at start (1) or has a warning or failure (0).',
      collect() {
        const findings = state.identity?.findings ?? [];
        this.set(state.identity && !findings.some((f) => ['warn', 'fail', 'error'].includes(f.status)) ? 1 : 0);
      },
    });
  }
}
