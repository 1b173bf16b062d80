// The scheduler: takes queued messages from the spool and delivers them.
//   due recipients of a message, grouped by domain = a job -> route (MX or smarthost) ->
//   the job waits at its site (the set of MX hosts it goes to) -> a worker of that site
//   opens a connection (hosts in priority order) and sends job after job over it.
// A site has at most `connections` workers (its destination limit: presets for the big
// providers, configured rules, defaults), a connection carries at most
// `messagesPerConnection` messages, and all sites together at most `concurrency`
// connections. A rule's `rate` (GCRA) spaces the messages to a destination; a job over the
// rate waits for its turn without using up an attempt. A throttling reply pauses the
// destination for its `throttlePause`; its jobs wait without using up attempts. Connection
// slots, rates and pauses live in a DestinationState (in memory, or shared by all nodes
// through Redis), whose answers may take a moment (a Redis round trip). A site none of whose
// hosts took a connection is not tried again for a minute: mail for it is deferred at once
// (Postfix's "dead destination"). Each
// recipient keeps its own outcome; a deferred one is tried again on the retry schedule until
// it expires. After every job the message's state is written to the spool, so a delivered
// recipient is not sent again after a restart. When no job of a message is running, failed
// recipients are bounced (a DSN to the sender, queued through the spool) and a message whose
// recipients are all final is removed.
// Only the active queue is in memory (Postfix's active queue): the messages in delivery or
// due within ACTIVE_HORIZON_MS, at most `activeLimit` of them. The rest wait on disk, found
// through the spool's due index (spool/due-index.ts): `refill` takes the entries of the
// minutes that are due, oldest first, while there is room; a message deferred beyond the
// horizon leaves memory once its state is written (its index entry moved with it).
import { queueBounce, BounceContext } from '../bounce/bounce';
import { DsnRecipient } from '../bounce/dsn';
import { DestinationLimitRule } from '../config/schema';
import { Logger } from '../log';
import { domainOf } from '../policy/sender-domains';
import { ControlReply, ControlRequest, processControlRequests } from '../spool/control';
import { JournalRecord } from '../spool/journal';
import { bucketOf } from '../spool/due-index';
import { AttemptRecord, dueOf, HISTORY_LENGTH, RecipientState, Spool, SpoolEnvelope } from '../spool/spool';
import { isThrottling, Outcome } from '../replies/outcome';
import { verdictOf } from '../replies/verdict';
import { finalOutcome, DELETED_REPLY } from './final-outcome';
import { DeliveryEvents } from './delivery-events';
import { DestinationLimit, DestinationState, effectiveRules, Lease, limitFor, MemoryDestinationState } from './destination-limits';
import { RetrySchedule } from './retry-schedule';
import { Destination, orderForAttempt, Route, RouteCache, RouteOptions } from './route';
import { tlsOutcomeOfDeferral, tlsOutcomeOfOpen } from '../tlsrpt/session-outcome';
import { TlsOutcome } from './tls-outcome';
import { DomainTlsPolicy, TlsPolicySource } from './tls-policy';
import { OpenResult, RecipientResult, SmtpSession, TlsDeferral, TlsRequirement, TransportOptions } from './transport';

export interface QueueRunnerOptions {
  spool: Spool;
  log: Logger;
  route: RouteOptions;
  transport: TransportOptions;
  schedule: RetrySchedule;
  /** Most delivery connections open at once, over all destinations. */
  concurrency: number;
  limits: { rules: DestinationLimitRule[]; connections: number; messagesPerConnection: number; throttlePause: number };
  destinations?: DestinationState;
  /** What bounces need; without it failed recipients are only logged. */
  bounce?: Omit<BounceContext, 'spool' | 'log'>;
  /** Send a delay notice once a recipient has been queued this long; 0: never. */
  delayWarningMs?: number;
  /** How often the queue is scanned for due messages (and control requests read). */
  pollMs?: number;
  /** How long an idle connection waits for another message before QUIT. */
  idleMs?: number;
  /** Random source for the order of MX hosts of equal preference (tests); Math.random. */
  random?: () => number;
  /** Most messages held in memory (the active queue); the rest wait on disk. */
  activeLimit?: number;
  /** Where a message that leaves the queue is recorded (spool/journal.ts); append must not wait. */
  journal?: { append(record: JournalRecord): void };
  /** The TLS policy of recipient domains (MTA-STS); absent: opportunistic TLS everywhere. Not for a smarthost. */
  tlsPolicy?: TlsPolicySource;
  /**
   * DANE (delivery.dane): the TLS a connection to an MX host must reach, or why the host is not
   * to be tried now ({defer: reply}); undefined: no usable TLSA records (MTA-STS or opportunistic).
   * It takes precedence over MTA-STS for a host that has it (RFC 8461 2).
   */
  dane?: (destination: Destination, domain: string) => Promise<TlsRequirement | TlsDeferral | undefined>;
  /** Counts each connection's TLS outcome for the TLS reports (RFC 8460); absent: not counted. */
  tlsReports?: { record(outcome: TlsOutcome): void };
  /** Told about outcomes, connections and pauses (metrics, status page). */
  events?: DeliveryEvents;
}

/** The active queue's size unless configured (delivery.activeQueueLimit). */
export const DEFAULT_ACTIVE_LIMIT = 10_000;

/**
 * Messages due within this long are kept in (or loaded into) memory; one deferred further
 * leaves it. A minute: the index's grain.
 */
const ACTIVE_HORIZON_MS = 60_000;

/** How often the whole spool is walked to add what the index lacks (see due-index.ts). */
const REPAIR_INTERVAL_MS = 24 * 3600_000;

/** Messages loaded from disk at the same time by a refill. */
const LOAD_PARALLEL = 16;

interface Job {
  envelope: SpoolEnvelope;
  domain: string;
  recipients: RecipientState[];
  /** The destination's name for events, once routed (providerOf). */
  provider?: string;
}

interface Site {
  key: string;
  limit: DestinationLimit;
  destinations: Destination[];
  jobs: Job[];
  workers: number;
  /** Workers with an open connection waiting for a job. */
  idle: ((job: Job | null) => void)[];
  /** The TLS policy of the site's domain(s): it is part of the key, so all its jobs share it. */
  tls?: DomainTlsPolicy;
  /** A connection slot is being asked for (one at a time per site). */
  acquiring: boolean;
  /** Asks again later when the slots were full (other nodes free theirs without telling us). */
  retry: NodeJS.Timeout | null;
}

