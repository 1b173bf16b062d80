// MTA-STS (RFC 8461): a recipient domain's promise that its MX hosts speak TLS with valid
// certificates. Its `_mta-sts` TXT record carries a policy id; the policy itself comes from
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (certificate checked against the trust
// store, no redirects, 64 KB, a time limit, text/plain). Policies are kept on disk under the
// data dir for their max_age, so a restart does not open the window an attacker needs (one
// stripped TXT answer or one failed fetch); the TXT record is checked again at most once a
// RECHECK_MS per domain, a new id fetches the policy again, a policy past half its life is
// fetched again in the background, and a failed fetch keeps the policy in force.
// The parser and MX matcher are small and ours: mailauth's (lib/mta-sts.js) loads its
// tools module, 10-12 MiB more RSS in the running relay (measured with Node 24);
// test/unit/mta-sts-parse.test.ts compares the two.
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { domainToASCII } from 'node:url';
import { replaceFileSync } from '../fs/durable-file';
import { describeDnsError, isNotFound, Resolver } from '../dns/resolver';
import { Logger } from '../log';
import { Destination } from './route';
import { TlsPolicyRef, TlsResultType } from './tls-outcome';
import { certificateNames, DomainTlsPolicy, TlsPolicySource, webPkiVerify } from './tls-policy';
import { TlsRequirement } from './transport';
import { TrustStore } from './trust-store';

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  mode: StsMode;
  /** MX patterns, lower case: "mx1.example.net" or "*.example.net". */
  mx: string[];
  /** Seconds. */
  maxAge: number;
}

/** A fetched policy as cached (memory and disk). */
export interface CachedStsPolicy extends StsPolicy {
  domain: string;
  id: string;
  /** The policy's lines, for TLS reports (RFC 8460 policy-string). */
  lines: string[];
  /** Epoch ms. */
  fetchedAt: number;
  expiresAt: number;
}

export type StsFailure = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export class StsPolicyError extends Error {
  constructor(readonly result: StsFailure, message: string) {
    super(message);
  }
}

/** RFC 8461 3.3 */
export const MAX_POLICY_BYTES = 64 * 1024;
/** RFC 8461 3.2: max_age at most a year. */
const MAX_AGE_LIMIT = 31557600;
const FETCH_TIMEOUT_MS = 20_000;
/** How long a domain's TXT answer is reused before it is asked again. */
const RECHECK_MS = 60_000;
/** A policy id whose fetch failed is not fetched again for this long (the cached policy, if any, stays). */
const RETRY_FAILED_MS = 5 * 60_000;
/** Domains remembered in memory; beyond it, those without a policy are forgotten (their answer is asked again). */
const MAX_ENTRIES = 10_000;

// ---- record and policy syntax ----

/** The policy id of a domain's `_mta-sts` TXT records, or why there is none (RFC 8461 3.1). */
export function parseStsRecord(records: string[]): { id: string } | { none: string } {
  // records that do not begin with "v=STSv1;" are discarded; more than one means no policy
  const sts = records.filter((r) => /^v=STSv1[ \t]*;/.test(r));
  if (!sts.length) return { none: 'no v=STSv1 record' };
  if (sts.length > 1) return { none: `${sts.length} v=STSv1 records (RFC 8461 3.1 wants exactly one)` };
  for (const field of sts[0].split(';').slice(1)) {
    const m = /^[ \t]*id[ \t]*=[ \t]*([^ \t]*)[ \t]*$/.exec(field);
    if (!m) continue;
    return /^[A-Za-z0-9]{1,32}$/.test(m[1]) ? { id: m[1] } : { none: `id "${m[1]}" is not 1-32 letters and digits` };
  }
  return { none: 'the record has no id' };
}

