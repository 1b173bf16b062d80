// Sends the TLS reports (RFC 8460) of the periods that have ended. For each recipient domain
// with records: its _smtp._tls TXT record through the relay's resolver; none (or none that
// parses) and the records are dropped, no report. Otherwise the report goes to every rua:
// mailto: addresses get one message, queued through the relay's own spool and queue
// (report-mail.ts); https: URIs get a POST (https-post.ts). What is still to do is kept with
// the records (collector.ts), so a restart resumes it; a DNS or POST failure is tried again
// a few times, then given up with a warning. The report id is the same for every try, so a
// receiver that gets a report twice (a crash between queueing and noting it) sees one.
//
// No report storms: a report message is marked `tlsReport` in the spool, and the queue
// runner does not record the TLS outcome of connections opened for it (RFC 8460 5.3: the
// sender SHOULD NOT include such a session in the next report). So a report to a domain
// whose MX fails TLS does not produce a report about the report, and a domain that only
// receives reports never gets one. A report that cannot be delivered is retried by the queue
// and then dropped without a bounce (null sender).
import { isNotFound, Resolver } from '../dns/resolver';
import { KeyStore } from '../dkim/key-store';
import { Logger } from '../log';
import { Spool, SpoolEnvelope } from '../spool/spool';
import { DomainRecord, Period, SendState, TlsReportCollector } from './collector';
import { postReport } from './https-post';
import { readTlsRptRecords, recordName, ReportTarget } from './policy-record';
import { queueReportMail } from './report-mail';
import { buildReport, gzipReport, reportFileName, ReportIdentity, rfc3339 } from './report-json';

/** Tries of one report (DNS lookup and POSTs) before it is given up. */
export const MAX_ATTEMPTS = 4;

export interface SenderOptions {
  collector: TlsReportCollector;
  resolver: Resolver;
  log: Logger;
  identity: ReportIdentity;
  intervalMs: number;
  spool: Spool;
  keys: KeyStore;
  /** A report message was committed to the spool: hand it to the queue. */
  onQueued: (envelope: SpoolEnvelope) => void;
  /** CAs for https: rua (the system's plus delivery.caFile). */
  ca: string[];
  postTimeoutMs?: number;
  now?: () => number;
}

export class TlsReportSender {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: SenderOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Looks for ended periods a few times per period (at most once a minute, at least every 250 ms). */
  start(): void {
    const every = Math.min(60_000, Math.max(250, Math.floor(this.options.intervalMs / 4)));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One pass over the ended periods; does nothing while the last pass still runs. */
  tick(): Promise<void> {
    this.running ??= this.pass().catch((err: Error) => {
      this.options.log.error({ err: err.message }, 'TLS reports: sending failed; tried again later');
    }).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    const { collector } = this.options;
    let worked = false;
    for (const period of collector.ended(this.now())) {
      for (const domain of Object.keys(period.domains)) {
        if (this.stopped) return;
        const record = period.domains[domain];
        if (record.send && record.send.nextAt > this.now()) continue;
        await this.report(period, domain, record);
        worked = true;
      }
    }
    if (worked) await collector.flush();
  }

  private async report(period: Period, domain: string, record: DomainRecord): Promise<void> {
    const { collector, log } = this.options;
    const state: SendState = record.send ??= { attempts: 0, nextAt: 0 };
    const where = { domain, period: rfc3339(period.start) };
    if (!state.targets) {
      let txt: string[];
      try {
        txt = await this.options.resolver.txt(recordName(domain));
      } catch (err) {
        if (isNotFound(err)) {
          log.debug(where, `no TLS report for ${domain}: it publishes no ${recordName(domain)} record`);
          collector.done(period, domain);
          return;
        }
        this.failed(period, domain, state, `the lookup of ${recordName(domain)} failed: ${(err as Error).message}`);
        return;
      }
      const reading = readTlsRptRecords(txt);
      if (!reading.ok) {
        log.debug(where, `no TLS report for ${domain}: ${recordName(domain)} has ${reading.reason}`);
        collector.done(period, domain);
        return;
      }
      state.targets = reading.targets.map((t) => t.uri);
      collector.touched();
    }
    const targets = targetsOf(state.targets);
    const report = buildReport(period, domain, record, this.options.identity);
    const gzipped = gzipReport(report);
    const problems: string[] = [];

    const mailto = targets.filter((t): t is Extract<ReportTarget, { kind: 'mailto' }> => t.kind === 'mailto');
    if (mailto.length) {
      try {
        const envelope = await queueReportMail({
          heloName: this.options.identity.submitter,
          domain,
          reportId: report['report-id'],
          recipients: [...new Set(mailto.map((t) => t.address.toLowerCase()))],
          fileName: reportFileName(period, domain, this.options.identity.submitter),
          gzipped,
          start: report['date-range']['start-datetime'],
          end: report['date-range']['end-datetime'],
        }, { spool: this.options.spool, keys: this.options.keys });
        state.targets = state.targets.filter((uri) => !mailto.some((t) => t.uri === uri));
        collector.touched();
        log.info({ ...where, id: envelope.id, to: envelope.recipients.map((r) => r.address), reportId: report['report-id'], signed: envelope.signing?.domain ?? null }, `TLS report for ${domain} queued`);
        this.options.onQueued(envelope);
      } catch (err) {
        problems.push(`the report message could not be queued: ${(err as Error).message}`);
      }
    }
    for (const target of targets) {
      if (target.kind !== 'https') continue;
      try {
        const status = await postReport(target.url, gzipped, {
          resolver: this.options.resolver, ca: this.options.ca, timeoutMs: this.options.postTimeoutMs ?? 30_000,
        });
        state.targets = state.targets.filter((uri) => uri !== target.uri);
        collector.touched();
        log.info({ ...where, url: target.uri, status, reportId: report['report-id'] }, `TLS report for ${domain} posted`);
      } catch (err) {
        problems.push(`POST to ${target.uri} failed: ${(err as Error).message}`);
      }
    }
    if (!state.targets.length) collector.done(period, domain);
    else this.failed(period, domain, state, problems.join('; ') || 'unusable rua URIs');
  }

  /** A try failed: again later, or given up after MAX_ATTEMPTS. */
  private failed(period: Period, domain: string, state: SendState, problem: string): void {
    const { collector, log } = this.options;
    state.attempts++;
    const where = { domain, period: rfc3339(period.start), attempts: state.attempts };
    if (state.attempts >= MAX_ATTEMPTS) {
      log.warn({ ...where, err: problem }, `TLS report for ${domain} given up after ${state.attempts} tries: ${problem}`);
      collector.done(period, domain);
      return;
    }
    const waitMs = retryDelay(state.attempts, this.options.intervalMs);
    state.nextAt = this.now() + waitMs;
    collector.touched();
    log.warn({ ...where, err: problem, retryInSeconds: Math.round(waitMs / 1000) }, `TLS report for ${domain} not sent yet: ${problem}`);
  }
}

/** 1 min, 5 min, 25 min after the first, second, third failure; never longer than a period. */
export function retryDelay(attempts: number, intervalMs: number): number {
  return Math.min(60_000 * 5 ** (attempts - 1), Math.max(1000, intervalMs));
}

function targetsOf(uris: string[]): ReportTarget[] {
  const reading = readTlsRptRecords([`v=TLSRPTv1; rua=${uris.join(',')}`]);
  return reading.ok ? reading.targets : [];
}
