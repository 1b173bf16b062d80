// Takes queued messages from the spool and delivers them: recipients grouped by domain,
// each group routed (MX or smarthost) and tried host by host in priority order until one
// answers; each recipient keeps its own outcome. A deferred recipient is tried again after
// `retryDelay`, up to `maxAttempts`. This is the simple schedule; backoff, bounces and
// per-destination limits come with the delivery engine.
import { Logger } from '../log';
import { domainOf } from '../policy/sender-domains';
import { RecipientState, Spool, SpoolEnvelope } from '../spool/spool';
import { Outcome } from './classify';
import { routeDomain, RouteOptions } from './route';
import { deliverToHost, RecipientResult, TransportOptions } from './transport';

export interface QueueRunnerOptions {
  spool: Spool;
  log: Logger;
  route: RouteOptions;
  transport: TransportOptions;
  retryDelayMs: number;
  maxAttempts: number;
  concurrency: number;
  /** How often the queue is scanned for due messages even without news. */
  pollMs?: number;
}

export class QueueRunner {
  private readonly queue = new Map<string, SpoolEnvelope>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly options: QueueRunnerOptions) {}

  start(initial: SpoolEnvelope[]): void {
    for (const envelope of initial) this.queue.set(envelope.id, envelope);
    this.timer = setInterval(() => this.pump(), this.options.pollMs ?? 1000);
    this.timer.unref();
    this.pump();
  }

  /** A message just committed to the spool. */
  add(envelope: SpoolEnvelope): void {
    this.queue.set(envelope.id, envelope);
    this.pump();
  }

  get size(): number {
    return this.queue.size;
  }

  /** Stops starting deliveries and waits for those in flight, at most `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.race([
      Promise.allSettled([...this.inFlight.values()]),
      new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
  }

  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const envelope of this.queue.values()) {
      if (this.inFlight.size >= this.options.concurrency) return;
      if (this.inFlight.has(envelope.id)) continue;
      if (!envelope.recipients.some((r) => r.status === 'queued' && r.nextAttemptAt <= now)) continue;
      const run = this.deliver(envelope)
        .catch((err: Error) => this.options.log.error({ id: envelope.id, err: err.message }, 'delivery run failed'))
        .finally(() => {
          this.inFlight.delete(envelope.id);
          this.pump();
        });
      this.inFlight.set(envelope.id, run);
    }
  }

  private async deliver(envelope: SpoolEnvelope): Promise<void> {
    const now = Date.now();
    const due = envelope.recipients.filter((r) => r.status === 'queued' && r.nextAttemptAt <= now);
    const groups = new Map<string, RecipientState[]>();
    for (const r of due) {
      const key = this.options.route.smarthost ? '' : domainOf(r.address);
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    await Promise.all([...groups].map(([domain, recipients]) => this.deliverGroup(envelope, domain, recipients)));

    if (envelope.recipients.every((r) => r.status !== 'queued')) {
      await this.options.spool.remove(envelope.id);
      this.queue.delete(envelope.id);
      this.options.log.info({ id: envelope.id, recipients: envelope.recipients.map((r) => ({ address: r.address, status: r.status })) }, 'message done');
    } else {
      await this.options.spool.update(envelope);
    }
  }

  private async deliverGroup(envelope: SpoolEnvelope, domain: string, recipients: RecipientState[]): Promise<void> {
    const { log } = this.options;
    const route = await routeDomain(domain || domainOf(recipients[0].address), this.options.route);
    if (route.kind === 'unroutable') {
      log.info({ id: envelope.id, domain, reply: route.reason }, 'delivery attempt: no route');
      for (const r of recipients) this.record(r, route.permanent ? 'failed' : 'deferred', route.reason);
      return;
    }
    let lastError = { outcome: 'deferred' as Outcome, reply: 'no host tried' };
    for (const destination of route.destinations) {
      const started = Date.now();
      const result = await deliverToHost(
        destination,
        { from: envelope.sender, to: recipients.map((r) => r.address) },
        () => this.options.spool.openSigned(envelope),
        this.options.transport
      );
      const duration = Date.now() - started;
      if (result.recipients) {
        for (const outcome of result.recipients) {
          log.info({
            id: envelope.id, domain, host: destination.host, ip: destination.ip, recipient: outcome.address,
            outcome: outcome.outcome, reply: outcome.reply, tls: result.tls, durationMs: duration,
          }, 'delivery attempt');
        }
        this.applyResults(recipients, result.recipients);
        return;
      }
      lastError = result.error!;
      log.info({
        id: envelope.id, domain, host: destination.host, ip: destination.ip, outcome: lastError.outcome,
        reply: lastError.reply, durationMs: duration,
      }, 'delivery attempt');
      // A 5xx at greeting or MAIL FROM is the domain's final word; anything else: next host.
      if (lastError.outcome === 'failed') break;
    }
    for (const r of recipients) this.record(r, lastError.outcome, lastError.reply);
  }

  private applyResults(recipients: RecipientState[], results: RecipientResult[]): void {
    for (const r of recipients) {
      const result = results.find((x) => x.address === r.address);
      this.record(r, result?.outcome ?? 'deferred', result?.reply ?? 'no answer for this recipient');
    }
  }

  private record(recipient: RecipientState, outcome: Outcome, reply: string): void {
    recipient.attempts += 1;
    recipient.lastReply = reply;
    if (outcome === 'delivered' || outcome === 'failed') {
      recipient.status = outcome;
      if (outcome === 'failed') this.options.log.warn({ recipient: recipient.address, reply }, 'recipient failed permanently');
      return;
    }
    if (recipient.attempts >= this.options.maxAttempts) {
      recipient.status = 'failed';
      recipient.lastReply = `gave up after ${recipient.attempts} attempts: ${reply}`;
      this.options.log.warn({ recipient: recipient.address, reply: recipient.lastReply }, 'recipient failed permanently');
      return;
    }
    recipient.nextAttemptAt = Date.now() + this.options.retryDelayMs;
  }
}