/** A policy file (RFC 8461 3.2); throws StsPolicyError(sts-policy-invalid) saying what is wrong. */
export function parseStsPolicy(text: string): StsPolicy & { lines: string[] } {
  const fields = new Map<string, string>();
  const mx: string[] = [];
  const lines: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    lines.push(line);
    const colon = line.indexOf(':');
    if (colon < 1) continue;
    // field names and the mode's values are ABNF strings: case-insensitive
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'mx') {
      const pattern = value.toLowerCase().replace(/\.$/, '');
      if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(pattern)) {
        throw new StsPolicyError('sts-policy-invalid', `mx "${value}" is not a host name or *.domain pattern`);
      }
      if (!mx.includes(pattern)) mx.push(pattern);
    } else if (!fields.has(key)) {
      fields.set(key, value); // a repeated field: the first one counts
    }
  }
  if (fields.get('version') !== 'STSv1') throw new StsPolicyError('sts-policy-invalid', `version is ${fields.has('version') ? `"${fields.get('version')}"` : 'missing'}, not STSv1`);
  const mode = fields.get('mode')?.toLowerCase();
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') {
    throw new StsPolicyError('sts-policy-invalid', `mode is ${mode === undefined ? 'missing' : `"${fields.get('mode')}"`}; it must be enforce, testing or none`);
  }
  const maxAgeText = fields.get('max_age');
  if (maxAgeText === undefined || !/^\d{1,10}$/.test(maxAgeText) || Number(maxAgeText) > MAX_AGE_LIMIT) {
    throw new StsPolicyError('sts-policy-invalid', `max_age is ${maxAgeText === undefined ? 'missing' : `"${maxAgeText}"`}; it must be 0 to ${MAX_AGE_LIMIT} seconds`);
  }
  if (mode !== 'none' && !mx.length) throw new StsPolicyError('sts-policy-invalid', `mode ${mode} needs at least one mx line`);
  return { mode, mx, maxAge: Number(maxAgeText), lines };
}

/** A host name as policies name it: lower case, A-labels, no trailing dot. */
export function normalizeHost(name: string): string {
  const trimmed = name.trim().replace(/\.$/, '').toLowerCase();
  return domainToASCII(trimmed) || trimmed;
}

/** RFC 8461 4.1: "*.example.net" matches exactly one more left-most label; else the exact name. */
export function mxMatches(host: string, patterns: string[]): boolean {
  const name = normalizeHost(host);
  if (!name || name.includes('*')) return false;
  return patterns.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === name;
    const suffix = pattern.slice(1); // ".example.net"
    return name.endsWith(suffix) && name.length > suffix.length && !name.slice(0, -suffix.length).includes('.');
  });
}

// ---- fetching ----

export interface FetchOptions {
  resolver: Resolver;
  trust: TrustStore;
  /** 443; tests give their HTTPS server's port (an internal option, not a setting). */
  port?: number;
  timeoutMs?: number;
}

/** What OpenSSL and Node say about a certificate they refused. */
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET_ISSUER|VERIFY_LEAF)|ALTNAME|CHAIN/;

/** Fetches and parses the policy of `domain`; throws StsPolicyError saying what failed. */
export async function fetchStsPolicy(domain: string, options: FetchOptions): Promise<StsPolicy & { lines: string[] }> {
  const host = `mta-sts.${domain}`;
  const url = `https://${host}/.well-known/mta-sts.txt`;
  const addresses: string[] = [];
  for (const lookup of [options.resolver.a, options.resolver.aaaa]) {
    try {
      addresses.push(...await lookup.call(options.resolver, host));
    } catch (err) {
      if (!isNotFound(err)) throw new StsPolicyError('sts-policy-fetch-error', `${host}: ${describeDnsError(err)}`);
    }
  }
  if (!addresses.length) throw new StsPolicyError('sts-policy-fetch-error', `${host} has no address (A/AAAA), so ${url} cannot be fetched`);
  let last: StsPolicyError | undefined;
  for (const address of addresses) {
    try {
      const body = await get(url, host, address, options);
      return parseStsPolicy(body);
    } catch (err) {
      last = err instanceof StsPolicyError ? err : new StsPolicyError('sts-policy-fetch-error', `${url}: ${(err as Error).message}`);
      // only a host that took no connection is worth another address
      if (!/ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EADDRNOTAVAIL/.test(last.message)) break;
    }
  }
  throw last!;
}