/** How soon a site whose slots were all taken asks again. */
const SLOT_RETRY_MS = 250;

/** Most jobs taken from the queue and not finished (routing or waiting at a site). */
const MAX_JOBS = 5000;

/**
 * How long a site none of whose hosts took a connection is left alone. Without it every new
 * message tried its own connection to a smarthost that was down (each waiting for the connect
 * timeout when packets are dropped). `queue retry` ends it early.
 */
const UNREACHABLE_MS = 60_000;

interface Unreachable {
  /** When the last host refused or did not answer. */
  at: number;
  reply: string;
  host: string;
  ip: string;
  /** The host failed the TLS policy (MTA-STS), it did connect: the reply says so first. */
  tlsPolicy?: boolean;
}

export class QueueRunner {
  /** The active queue: messages in delivery or due soon (see the top of this file). */
  private readonly active = new Map<string, SpoolEnvelope>();
  private readonly activeLimit: number;
  /** Jobs running per message id. */
  private readonly running = new Map<string, number>();
  /** "id\naddress" of recipients in a running job. */
  private readonly busy = new Set<string>();
  private readonly sites = new Map<string, Site>();
  /** Sites (by key) where no host took a connection, while UNREACHABLE_MS lasts. */
  private readonly unreachable = new Map<string, Unreachable>();
  private readonly sessions = new Set<SmtpSession>();
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly deleteRequests = new Map<string, { bounce: boolean }>();
  private readonly finalizing = new Set<string>();
  private readonly destinations: DestinationState;
  private readonly rules: DestinationLimitRule[];
  private readonly routes: RouteCache;
  private jobs = 0;
  private connections = 0;
  private timer: NodeJS.Timeout | null = null;
  private wake: NodeJS.Timeout | null = null;
  private wakeAt = Infinity;
  private pumpQueued = false;
  /** A scan stopped at MAX_JOBS: scan again when jobs end. */
  private capped = false;
  private controlBusy = false;
  private stopped = false;
  /** A refill is running; `refillAgain`: asked for again meanwhile. */
  private refilling = false;
  private refillAgain = false;
  /** Due messages may wait on disk (the last refill stopped at the bound, or one was not taken in): refill as room frees. */
  private moreOnDisk = true;
  /** `queue retry --all` is making the messages on disk due. */
  private flushing = false;
  private repairing = false;
  private repairTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: QueueRunnerOptions) {
    this.activeLimit = Math.max(1, options.activeLimit ?? DEFAULT_ACTIVE_LIMIT);
    this.destinations = options.destinations ?? new MemoryDestinationState();
    this.rules = effectiveRules(options.limits.rules);
    this.routes = new RouteCache(options.route);
  }

  /**
   * Starts delivering what the spool's index says is due, without waiting for it: submission
   * need not wait for a large queue. `repairIndex`: the index may lack messages (Spool.open),
   * walk the spool now (`rebuild`: there was no index, walk it without pauses); it is walked
   * once a day anyway.
   */
  start(options: { repairIndex?: boolean | 'rebuild' } = {}): void {
    this.timer = setInterval(() => {
      this.pump();
      this.control();
    }, this.options.pollMs ?? 1000);
    this.timer.unref();
    const { spool, log } = this.options;
    this.track(spool.count().then(
      (queued) => log.info({ messages: queued }, queued ? 'picked up queued messages from the spool' : 'the spool is empty'),
      (err: Error) => log.error({ err: err.message }, 'the spool could not be counted'),
    ));
    if (options.repairIndex) this.repair(options.repairIndex === 'rebuild');
    this.repairTimer = setInterval(() => this.repair(), REPAIR_INTERVAL_MS);
    this.repairTimer.unref();
    this.pump();
    this.control();
  }

  /** A message just committed to the spool: its jobs start now, without a scan of the queue. */
  add(envelope: SpoolEnvelope): void {
    if (this.stopped || this.active.size >= this.activeLimit) {
      // the active queue is full: it waits on disk, its index entry says it is due now
      this.options.spool.release(envelope.id);
      this.moreOnDisk = true;
      return;
    }
    this.active.set(envelope.id, envelope);
    if (this.jobs >= MAX_JOBS) {
      this.capped = true;
      return;
    }
    this.setWake(this.pumpEnvelope(envelope, Date.now()));
  }

  /** Queued messages, in memory and on disk (until the spool is counted at start: those in memory). */
  get size(): number {
    return Math.max(this.options.spool.queued ?? 0, this.active.size);
  }

  /** Messages in the active queue (in memory). */
  get activeSize(): number {
    return this.active.size;
  }

  /** The envelopes of the active queue (in memory; the others are on disk: Spool.envelopes). */
  envelopes(): SpoolEnvelope[] {
    return [...this.active.values()];
  }

  /** When the oldest queued message (in memory or on disk) was accepted; null: none. Cached a while (Spool.oldestQueuedAt). */
  oldestQueuedAt(maxAgeMs?: number): Promise<number | null> {
    return this.options.spool.oldestQueuedAt(maxAgeMs);
  }

  /**
   * Every queued message, those on disk read from it, when the queue holds at most `max`
   * (the status page: a view of the whole queue at a bounded cost); null when it holds more.
   */
  async allEnvelopes(max: number): Promise<SpoolEnvelope[] | null> {
    if (this.size > max) return null;
    const all = new Map(this.active);
    for await (const envelope of this.options.spool.envelopes()) if (!all.has(envelope.id)) all.set(envelope.id, envelope);
    return [...all.values()];
  }

  /** Delivery connections open (or opening) now, by provider (providerOf). */
  openConnections(): Map<string, number> {
    const open = new Map<string, number>();
    for (const site of this.sites.values()) {
      if (site.workers) open.set(providerOf(site), (open.get(providerOf(site)) ?? 0) + site.workers);
    }
    return open;
  }

  /**
   * Stops starting deliveries, lets those in flight finish (at most `timeoutMs`), then drops
   * what still runs: its recipients stay queued and are tried again at the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.repairTimer) clearInterval(this.repairTimer);
    if (this.wake) clearTimeout(this.wake);
    for (const site of this.sites.values()) for (const idle of site.idle.splice(0)) idle(null);
    const settled = Promise.allSettled([...this.tasks]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      settled.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.options.log.warn({ connections: this.sessions.size }, 'deliveries still running at shutdown were cut off; their recipients stay queued');
      for (const session of this.sessions) session.close();
      await Promise.race([Promise.allSettled([...this.tasks]), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    await this.options.spool.idle();
  }

  // ---- queue control (retry, delete), from the CLI through control files ----

  /**
   * Makes queued recipients due now: one message, or all. Returns the ids touched in memory
   * and, for all, how many wait on disk: those are made due in the background (flush).
   */
  async retryNow(id?: string): Promise<{ ids: string[]; onDisk: number }> {
    const ids: string[] = [];
    const now = Date.now();
    this.unreachable.clear(); // asked to try now: try, even where nobody answered a moment ago
    const targets = id ? [await this.activate(id)].filter((e): e is SpoolEnvelope => !!e) : [...this.active.values()];
    for (const envelope of targets) {
      let touched = false;
      for (const r of envelope.recipients) {
        if (r.status === 'queued') {
          r.nextAttemptAt = now;
          touched = true;
        }
      }
      if (touched) ids.push(envelope.id);
    }
    let onDisk = 0;
    if (!id) {
      onDisk = Math.max(0, this.size - this.active.size);
      this.flush(now);
    }
    this.schedulePump();
    return { ids, onDisk };
  }

  /** Removes a message from the queue, optionally bouncing its undelivered recipients. */
  async deleteMessage(id: string, bounce: boolean): Promise<boolean> {
    const envelope = await this.activate(id);
    if (!envelope) return false;
    this.deleteRequests.set(id, { bounce });
    if (!this.running.get(id)) await this.finalize(envelope);
    return true;
  }

  /** A message in the active queue, loaded from disk if need be (beyond the bound: one asked for by name). */
  private async activate(id: string): Promise<SpoolEnvelope | null> {
    const held = this.active.get(id);
    if (held) return held;
    const { spool } = this.options;
    if (!/^[0-9A-Za-z]+$/.test(id) || spool.isHeld(id)) return null;
    const envelope = await spool.load(id, spool.heldBucket(id));
    if (!envelope) return null;
    if (this.active.has(id)) return this.active.get(id)!; // loaded by a refill meanwhile
    this.active.set(id, envelope);
    return envelope;
  }

  private control(): void {
    if (this.controlBusy || this.stopped) return;
    this.controlBusy = true;
    const task = processControlRequests(this.options.spool.dataDir, (request) => this.handleControl(request))
      .catch((err: Error) => this.options.log.error({ err: err.message }, 'queue control requests could not be read'))
      .finally(() => {
        this.controlBusy = false;
      });
    this.track(task);
  }

  private async handleControl(request: ControlRequest): Promise<ControlReply> {
    const { log } = this.options;
    if (request.action === 'retry') {
      if (!request.all && !request.id) return { ok: false, message: 'retry needs a message id or --all' };
      const { ids, onDisk } = await this.retryNow(request.all ? undefined : request.id);
      if (request.id && !this.active.has(request.id)) return { ok: false, message: `no message ${request.id} in the queue` };
      log.info({ ids, onDisk, by: 'queue retry' }, 'queued recipients made due now');
      return { ok: true, ids, message: `${ids.length + onDisk} message(s) will be tried now` };
    }
    if (request.action === 'delete') {
      const found = await this.deleteMessage(request.id, request.bounce);
      if (!found) return { ok: false, message: `no message ${request.id} in the queue` };
      log.info({ id: request.id, bounce: request.bounce, by: 'queue delete' }, 'message deleted from the queue');
      return { ok: true, ids: [request.id], message: `message ${request.id} deleted${request.bounce ? ', its sender gets a bounce' : ''}` };
    }
    return { ok: false, message: `unknown action ${(request as { action: string }).action}` };
  }

  // ---- scheduling ----

  private schedulePump(): void {
    if (this.pumpQueued || this.stopped) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /**
   * Scans the active queue for due recipients (every pollMs, and after a retry request), and
   * fills it from disk while it has room.
   */
  private pump(): void {
    if (this.stopped) return;
    if (this.active.size < this.activeLimit) this.refill();
    const now = Date.now();
    let earliest = Infinity;
    this.capped = false;
    for (const envelope of this.active.values()) {
      if (this.jobs >= MAX_JOBS) {
        this.capped = true;
        return;
      }
      earliest = Math.min(earliest, this.pumpEnvelope(envelope, now));
    }
    this.setWake(earliest);
  }

  /**
   * Loads into the active queue, while it has room, the messages whose index entries are in
   * the minutes due so far (and the next), oldest minute first, each minute's in the order
   * they are due. An entry of a message that is gone is dropped; one that is early (the
   * message is due later: a crash between its state write and the move of its entry) is
   * moved; an empty past minute is removed.
   */
  private refill(): void {
    if (this.refilling) {
      this.refillAgain = true;
      return;
    }
    this.refilling = true;
    this.refillAgain = false;
    const task = this.refillNow()
      .catch((err: Error) => this.options.log.error({ err: err.message }, 'the spool index could not be read; it is tried again'))
      .finally(() => {
        this.refilling = false;
        if (this.refillAgain && !this.stopped) this.schedulePump();
      });
    this.track(task);
  }

  private async refillNow(): Promise<void> {
    const { spool, log } = this.options;
    const until = bucketOf(Date.now() + ACTIVE_HORIZON_MS);
    const current = bucketOf(Date.now());
    let loaded = 0;
    let full = false;
    for (const bucket of await spool.index.buckets()) {
      if (bucket > until || this.stopped) break;
      if (this.active.size >= this.activeLimit) {
        full = true;
        break;
      }
      let empty = true;
      const found: SpoolEnvelope[] = [];
      let batch: string[] = [];
      const loadBatch = async () => {
        const ids = batch;
        batch = [];
        await Promise.all(ids.map(async (id) => {
          let envelope: SpoolEnvelope | null;
          try {
            envelope = await spool.load(id, bucket);
          } catch (err) {
            // unreadable: kept, tried again in an hour (not every second)
            log.error({ id, err: (err as Error).message }, 'a queued message cannot be read; it is tried again in an hour');
            await spool.reindex(id, bucket, Date.now() + 3600_000);
            return;
          }
          if (!envelope) {
            await spool.index.remove(bucket, id);
            return;
          }
          const due = dueOf(envelope);
          if (this.active.has(id) || bucketOf(due) > until) {
            await spool.reindex(id, bucket, due);
            if (!this.active.has(id)) spool.release(id);
            return;
          }
          found.push(envelope);
        }));
      };
      for await (const id of spool.index.entries(bucket)) {
        empty = false;
        if (this.stopped) break;
        if (this.active.size + found.length + batch.length >= this.activeLimit) {
          full = true;
          break;
        }
        if (this.active.has(id) || spool.isHeld(id)) {
          // its own entry, or one left behind by a move that a crash cut short
          const own = spool.heldBucket(id);
          if (own !== undefined && own !== bucket) await spool.index.remove(bucket, id);
          continue;
        }
        batch.push(id);
        if (batch.length >= LOAD_PARALLEL) await loadBatch();
      }
      await loadBatch();
      // in the order they are due (the folder lists them in no particular order)
      found.sort((a, b) => dueOf(a) - dueOf(b));
      for (const envelope of found) {
        if (this.active.has(envelope.id) || this.stopped) continue;
        this.active.set(envelope.id, envelope);
        loaded++;
      }
      if (empty && bucket < current) await spool.index.drop(bucket);
    }
    this.moreOnDisk = full;
    if (loaded) this.schedulePump();
  }

  /** Room in the active queue: refill it now if due messages may wait on disk (else the next poll looks). */
  private roomFreed(): void {
    if (this.moreOnDisk && this.active.size < this.activeLimit) this.schedulePump();
  }

  /**
   * `queue retry --all` for the messages on disk: each one's state is made due `now` and
   * written (its index entry moves to now), minute by minute; the refill loads them as the
   * active queue has room. Not durable as a whole: a stop cuts it short (what was written stays).
   */
  private flush(now: number): void {
    if (this.flushing) return;
    this.flushing = true;
    const { spool, log } = this.options;
    const task = (async () => {
      let made = 0;
      for (const bucket of await spool.index.buckets()) {
        for await (const id of spool.index.entries(bucket)) {
          if (this.stopped) return made;
          if (this.active.has(id) || spool.isHeld(id)) continue;
          const envelope = await spool.load(id, bucket).catch(() => null);
          if (!envelope) continue;
          if (this.active.has(id)) continue;
          let touched = false;
          for (const r of envelope.recipients) {
            if (r.status === 'queued' && r.nextAttemptAt > now) {
              r.nextAttemptAt = now;
              touched = true;
            }
          }
          if (touched) {
            await spool.update(envelope);
            if (++made % 100 === 0) {
              this.moreOnDisk = true;
              this.roomFreed();
            }
          }
          spool.release(id);
        }
      }
      return made;
    })()
      .then((made) => log.info({ messages: made, by: 'queue retry' }, 'queued messages on disk made due now'))
      .catch((err: Error) => log.error({ err: err.message }, 'queue retry --all was cut short'))
      .finally(() => {
        this.flushing = false;
        this.moreOnDisk = true;
        this.schedulePump();
      });
    this.track(task);
  }

  /**
   * Walks the whole spool for messages the index lacks (see due-index.ts), slowly: a pause
   * after every 200 messages, so that a large spool takes minutes and the relay goes on.
   */
  private repair(rebuild = false): void {
    if (this.repairing || this.stopped) return;
    this.repairing = true;
    const { spool, log } = this.options;
    const started = Date.now();
    const pause = () => new Promise<boolean>((resolve) => {
      if (this.stopped) resolve(false); // the rest at the next start that needs it (the index stays untrusted only if unclean)
      else if (rebuild) setImmediate(() => resolve(true));
      else setTimeout(() => resolve(true), 100);
    });
    const task = spool.repairIndex(pause)
      .then(async (result) => {
        if (!result.complete) return; // stopped: the next start walks again (due-index.ts)
        await spool.index.repaired();
        const fields = { ...result, seconds: Math.round((Date.now() - started) / 1000) };
        if (result.added || result.removed) log.warn(fields, 'the spool index lacked messages: added (or cleaned away what a crash left)');
        else log.info(fields, 'the spool index was checked against the spool');
        if (result.added) this.schedulePump();
      })
      .catch((err: Error) => log.error({ err: err.message }, 'the spool index could not be checked; it is tried again tomorrow'))
      .finally(() => {
        this.repairing = false;
      });
    this.track(task);
  }

  /** Starts the jobs of one message's due recipients; returns when its next one is due. */
  private pumpEnvelope(envelope: SpoolEnvelope, now: number): number {
    if (this.deleteRequests.has(envelope.id)) return Infinity;
    let earliest = Infinity;
    const groups = new Map<string, RecipientState[]>();
    for (const r of envelope.recipients) {
      if (r.status !== 'queued' || this.busy.has(`${envelope.id}\n${r.address}`)) continue;
      if (r.nextAttemptAt > now) {
        earliest = Math.min(earliest, r.nextAttemptAt);
        continue;
      }
      const key = this.options.route.smarthost ? '' : domainOf(r.address);
      const group = groups.get(key);
      if (group) group.push(r);
      else groups.set(key, [r]);
    }
    for (const [domain, recipients] of groups) this.startJob({ envelope, domain, recipients });
    // Nothing left to deliver but a bounce that could not be queued before: try again.
    if (!groups.size && !this.running.get(envelope.id) && !this.finalizing.has(envelope.id) && envelope.recipients.every((r) => r.status !== 'queued')) {
      this.track(this.finalize(envelope).catch((err: Error) => this.options.log.error({ id: envelope.id, err: err.message }, 'finishing the message failed')));
    }
    return earliest;
  }

  /** A timer for the next due recipient when it comes before the next poll. */
  private setWake(at: number): void {
    if (at === Infinity || at >= this.wakeAt) return;
    if (this.wake) clearTimeout(this.wake);
    this.wakeAt = at;
    this.wake = setTimeout(() => {
      this.wake = null;
      this.wakeAt = Infinity;
      this.pump();
    }, Math.max(0, at - Date.now()) + 5);
    this.wake.unref();
  }

  private startJob(job: Job): void {
    this.jobs++;
    this.running.set(job.envelope.id, (this.running.get(job.envelope.id) ?? 0) + 1);
    for (const r of job.recipients) this.busy.add(`${job.envelope.id}\n${r.address}`);
    this.track(this.routeJob(job).catch((err: Error) => {
      this.options.log.error({ id: job.envelope.id, domain: job.domain, err: err.message }, 'delivery run failed');
      return this.finishJob(job);
    }));
  }

  private track<T>(task: Promise<T>): void {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  private async routeJob(job: Job): Promise<void> {
    const { log } = this.options;
    const domain = job.domain || domainOf(job.recipients[0].address);
    const route: Route = await this.routes.route(domain);
    if (route.kind === 'unroutable') {
      log.info({ id: job.envelope.id, domain, reply: route.reason, ...explained(route.reason) }, 'delivery attempt: no route');
      for (const r of job.recipients) this.record(job, r, route.permanent ? 'failed' : 'deferred', route.reason);
      this.addHistory(job.envelope, { recipients: job.recipients.map((r) => r.address), outcome: route.permanent ? 'failed' : 'deferred', reply: route.reason });
      return this.finishJob(job);
    }
    // MTA-STS enforce: only the MX hosts its policy names; none of them: deferred, never sent elsewhere
    const tls = this.options.route.smarthost ? undefined : await this.options.tlsPolicy?.forDomain(domain);
    const { allowed: destinations, refusal } = tls ? tls.filter(route.destinations) : { allowed: route.destinations, refusal: undefined };
    if (!destinations.length) {
      const reply = refusal ?? 'no MX host allowed by the TLS policy';
      log.info({ id: job.envelope.id, domain, outcome: 'deferred', reply, ...explained(reply) }, 'delivery attempt: refused by TLS policy');
      for (const r of job.recipients) this.record(job, r, 'deferred', reply);
      this.addHistory(job.envelope, { recipients: job.recipients.map((r) => r.address), outcome: 'deferred', reply });
      return this.finishJob(job);
    }
    const hosts = [...new Set(route.destinations.map((d) => d.host.toLowerCase()))];
    const siteKey = (this.options.route.smarthost ? `smarthost:${this.options.route.smarthost}` : hosts.join(',')) + (tls ? `|${tls.key}` : '');
    let site = this.sites.get(siteKey);
    if (!site) {
      const limit = limitFor(hosts, this.rules, this.options.limits);
      site = { key: siteKey, limit, destinations, jobs: [], workers: 0, idle: [], acquiring: false, retry: null };
      this.sites.set(siteKey, site);
    }
    site.destinations = destinations;
    site.tls = tls;
    job.provider = providerOf(site);
    if (this.destinations.pausedUntil(site.limit.key) > Date.now()) {
      this.holdForPause(job, site);
      return;
    }
    const down = this.unreachable.get(siteKey);
    if (down && Date.now() < down.at + UNREACHABLE_MS) {
      this.deferUnreachable(job, down);
      return;
    }
    site.jobs.push(job);
    this.kick(site);
  }

  /**
   * Whether the job may be sent now: not when the destination is paused (perhaps by another
   * node) or the job is over its rate; then it and the jobs waiting at the site are held,
   * without using up attempts, until the pause ends or their turn in the rate comes.
   */
  private async mayGo(site: Site, job: Job): Promise<boolean> {
    if (this.destinations.pausedUntil(site.limit.key) > Date.now()) {
      for (const j of [job, ...site.jobs.splice(0)]) this.holdForPause(j, site);
      return false;
    }
    const rate = site.limit.rate;
    if (!rate) return true;
    const retryAt = await this.destinations.takeRate(site.limit.key, rate).catch(() => 0);
    if (!retryAt) return true;
    // Spread the waiting jobs over the turns to come instead of all waking at once.
    const interval = rate.periodMs / rate.count;
    const held = [job, ...site.jobs.splice(0)];
    this.options.log.debug({ destination: site.limit.key, rule: site.limit.rule, jobs: held.length, retryAt: new Date(retryAt).toISOString() }, 'message rate reached: jobs wait for their turn');
    held.forEach((j, i) => this.holdUntil(j, retryAt + i * interval));
    return false;
  }

  /** A job that waits (rate) until `at`, without using an attempt. */
  private holdUntil(job: Job, at: number): void {
    for (const r of job.recipients) r.nextAttemptAt = Math.max(r.nextAttemptAt, at);
    void this.finishJob(job, false);
  }

  /** A paused destination: the job waits for the end of the pause without using an attempt. */
  private holdForPause(job: Job, site: Site): void {
    const until = this.destinations.pausedUntil(site.limit.key);
    for (const r of job.recipients) r.nextAttemptAt = Math.max(r.nextAttemptAt, until);
    void this.finishJob(job, false);
  }

  /** A site that took no connection moments ago: deferred without a try, an attempt used. */
  private deferUnreachable(job: Job, down: Unreachable): void {
    const ago = Math.round((Date.now() - down.at) / 1000);
    const reply = down.tlsPolicy ? `${down.reply} (not tried again: ${ago} s ago)` : `not tried: ${down.host} [${down.ip}] took no connection ${ago} s ago (${down.reply})`;
    this.options.log.info({ id: job.envelope.id, domain: job.domain || domainOf(job.recipients[0].address), host: down.host, ip: down.ip, outcome: 'deferred', reply, ...explained(reply) }, 'delivery attempt: destination unreachable');
    for (const r of job.recipients) this.record(job, r, 'deferred', reply, down.host);
    this.addHistory(job.envelope, { recipients: job.recipients.map((r) => r.address), outcome: 'deferred', reply, host: down.host, ip: down.ip });
    void this.finishJob(job);
  }

  private kick(site: Site): void {
    while (site.jobs.length && !this.stopped) {
      const idle = site.idle.shift();
      if (idle) {
        idle(site.jobs.shift()!);
        continue;
      }
      if (this.destinations.pausedUntil(site.limit.key) > Date.now()) {
        for (const job of site.jobs.splice(0)) this.holdForPause(job, site);
        return;
      }
      if (this.connections >= this.options.concurrency || site.acquiring) return;
      // The slot's connection counts against `concurrency` while it is asked for.
      this.connections++;
      site.acquiring = true;
      this.track(this.destinations.acquire(site.limit.key, site.limit.connections).then(
        (lease) => this.acquired(site, lease),
        () => this.acquired(site, null),
      ));
      return;
    }
  }

  /** A slot was asked for: start a worker with it, or ask again a bit later. */
  private acquired(site: Site, lease: Lease | null): void {
    site.acquiring = false;
    const job = lease && !this.stopped ? site.jobs.shift() : undefined;
    if (!job) {
      lease?.release();
      this.connections--;
      if (!lease && site.jobs.length && !site.retry && !this.stopped) {
        site.retry = setTimeout(() => {
          site.retry = null;
          this.kick(site);
        }, SLOT_RETRY_MS);
        site.retry.unref();
      }
      return;
    }
    site.workers++;
    this.track(this.worker(site, job, lease!));
    this.kick(site);
  }

  private kickAll(): void {
    for (const site of this.sites.values()) {
      this.kick(site);
      if (!site.jobs.length && !site.workers && !site.acquiring) {
        if (site.retry) clearTimeout(site.retry);
        this.sites.delete(site.key);
      }
    }
  }

  private waitForJob(site: Site): Promise<Job | null> {
    if (this.stopped) return Promise.resolve(null);
    return new Promise((resolve) => {
      const take = (job: Job | null) => {
        clearTimeout(timer);
        resolve(job);
      };
      const timer = setTimeout(() => {
        site.idle = site.idle.filter((w) => w !== take);
        resolve(null);
      }, this.options.idleMs ?? 1000);
      site.idle.push(take);
    });
  }

  /** One connection's life: sends the site's jobs until none is left, the limit, or trouble. */
  private async worker(site: Site, first: Job, lease: Lease): Promise<void> {
    let job: Job | null = first;
    let session: SmtpSession | null = null;
    let sent = 0;
    // A session opened for a TLS report skipped the TLS policy (RFC 8460 5.3): it carries that
    // report only, never the site's next job, which must meet MTA-STS or DANE.
    let reportOnly = false;
    try {
      while (job) {
        // Another node may have paused the destination, or its rate says wait.
        if (!(await this.mayGo(site, job))) break;
        if (!session) {
          session = await this.openSession(site, job);
          if (!session) break;
          this.options.events?.connectionOpened(providerOf(site), session.tlsOutcome.level);
          sent = 0;
          reportOnly = !!job.envelope.tlsReport;
        }
        const outcome = await this.sendJob(site, session, job, sent + 1);
        sent++;
        if (outcome === 'throttled' || !session.usable) {
          session.close();
          this.sessions.delete(session);
          session = null;
          if (outcome === 'throttled') break;
        } else if (sent >= site.limit.messagesPerConnection || reportOnly) {
          await session.quit();
          this.sessions.delete(session);
          session = null;
        }
        if (this.stopped) break;
        job = site.jobs.shift() ?? (session ? await this.waitForJob(site) : null);
      }
    } finally {
      if (session) {
        await session.quit();
        this.sessions.delete(session);
      }
      lease.release();
      this.connections--;
      site.workers--;
      this.kickAll();
    }
  }

  /**
   * Connects to the site's hosts in priority order, equal ones in random order. When none
   * takes the connection, the job and every job waiting at the site get the last host's answer.
   */
  private async openSession(site: Site, job: Job): Promise<SmtpSession | null> {
    const { log } = this.options;
    // tlsPolicy: the last host failed its TLS policy (DANE, MTA-STS), it did not fail to answer
    let last = { outcome: 'deferred' as Outcome, reply: 'no host tried', host: '', ip: '', tlsPolicy: false };
    for (const destination of orderForAttempt(site.destinations, this.options.random, this.options.route.preference === 'any')) {
      if (this.stopped) break;
      const started = Date.now();
      const domain = job.domain || domainOf(job.recipients[0].address);
      // A TLS report goes out whatever the TLS policy (RFC 8460 5.3, TLS-Required: No, RFC 8689):
      // a report about failing TLS must reach a domain whose TLS fails.
      const dane = job.envelope.tlsReport ? undefined : await this.options.dane?.(destination, domain);
      if (dane && 'defer' in dane) {
        this.reportTls(job, destination, null, dane);
        // the TLS policy rules this host out for now (DANE: its DNSSEC does not validate)
        last = { outcome: 'deferred', reply: dane.defer, host: destination.host, ip: destination.ip, tlsPolicy: true };
        log.info({
          id: job.envelope.id, domain, host: destination.host, ip: destination.ip,
          outcome: last.outcome, reply: last.reply, ...explained(last.reply, destination.host), durationMs: Date.now() - started,
          ...(dane.result ? { tlsPolicy: 'tlsa', tlsFailure: dane.result } : {}),
        }, 'delivery attempt');
        continue;
      }
      const tls = dane ?? (job.envelope.tlsReport ? undefined : await site.tls?.requirement(destination));
      const opened = await SmtpSession.open(destination, this.options.transport, { domain, tls });
      this.reportTls(job, destination, opened, tls);
      if ('session' in opened) {
        this.sessions.add(opened.session);
        return opened.session;
      }
      last = { outcome: opened.error.outcome, reply: opened.error.reply, host: destination.host, ip: destination.ip, tlsPolicy: !!opened.error.tls };
      log.info({
        id: job.envelope.id, domain, host: destination.host, ip: destination.ip,
        outcome: last.outcome, reply: last.reply, ...explained(last.reply, destination.host), ...tlsFields(opened.error.tls), durationMs: Date.now() - started,
      }, 'delivery attempt');
      if (isThrottling(last.reply)) break;
      // A 5xx greeting is the site's final word; anything else: next host.
      if (last.outcome === 'failed') break;
    }
    const jobs = [job, ...site.jobs.splice(0)];
    if (this.stopped && last.reply === 'no host tried') {
      for (const j of jobs) void this.finishJob(j, false);
      return null;
    }
    if (isThrottling(last.reply)) {
      this.pauseSite(site, last.reply, job);
      this.addHistory(job.envelope, { recipients: job.recipients.map((r) => r.address), outcome: 'paused', reply: last.reply, host: last.host, ip: last.ip });
      for (const j of jobs) this.holdForPause(j, site);
      return null;
    }
    if (last.outcome === 'deferred' && last.host) {
      const now = Date.now();
      for (const [key, down] of this.unreachable) if (now >= down.at + UNREACHABLE_MS) this.unreachable.delete(key);
      this.unreachable.set(site.key, { at: now, reply: last.reply, host: last.host, ip: last.ip, tlsPolicy: last.tlsPolicy });
    }
    for (const j of jobs) {
      for (const r of j.recipients) this.record(j, r, last.outcome, last.reply, last.host);
      this.addHistory(j.envelope, { recipients: j.recipients.map((r) => r.address), outcome: last.outcome, reply: last.reply, host: last.host, ip: last.ip });
      void this.finishJob(j);
    }
    return null;
  }

  /** The connection's TLS outcome for the TLS reports; never a report's own (RFC 8460 5.3). */
  private reportTls(job: Job, destination: Destination, opened: OpenResult | null, tls: TlsRequirement | TlsDeferral | undefined): void {
    if (!this.options.tlsReports || !job.domain || job.envelope.tlsReport) return;
    const outcome = opened
      ? tlsOutcomeOfOpen(opened, job.domain)
      : tls && 'defer' in tls ? tlsOutcomeOfDeferral(tls, destination, job.domain) : undefined;
    if (outcome) this.options.tlsReports.record(outcome);
  }

  private async sendJob(site: Site, session: SmtpSession, job: Job, onConnection: number): Promise<'sent' | 'throttled'> {
    const { log, spool } = this.options;
    const { envelope } = job;
    const domain = job.domain || domainOf(job.recipients[0].address);
    const started = Date.now();
    const result = await session.send(
      { from: envelope.sender, to: job.recipients.map((r) => r.address), declared: envelope.declared },
      spool.openSigned(envelope)
    );
    const durationMs = Date.now() - started;
    this.options.events?.messageSent(providerOf(site), durationMs);
    const { host, ip } = session.destination;
    const throttle = result.recipients.find((r) => r.outcome === 'deferred' && isThrottling(r.reply));
    for (const outcome of result.recipients) {
      log.info({
        id: envelope.id, domain, host, ip, recipient: outcome.address, outcome: outcome.outcome, reply: outcome.reply,
        ...explained(outcome.reply, host), tls: session.tls, ...tlsFields(session.tlsOutcome),
        onConnection, durationMs,
      }, 'delivery attempt');
    }
    this.applyResults(job, result.recipients, host);
    for (const kind of ['delivered', 'deferred', 'failed'] as const) {
      const recipients = result.recipients.filter((r) => r.outcome === kind);
      if (recipients.length) this.addHistory(envelope, { recipients: recipients.map((r) => r.address), outcome: kind, reply: recipients[0].reply, host, ip });
    }
    await this.finishJob(job);
    if (throttle) {
      this.pauseSite(site, throttle.reply, job);
      for (const j of site.jobs.splice(0)) this.holdForPause(j, site);
      return 'throttled';
    }
    return 'sent';
  }

  private pauseSite(site: Site, reply: string, job: Job): void {
    const until = Date.now() + site.limit.throttlePauseMs;
    this.options.events?.destinationPaused(providerOf(site), until, reply);
    if (this.destinations.pause(site.limit.key, until)) {
      this.options.log.warn({
        destination: site.limit.key, rule: site.limit.rule, hosts: site.key, reply, id: job.envelope.id,
        pausedUntil: new Date(until).toISOString(), pauseSeconds: site.limit.throttlePauseMs / 1000,
      }, `destination ${site.limit.rule === 'default' ? site.key : site.limit.rule} throttles us: paused for ${site.limit.throttlePauseMs / 1000} s`);
    }
  }

  private applyResults(job: Job, results: RecipientResult[], host: string): void {
    for (const r of job.recipients) {
      const result = results.find((x) => x.address === r.address);
      this.record(job, r, result?.outcome ?? 'deferred', result?.reply ?? 'no answer for this recipient', host);
    }
  }

  private record(job: Job, recipient: RecipientState, outcome: Outcome, reply: string, host?: string): void {
    const now = Date.now();
    recipient.attempts += 1;
    recipient.lastReply = reply;
    recipient.lastAttemptAt = now;
    if (host) recipient.remoteHost = host;
    const events = this.options.events;
    if (outcome === 'delivered' || outcome === 'failed') {
      recipient.status = outcome;
      if (outcome === 'failed') this.options.log.warn({ id: job.envelope.id, recipient: recipient.address, reply }, 'recipient failed permanently');
      events?.recipientDone({ provider: job.provider ?? 'unroutable', domain: domainOf(recipient.address), outcome, reply, host });
      return;
    }
    const acceptedAt = Date.parse(job.envelope.receivedAt);
    const { schedule } = this.options;
    if (schedule.expired(acceptedAt, now)) {
      recipient.status = 'failed';
      recipient.lastReply = `gave up after ${recipient.attempts} attempts in ${formatDuration(now - acceptedAt)}: ${reply}`;
      recipient.expired = true;
      this.options.log.warn({ id: job.envelope.id, recipient: recipient.address, reply: recipient.lastReply }, 'recipient failed permanently');
      events?.recipientDone({ provider: job.provider ?? 'unroutable', domain: domainOf(recipient.address), outcome: 'failed', reply, host, expired: true });
      return;
    }
    recipient.nextAttemptAt = schedule.nextAttempt(recipient.attempts, acceptedAt, now);
    events?.recipientDone({ provider: job.provider ?? 'unroutable', domain: domainOf(recipient.address), outcome, reply, host });
  }

  private addHistory(envelope: SpoolEnvelope, record: Omit<AttemptRecord, 'at'>): void {
    const history = envelope.history ?? [];
    const verdict = ['delivered', 'deferred', 'failed', 'paused'].includes(record.outcome) ? explained(record.reply, record.host) : {};
    history.push({ at: Date.now(), ...record, ...verdict });
    envelope.history = history.slice(-HISTORY_LENGTH);
  }

  /** A job is over: its state goes to disk; the message is finalized when nothing else of it runs. */
  private async finishJob(job: Job, attempted = true): Promise<void> {
    const { envelope } = job;
    for (const r of job.recipients) this.busy.delete(`${envelope.id}\n${r.address}`);
    this.jobs--;
    const left = (this.running.get(envelope.id) ?? 1) - 1;
    if (left > 0) this.running.set(envelope.id, left);
    else this.running.delete(envelope.id);
    try {
      // A message about to be removed (every recipient delivered) needs no state written first.
      const removing = left <= 0 && envelope.recipients.every((r) => r.status === 'delivered');
      if (attempted && !removing && this.active.has(envelope.id)) await this.options.spool.update(envelope);
      if (left <= 0) await this.finalize(envelope);
      if (left <= 0) await this.leaveIfNotDue(envelope, attempted);
    } catch (err) {
      this.options.log.error({ id: envelope.id, err: (err as Error).message }, 'the spool could not record a delivery state; it is tried again later');
    }
    // No scan of the whole queue per job (that made every message cost O(queue size)):
    // a wake-up for this job's deferred recipients, and a scan only if one was cut short.
    if (this.capped) this.schedulePump();
    else this.setWake(Math.min(...job.recipients.filter((r) => r.status === 'queued').map((r) => r.nextAttemptAt)));
  }

  /**
   * A message with no job running that is not due within the horizon leaves the active queue
   * (its state written first when the job did not write it: a hold for a pause).
   */
  private async leaveIfNotDue(envelope: SpoolEnvelope, written: boolean): Promise<void> {
    const { id } = envelope;
    if (!this.active.has(id) || this.running.get(id) || this.finalizing.has(id) || this.deleteRequests.has(id)) return;
    if (dueOf(envelope) <= Date.now() + ACTIVE_HORIZON_MS) return;
    if (!written) await this.options.spool.update(envelope);
    if (this.running.get(id) || this.active.get(id) !== envelope) return; // taken up again meanwhile
    this.active.delete(id);
    this.options.spool.release(id);
    this.roomFreed();
  }

  /** Bounces, delay notices, deletion and removal of a message with no job running. */
  private async finalize(envelope: SpoolEnvelope): Promise<void> {
    if (!this.active.has(envelope.id) || this.finalizing.has(envelope.id)) return;
    this.finalizing.add(envelope.id);
    try {
      await this.finalizeNow(envelope);
    } finally {
      this.finalizing.delete(envelope.id);
    }
  }

  private async finalizeNow(envelope: SpoolEnvelope): Promise<void> {
    const { log, spool } = this.options;
    const deletion = this.deleteRequests.get(envelope.id);
    if (deletion) {
      for (const r of envelope.recipients) {
        if (r.status !== 'queued') continue;
        r.status = 'failed';
        r.lastReply = DELETED_REPLY;
        r.notified = !deletion.bounce;
      }
      this.addHistory(envelope, { recipients: [], outcome: 'deleted', reply: deletion.bounce ? 'deleted, with a bounce' : 'deleted' });
    }
    let changed = false;
    const failed = envelope.recipients.filter((r) => r.status === 'failed' && !r.notified);
    if (failed.length) {
      if (await this.bounce(envelope, failed, 'failed')) {
        for (const r of failed) r.notified = true;
        changed = true;
      }
    }
    const delayMs = this.options.delayWarningMs ?? 0;
    if (delayMs > 0 && !envelope.delayNotified && Date.now() - Date.parse(envelope.receivedAt) >= delayMs) {
      const waiting = envelope.recipients.filter((r) => r.status === 'queued' && r.attempts > 0);
      if (waiting.length && (await this.bounce(envelope, waiting, 'delayed'))) {
        envelope.delayNotified = true;
        changed = true;
      }
    }
    if (envelope.recipients.every((r) => r.status !== 'queued' && (r.status !== 'failed' || r.notified))) {
      this.active.delete(envelope.id);
      this.deleteRequests.delete(envelope.id);
      this.options.journal?.append(finalOutcome(envelope, !!deletion));
      this.roomFreed();
      await spool.remove(envelope.id);
      log.info({ id: envelope.id, recipients: envelope.recipients.map((r) => ({ address: r.address, status: r.status })) }, 'message done');
    } else if (changed) {
      await spool.update(envelope);
    }
  }

  /** Queues a DSN; true when it is queued or none is due (null sender), false when it failed. */
  private async bounce(envelope: SpoolEnvelope, recipients: RecipientState[], kind: 'failed' | 'delayed'): Promise<boolean> {
    const ctx = this.options.bounce;
    if (!ctx || !envelope.sender || envelope.dsn) {
      if (kind === 'failed' && (!envelope.sender || envelope.dsn)) {
        this.options.log.info({ id: envelope.id, recipients: recipients.map((r) => r.address) }, 'no bounce: the message has the null sender');
      }
      return true;
    }
    const dsnRecipients: DsnRecipient[] = recipients.map((r) => ({
      address: r.address,
      action: kind,
      reply: r.lastReply ?? (kind === 'failed' ? 'failed' : 'not delivered yet'),
      remoteHost: r.remoteHost,
      lastAttemptAt: r.lastAttemptAt,
      expired: r.expired,
    }));
    try {
      const dsn = await queueBounce(envelope, dsnRecipients, kind, {
        ...ctx, spool: this.options.spool, log: this.options.log, expireMs: this.options.schedule.expireMs,
      });
      if (dsn) this.add(dsn);
      if (dsn && kind === 'failed') for (const r of recipients) r.bounceId = dsn.id;
      return true;
    } catch (err) {
      this.options.log.error({ id: envelope.id, err: (err as Error).message }, 'the bounce could not be queued; it is tried again later');
      return false;
    }
  }
}

/** A site's name in events: its limit rule (all hosts of a provider share it), else its first MX host. */
function providerOf(site: Site): string {
  return site.limit.rule === 'default' ? site.limit.key.replace(/^host:/, '') : site.limit.rule;
}

/** What a connection reached in TLS, for the `delivery attempt` line. */
function tlsFields(outcome: TlsOutcome | undefined): Record<string, unknown> {
  if (!outcome) return {};
  return {
    tlsLevel: outcome.level, tlsVersion: outcome.tlsVersion ?? null, tlsVerified: outcome.verified,
    ...(outcome.policy.type !== 'no-policy-found' ? { tlsPolicy: outcome.policy.type } : {}),
    ...(outcome.failure ? { tlsFailure: outcome.failure.result, tlsFailureReason: outcome.failure.reason } : {}),
  };
}

/** The class and explanation of a reply, for log lines and the attempt history. */
function explained(reply: string, host?: string): { class: string; explanation: string; fix?: string } {
  const v = verdictOf(reply, host);
  return { class: v.class, explanation: v.explanation, ...(v.fix ? { fix: v.fix } : {}) };
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
