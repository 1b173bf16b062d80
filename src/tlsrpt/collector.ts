// The TLS report collector (RFC 8460): every delivery connection's TlsOutcome is counted here,
// per reporting period, per recipient domain, per policy (type, policy string, MX patterns),
// as successful or failed sessions, with the failures broken down by (result type, sending IP,
// MX host, receiving IP, reason): RFC 8460 4.4's summary and failure-details. The counts live
// in memory and go to <dataDir>/tlsrpt/records.json every few seconds and at stop (an atomic,
// fsynced replacement, not one write per connection), so a restart keeps them; a crash loses
// at most the last few seconds. Periods that have ended stay in the file until the sender
// (sender.ts) has reported them or given up, so a restart in the middle of sending resumes it.
// Everything is bounded: domains per period, policies per domain, failure details per policy.
import fs from 'node:fs';
import path from 'node:path';
import { replaceFile } from '../fs/durable-file';
import { Logger } from '../log';
import { TlsOutcome, TlsPolicyRef, TlsResultType } from '../delivery/tls-outcome';

export const MAX_DOMAINS_PER_PERIOD = 10_000;
export const MAX_POLICIES_PER_DOMAIN = 20;
export const MAX_DETAILS_PER_POLICY = 50;
/** Periods kept at most (a relay that was down long, or domains whose reports keep failing). */
export const MAX_PERIODS = 8;
/** Longest failure-reason-code kept: reason texts are for people, not unbounded. */
const MAX_REASON = 200;

export interface FailureDetail {
  result: TlsResultType;
  sendingIp?: string;
  mxHost: string;
  receivingIp: string;
  reason?: string;
  count: number;
}

export interface PolicyRecord {
  policy: TlsPolicyRef;
  success: number;
  failure: number;
  details: FailureDetail[];
  /** Failures whose detail did not fit under MAX_DETAILS_PER_POLICY (counted in `failure`). */
  detailsDropped?: number;
}

/** Where the report of one domain and period stands once its period has ended. */
export interface SendState {
  /** rua URIs still to be served; absent until the _smtp._tls record was read. */
  targets?: string[];
  /** Failed tries so far (DNS failure, POST failure), and when to try next (epoch ms). */
  attempts: number;
  nextAt: number;
}

export interface DomainRecord {
  policies: PolicyRecord[];
  send?: SendState;
}

export interface Period {
  /** Epoch ms, start inclusive, end exclusive. */
  start: number;
  end: number;
  domains: Record<string, DomainRecord>;
  /** Connections not counted because MAX_DOMAINS_PER_PERIOD was reached. */
  domainsDropped?: number;
}

interface StoredRecords {
  version: 1;
  periods: Period[];
}

export interface CollectorOptions {
  dataDir: string;
  /** The reporting period in ms; periods are aligned to multiples of it since the epoch (1d: the UTC day). */
  intervalMs: number;
  log: Logger;
  /** The relay's source address for a receiving IP (by its family); absent when the OS chooses. */
  sendingIp?: (receivingIp: string) => string | undefined;
  /** How often records are written out when something changed. */
  flushMs?: number;
  now?: () => number;
}

/** The file the records live in. */
export function recordsFile(dataDir: string): string {
  return path.join(dataDir, 'tlsrpt', 'records.json');
}

/** Start of the period that holds `at`. */
export function periodStart(at: number, intervalMs: number): number {
  return Math.floor(at / intervalMs) * intervalMs;
}

export class TlsReportCollector {
  private readonly periods = new Map<number, Period>();
  private readonly file: string;
  private dirty = false;
  private writing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(private readonly options: CollectorOptions) {
    this.file = recordsFile(options.dataDir);
    this.now = options.now ?? Date.now;
    this.load();
  }

  /** Starts the periodic write-out. */
  start(): void {
    this.timer = setInterval(() => void this.flush(), this.options.flushMs ?? 5000);
    this.timer.unref();
  }