function get(url: string, host: string, address: string, options: FetchOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: Error | null, body?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolve(body!);
    };
    const fail = (result: StsFailure, why: string) => finish(new StsPolicyError(result, `${url}${net.isIPv6(address) ? ` [${address}]` : ` (${address})`}: ${why}`));
    const req = https.request({
      host: address,
      port: options.port ?? 443,
      path: '/.well-known/mta-sts.txt',
      method: 'GET',
      servername: host,
      headers: { host, 'user-agent': 'dkim-relay (MTA-STS)' },
      agent: false,
      // passed on to tls.connect (not in https' types): the trust store, TLS 1.2+
      ...{ secureContext: options.trust.context() } as object,
      rejectUnauthorized: true,
      // RFC 8461 3.3: the policy host's name among the certificate's DNS names
      checkServerIdentity: (_name, cert) => (certificateNames(cert, host) ? undefined
        : Object.assign(new Error(`the certificate does not name ${host} (it names ${(cert.subjectaltname ?? '').replace(/DNS:/g, '') || 'nothing'})`), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' })),
    }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const where = res.headers.location ? ` redirecting to ${res.headers.location}, which RFC 8461 3.3 forbids following` : '';
        return fail('sts-policy-fetch-error', `HTTP ${status}${where}; only 200 gives a policy`);
      }
      const type = String(res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'text/plain') return fail('sts-policy-invalid', `Content-Type is "${res.headers['content-type'] ?? ''}", not text/plain (RFC 8461 3.2)`);
      if (Number(res.headers['content-length']) > MAX_POLICY_BYTES) return fail('sts-policy-fetch-error', `the policy is ${res.headers['content-length']} bytes, more than ${MAX_POLICY_BYTES}`);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_POLICY_BYTES) return fail('sts-policy-fetch-error', `the policy is more than ${MAX_POLICY_BYTES} bytes`);
        chunks.push(chunk);
      });
      res.on('end', () => finish(null, Buffer.concat(chunks).toString('utf8')));
      res.on('error', (err) => fail('sts-policy-fetch-error', err.message));
      res.on('aborted', () => fail('sts-policy-fetch-error', 'the response was cut off'));
    });
    const timer = setTimeout(() => fail('sts-policy-fetch-error', `no complete answer within ${timeoutMs / 1000} s`), timeoutMs);
    timer.unref();
    req.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (CERTIFICATE_ERROR.test(code)) fail('sts-webpki-invalid', `the certificate is not valid: ${err.message} (${code})`);
      else fail('sts-policy-fetch-error', `${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`);
    });
    req.end();
  });
}

// ---- the policies in force, cached ----

export interface MtaStsOptions extends FetchOptions {
  /** The cache lives in dataDir/mta-sts. */
  dataDir: string;
  log: Logger;
  /** Tests: how long a TXT answer is reused (RECHECK_MS). */
  recheckMs?: number;
  now?: () => number;
}

/** The policy in force for a domain, and a fetch failure to report (also while a cached policy stays in force). */
export interface StsState {
  policy?: CachedStsPolicy;
  error?: { result: TlsResultType; reason: string };
}

interface Entry {
  state: StsState;
  checkedAt: number;
  /** The last failed fetch: not repeated for its id within RETRY_FAILED_MS. */
  failed?: { id: string; at: number; error: StsPolicyError };
  running?: Promise<StsState>;
  refreshing?: boolean;
}

export class MtaStsPolicies implements TlsPolicySource {
  private readonly entries = new Map<string, Entry>();
  private readonly dir: string;
  private readonly background = new Set<Promise<unknown>>();
  private readonly now: () => number;

  constructor(private readonly options: MtaStsOptions) {
    this.dir = path.join(options.dataDir, 'mta-sts');
    this.now = options.now ?? Date.now;
  }

  /** The policy in force for `domain` (checking DNS and fetching as RFC 8461 5.1 says). */
  async lookup(domain: string): Promise<StsState> {
    const name = normalizeHost(domain);
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(name)) return {};
    let entry = this.entries.get(name);
    if (!entry) {
      if (this.entries.size >= MAX_ENTRIES) this.prune();
      entry = { state: { policy: this.load(name) }, checkedAt: -Infinity };
      this.entries.set(name, entry);
    }
    const now = this.now();
    if (entry.running) return entry.running;
    const fresh = now - entry.checkedAt < (this.options.recheckMs ?? RECHECK_MS);
    if (fresh && (!entry.state.policy || entry.state.policy.expiresAt > now)) return entry.state;
    const e = entry;
    e.running = this.check(name, e).finally(() => {
      e.running = undefined;
    });
    return e.running;
  }

  async forDomain(domain: string): Promise<DomainTlsPolicy | undefined> {
    let state: StsState;
    try {
      state = await this.lookup(domain);
    } catch (err) {
      // never a reason to hold mail back: as if the domain had no policy
      this.options.log.error({ domain, err: (err as Error).message }, 'MTA-STS lookup failed');
      return undefined;
    }
    return domainPolicy(normalizeHost(domain), state);
  }

  /** Waits for background refreshes (at shutdown), at most timeoutMs: a late one only rewrites its cache file. */
  async idle(timeoutMs = 1000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.background]), new Promise((r) => {
      timer = setTimeout(r, timeoutMs);
    })]);
    clearTimeout(timer);
  }

  private prune(): void {
    for (const [name, entry] of this.entries) {
      if (!entry.state.policy && !entry.running && !entry.refreshing) this.entries.delete(name);
    }
  }

  private async check(domain: string, entry: Entry): Promise<StsState> {
    const { log } = this.options;
    const now = this.now();
    const cached = entry.state.policy && entry.state.policy.expiresAt > now ? entry.state.policy : undefined;
    let record: { id: string } | { none: string };
    try {
      record = parseStsRecord(await this.options.resolver.txt(`_mta-sts.${domain}`));
    } catch (err) {
      record = { none: isNotFound(err) ? 'no _mta-sts record' : `_mta-sts.${domain}: ${describeDnsError(err)}` };
    }
    entry.checkedAt = now;
    if ('none' in record) {
      // RFC 8461 5.1 and 10.2: a record gone (or stripped) leaves a cached policy in force
      if (!cached && entry.state.policy) this.forget(domain); // expired: nothing to keep
      entry.state = cached ? { policy: cached } : {};
      return entry.state;
    }
    if (cached && cached.id === record.id) {
      // past half its life (at most a day): fetched again in the background
      if (now - cached.fetchedAt > Math.min(cached.maxAge * 500, 86_400_000)) this.refresh(domain, entry, record.id);
      entry.state = { policy: cached };
      return entry.state;
    }
    if (entry.failed?.id === record.id && now - entry.failed.at < RETRY_FAILED_MS) {
      entry.state = { policy: cached, error: { result: entry.failed.error.result, reason: entry.failed.error.message } };
      return entry.state;
    }
    try {
      const policy = await this.fetch(domain, record.id);
      log.info({ domain, id: policy.id, mode: policy.mode, mx: policy.mx, maxAge: policy.maxAge }, `MTA-STS policy of ${domain} fetched: mode ${policy.mode}`);
      entry.failed = undefined;
      entry.state = { policy };
    } catch (err) {
      const error = err instanceof StsPolicyError ? err : new StsPolicyError('sts-policy-fetch-error', (err as Error).message);
      entry.failed = { id: record.id, at: now, error };
      log.warn({ domain, id: record.id, result: error.result, err: error.message, cachedPolicy: cached ? cached.id : null },
        cached ? `MTA-STS policy ${record.id} of ${domain} could not be fetched; policy ${cached.id} stays in force` : `MTA-STS policy of ${domain} could not be fetched; delivering as if it had none`);
      entry.state = { policy: cached, error: { result: error.result, reason: error.message } };
    }
    return entry.state;
  }

  private refresh(domain: string, entry: Entry, id: string): void {
    if (entry.refreshing) return;
    entry.refreshing = true;
    const task = this.fetch(domain, id).then((policy) => {
      entry.state = { policy };
      this.options.log.debug({ domain, id, expiresAt: new Date(policy.expiresAt).toISOString() }, `MTA-STS policy of ${domain} refreshed`);
    }, (err: Error) => {
      this.options.log.warn({ domain, id, err: err.message }, `MTA-STS policy of ${domain} could not be refreshed; the cached one stays in force until it expires`);
    }).finally(() => {
      entry.refreshing = false;
      this.background.delete(task);
    });
    this.background.add(task);
  }

  private async fetch(domain: string, id: string): Promise<CachedStsPolicy> {
    const parsed = await fetchStsPolicy(domain, this.options);
    const fetchedAt = this.now();
    const policy: CachedStsPolicy = { domain, id, ...parsed, fetchedAt, expiresAt: fetchedAt + parsed.maxAge * 1000 };
    this.store(policy);
    return policy;
  }

  private file(domain: string): string {
    return path.join(this.dir, `${domain}.json`);
  }

  private store(policy: CachedStsPolicy): void {
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      replaceFileSync(this.file(policy.domain), `${JSON.stringify(policy)}\n`, 0o600);
    } catch (err) {
      // the policy still applies from memory; after a restart it is fetched again
      this.options.log.error({ domain: policy.domain, dir: this.dir, err: (err as Error).message }, 'MTA-STS policy could not be written to disk');
    }
  }

  private load(domain: string): CachedStsPolicy | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.file(domain), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const p = JSON.parse(text) as CachedStsPolicy;
      const ok = p.domain === domain && typeof p.id === 'string' && ['enforce', 'testing', 'none'].includes(p.mode)
        && Array.isArray(p.mx) && Number.isFinite(p.expiresAt) && Number.isFinite(p.fetchedAt) && Array.isArray(p.lines);
      if (ok) return p;
    } catch {
      // reported below
    }
    this.options.log.warn({ domain, file: this.file(domain) }, 'cached MTA-STS policy is unreadable; it is fetched again');
    return undefined;
  }

  private forget(domain: string): void {
    fs.rm(this.file(domain), { force: true }, () => undefined);
  }
}