  /** Writes what is left and stops the timer. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  /**
   * Counts one connection. A connection that reached no TLS at all counts as a failure even
   * without a policy: RFC 8460 4.4 counts as successful only "successfully negotiated
   * TLS-enabled connections", and a clear-text one is not.
   */
  record(outcome: TlsOutcome): void {
    const domain = outcome.domain.toLowerCase().replace(/\.$/, '');
    if (!domain) return;
    // A connection of a period that has ended (and may be reported already) counts in the current one.
    const now = this.now();
    let start = periodStart(outcome.at, this.options.intervalMs);
    if (start + this.options.intervalMs <= now) start = periodStart(now, this.options.intervalMs);
    let period = this.periods.get(start);
    if (!period) {
      period = { start, end: start + this.options.intervalMs, domains: {} };
      this.periods.set(start, period);
      this.trimPeriods();
    }
    let record = period.domains[domain];
    if (!record) {
      if (Object.keys(period.domains).length >= MAX_DOMAINS_PER_PERIOD) {
        if (!period.domainsDropped) {
          this.options.log.warn({ period: new Date(start).toISOString(), max: MAX_DOMAINS_PER_PERIOD }, 'TLS reports: too many recipient domains in this period; connections to further domains are not counted');
        }
        period.domainsDropped = (period.domainsDropped ?? 0) + 1;
        this.dirty = true;
        return;
      }
      record = { policies: [] };
      period.domains[domain] = record;
    }
    const key = policyKey(outcome.policy);
    let policy = record.policies.find((p) => policyKey(p.policy) === key);
    if (!policy) {
      if (record.policies.length >= MAX_POLICIES_PER_DOMAIN) return;
      policy = { policy: outcome.policy, success: 0, failure: 0, details: [] };
      record.policies.push(policy);
    }
    const failure = outcome.failure ?? (outcome.level === 'none'
      ? { result: 'starttls-not-supported' as const, reason: 'the session ran without TLS' }
      : undefined);
    this.dirty = true;
    if (!failure) {
      policy.success++;
      return;
    }
    policy.failure++;
    const detail = {
      result: failure.result,
      sendingIp: this.options.sendingIp?.(outcome.ip),
      mxHost: outcome.mxHost,
      receivingIp: outcome.ip,
      reason: failure.reason ? oneLine(failure.reason).slice(0, MAX_REASON) : undefined,
    };
    const same = policy.details.find((d) => d.result === detail.result && d.sendingIp === detail.sendingIp
      && d.mxHost === detail.mxHost && d.receivingIp === detail.receivingIp && d.reason === detail.reason);
    if (same) same.count++;
    else if (policy.details.length < MAX_DETAILS_PER_POLICY) policy.details.push({ ...detail, count: 1 });
    else policy.detailsDropped = (policy.detailsDropped ?? 0) + 1;
  }

  /** Periods that ended by `now`, oldest first: the sender's work. */
  ended(now = this.now()): Period[] {
    return [...this.periods.values()].filter((p) => p.end <= now).sort((a, b) => a.start - b.start);
  }

  /** The period that holds `at` (tests, and the status of the current one). */
  periodAt(at: number): Period | undefined {
    return this.periods.get(periodStart(at, this.options.intervalMs));
  }

  /** The sender changed a domain's send state. */
  touched(): void {
    this.dirty = true;
  }

  /** The report of `domain` for `period` is done (sent, or given up, or not wanted). */
  done(period: Period, domain: string): void {
    delete period.domains[domain];
    if (!Object.keys(period.domains).length) this.periods.delete(period.start);
    this.dirty = true;
  }

  /** Writes the records if they changed; one write at a time. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (!this.dirty) return;
    this.dirty = false;
    const stored: StoredRecords = { version: 1, periods: [...this.periods.values()] };
    this.writing = (async () => {
      try {
        await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
        await replaceFile(this.file, JSON.stringify(stored));
      } catch (err) {
        this.dirty = true;
        this.options.log.error({ file: this.file, err: (err as Error).message }, 'TLS report records could not be written; tried again in a few seconds');
      }
    })();
    try {
      await this.writing;
    } finally {
      this.writing = null;
    }
  }

  private load(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.options.log.error({ file: this.file, err: (err as Error).message }, 'TLS report records cannot be read; counting starts afresh');
      }
      return;
    }
    try {
      const stored = JSON.parse(text) as StoredRecords;
      if (stored.version !== 1 || !Array.isArray(stored.periods)) throw new Error('not a version 1 records file');
      for (const p of stored.periods) {
        if (!Number.isFinite(p.start) || !Number.isFinite(p.end) || typeof p.domains !== 'object' || !p.domains) continue;
        this.periods.set(p.start, p);
      }
      this.trimPeriods();
    } catch (err) {
      this.options.log.error({ file: this.file, err: (err as Error).message }, 'TLS report records are damaged; counting starts afresh (the file is replaced at the next write)');
    }
  }

  private trimPeriods(): void {
    const starts = [...this.periods.keys()].sort((a, b) => a - b);
    while (starts.length > MAX_PERIODS) {
      const oldest = starts.shift()!;
      this.options.log.warn({ period: new Date(oldest).toISOString() }, 'TLS reports: an old period that was never reported is dropped');
      this.periods.delete(oldest);
      this.dirty = true;
    }
  }
}

function policyKey(p: TlsPolicyRef): string {
  return JSON.stringify([p.type, p.domain.toLowerCase(), p.string ?? [], p.mxHost ?? []]);
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
}