/** A domain's MTA-STS state as delivery applies it; undefined where nothing applies. */
export function domainPolicy(domain: string, state: StsState): DomainTlsPolicy | undefined {
  const { policy, error } = state;
  if (!policy || policy.mode === 'none') {
    if (!error) return undefined;
    // a policy announced but not fetched: delivered as before, the failure recorded for reports
    const ref: TlsPolicyRef = { type: 'sts', domain };
    return {
      key: `sts-failed:${domain}`,
      filter: (destinations) => ({ allowed: destinations }),
      requirement: async () => ({ level: 'opportunistic', requireTls: false, policy: ref, noted: error }),
    };
  }
  const ref: TlsPolicyRef = { type: 'sts', domain, string: policy.lines, mxHost: policy.mx };
  const enforce = policy.mode === 'enforce';
  const label = `MTA-STS ${policy.mode}`;
  const mismatch = (hosts: string[]) => `${hosts.join(', ')} ${hosts.length === 1 ? 'does' : 'do'} not match the policy of ${domain} (mx: ${policy.mx.join(', ')})`;
  return {
    key: `sts:${policy.mode}:${domain}:${policy.id}`,
    filter(destinations: Destination[]) {
      if (!enforce) return { allowed: destinations };
      const allowed = destinations.filter((d) => mxMatches(d.host, policy.mx));
      if (allowed.length) return { allowed };
      return { allowed, refusal: `${label}: ${mismatch([...new Set(destinations.map((d) => normalizeHost(d.host)))])}` };
    },
    async requirement(destination: Destination): Promise<TlsRequirement> {
      const matches = mxMatches(destination.host, policy.mx);
      return {
        level: 'sts',
        requireTls: enforce,
        verify: webPkiVerify(destination.host),
        policy: ref,
        label,
        ...(matches ? {} : { noted: { result: 'validation-failure', reason: mismatch([normalizeHost(destination.host)]) } }),
      };
    },
  };
}
