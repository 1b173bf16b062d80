// The one place where every setting of dkim-relay is declared: its doc, default, format and
// environment variable. README's configuration reference is written from this file.
// Per-domain and per-user settings are arrays, never maps: convict splits keys on dots, and
// domain names and addresses are full of them.
import convict from 'convict';
import net from 'node:net';

/** "host:port" or "[v6]:port"; the port is optional where a default applies. */
export function parseHostPort(value: string, defaultPort?: number): { host: string; port: number } {
  const v = value.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  let host: string;
  let port: string | undefined;
  if (bracket) {
    host = bracket[1];
    port = bracket[2];
  } else if (net.isIPv6(v)) {
    host = v;
  } else {
    const i = v.lastIndexOf(':');
    host = i >= 0 ? v.slice(0, i) : v;
    port = i >= 0 ? v.slice(i + 1) : undefined;
  }
  const portNumber = port === undefined ? defaultPort : Number(port);
  if (!host || portNumber === undefined || !Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
    throw new Error(`"${value}" is not host:port (for example 192.0.2.1:25 or [2001:db8::1]:25)`);
  }
  return { host, port: portNumber };
}

/** A listen address: host:port or [v6]:port, where port 0 asks for any free port. */
export function parseListenAddress(value: string): { host: string; port: number } {
  const v = value.trim();
  const any = /:0$/.test(v);
  const parsed = parseHostPort(any ? v.replace(/:0$/, ':1') : v);
  return any ? { ...parsed, port: 0 } : parsed;
}

/** CIDR such as 10.0.0.0/8 or ::1/128; a bare address means the single host. */
export function parseCidr(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [address, prefixText] = value.trim().split('/');
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
  if (!family) throw new Error(`"${value}" is not an IP network (for example 192.0.2.0/24 or 2001:db8::/32)`);
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) {
    throw new Error(`"${value}" has a bad prefix length (0-${max} for ${family === 'ipv4' ? 'IPv4' : 'IPv6'})`);
  }
  return { address, prefix, family };
}

function listOf(name: string, check: (item: string) => unknown) {
  return {
    name,
    validate(value: unknown) {
      if (!Array.isArray(value)) throw new Error('must be a list (comma separated in the environment)');
      for (const item of value) check(String(item));
    },
    coerce: (value: string) => value.split(',').map((s) => s.trim()).filter(Boolean),
  };
}

convict.addFormat(listOf('cidr-list', parseCidr));
convict.addFormat(listOf('hostport-list', (s) => parseHostPort(s, 53)));
// DNS servers are asked before any name can be resolved, so they must be addresses.
convict.addFormat(listOf('ip-port-list', (s) => {
  const { host } = parseHostPort(s, 53);
  if (!net.isIP(host)) {
    throw new Error(`"${s}" names a host, but DNS servers must be IP addresses with an optional port, such as 127.0.0.1, 192.0.2.53:53 or [2001:db8::53]:53`);
  }
}));
convict.addFormat(listOf('dns-zone-list', (s) => {
  if (!/^([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)+[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(s)) throw new Error(`"${s}" is not a DNS zone name (for example bl.spamcop.net)`);
}));
convict.addFormat({
  name: 'dns-zone-or-empty',
  validate(value: unknown) {
    if (value !== '' && !/^([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)+[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(String(value))) {
      throw new Error('must be a DNS zone name such as zen.spamhaus.org, or empty');
    }
  },
});
convict.addFormat({
  // a switch: on/off (also true/false, yes/no, 1/0) in the environment, a boolean in a file
  name: 'on-off',
  validate(value: unknown) {
    if (typeof value !== 'boolean') throw new Error(`must be on or off, not "${String(value)}"`);
  },
  coerce: (value: string) => {
    const v = String(value).trim().toLowerCase();
    if (['on', 'true', 'yes', '1'].includes(v)) return true;
    if (['off', 'false', 'no', '0'].includes(v)) return false;
    return value;
  },
});
convict.addFormat({
  name: 'hostport-or-empty',
  validate(value: unknown) {
    if (value !== '') parseHostPort(String(value));
  },
});
convict.addFormat({
  name: 'listen-or-empty',
  validate(value: unknown) {
    if (value !== '') parseListenAddress(String(value));
  },
});
convict.addFormat({
  name: 'ip-or-empty',
  validate(value: unknown) {
    if (value !== '' && !net.isIP(String(value))) throw new Error('must be an IPv4 or IPv6 address of this machine, or empty');
  },
});
convict.addFormat({
  name: 'local-addresses',
  validate(value: unknown) {
    parseLocalAddresses(String(value));
  },
});
convict.addFormat({
  name: 'bytes',
  validate(value: unknown) {
    if (!Number.isInteger(value) || (value as number) < 1) throw new Error(`must be a size: a number of bytes, or with a unit ${BYTE_UNITS} (for example 50M or 512K)`);
  },
  // an unreadable size stays a string, so the message quotes what was written
  coerce: (value: string) => (Number.isNaN(parseBytes(value)) ? value : parseBytes(value)),
});
convict.addFormat({
  name: 'duration-list',
  validate(value: unknown) {
    parseDurationList(String(value));
  },
});
convict.addFormat({
  name: 'destination-limits',
  validate(value: unknown) {
    parseDestinationLimits(value);
  },
  coerce: (value: string) => {
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value; // validate() then says what is wrong
    }
  },
});
/** on/off (also true/false, yes/no, 1/0): convict's Boolean reads "off" as true. */
export function parseSwitch(value: string | boolean): boolean | undefined {
  if (typeof value === 'boolean') return value;
  const v = value.trim().toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(v)) return true;
  if (['off', 'false', 'no', '0'].includes(v)) return false;
  return undefined;
}
convict.addFormat({
  name: 'on-off',
  validate(value: unknown) {
    if (typeof value !== 'boolean') throw new Error(`must be on or off, not "${String(value)}"`);
  },
  coerce: (value: string) => parseSwitch(value) ?? value,
});
convict.addFormat({
  name: 'redis-url',
  validate(value: unknown) {
    const v = String(value);
    if (v && !/^rediss?:\/\/[^\s]+$/i.test(v) && !v.startsWith('/')) {
      throw new Error('must be a Redis URL such as redis://127.0.0.1:6379 (redis://:PASSWORD@host:port/DB, rediss:// for TLS) or a unix socket path, or empty for no Redis');
    }
  },
});
convict.addFormat({
  name: 'seconds',
  validate(value: unknown) {
    if (typeof value !== 'number' || !(value >= 0)) throw new Error('must be a duration such as 30s, 5m, 1h');
  },
  coerce: (value: string) => parseSeconds(value),
});

/** The units a size takes, as error messages and README name them. */
export const BYTE_UNITS = 'K, M or G (also KB, MB, GB, KiB, MiB, GiB; all 1024-based)';

/** "50M", "50MB", "512K", "1048576" -> bytes (units are powers of 1024, like Postfix's sizes). */
export function parseBytes(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^\s*(\d+)\s*(?:([KMG])(?:i?B)?|B)?\s*$/i.exec(value);
  if (!m) return NaN;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? '').toUpperCase() as ''];
  return Number(m[1]) * unit;
}

/** "90", "30s", "5m", "1h", "2d" -> seconds. */
export function parseSeconds(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$/i.exec(value);
  if (!m) return NaN;
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's').toLowerCase() as 's'];
  return Number(m[1]) * unit;
}

/** "5m,10m,30m,1h" -> seconds per step (the last one repeats); every step must be > 0. */
export function parseDurationList(value: string): number[] {
  const steps = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!steps.length) throw new Error('must be a comma-separated list of durations such as 5m,10m,30m,1h');
  return steps.map((step) => {
    const seconds = parseSeconds(step);
    if (!(seconds > 0)) throw new Error(`"${step}" is not a duration (use s, m, h or d, e.g. 5m,10m,30m,1h)`);
    return seconds;
  });
}

/** A message rate of delivery.destinationLimits (GCRA: shared-state/gcra.ts). */
export interface Rate {
  count: number;
  periodMs: number;
  /** Messages that may go at once after a quiet time; 1: evenly spread. */
  burst: number;
}

export const PERIODS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "100/h" (also /s, /m, /d) into a rate; throws saying what is wrong. */
export function parseRate(text: string, burst = 1): Rate {
  const m = /^\s*(\d+)\s*\/\s*([smhd])\s*$/i.exec(String(text));
  if (!m || Number(m[1]) < 1) throw new Error(`"${text}" is not a rate: write messages per period, such as 100/h (also /s, /m, /d)`);
  if (!Number.isInteger(burst) || burst < 1) throw new Error(`burst must be a whole number >= 1 (got ${burst})`);
  return { count: Number(m[1]), periodMs: PERIODS[m[2].toLowerCase()], burst };
}

/** One entry of delivery.destinationLimits: limits for MX hosts matching a pattern. */
export interface DestinationLimitRule {
  /** MX host name pattern: "*.protection.outlook.com" (any subdomain) or an exact host name. */
  match: string;
  connections?: number;
  messagesPerConnection?: number;
  /** Seconds a destination is left alone after a throttling reply. */
  throttlePause?: number;
  /** Most messages per period over all nodes ("100/h"), with its burst. */
  rate?: Rate;
}

export function parseDestinationLimits(value: unknown): DestinationLimitRule[] {
  const example = 'e.g. [{"match": "*.protection.outlook.com", "connections": 5, "messagesPerConnection": 50, "throttlePause": "10m"}]';
  if (!Array.isArray(value)) throw new Error(`must be a list of rules (JSON in the environment), ${example}`);
  return value.map((entry: unknown) => {
    const e = entry as Record<string, unknown>;
    if (!e || typeof e !== 'object' || typeof e.match !== 'string' || !e.match.trim()) throw new Error(`every rule needs "match" (an MX host pattern), ${example}`);
    for (const key of Object.keys(e)) {
      if (!['match', 'connections', 'messagesPerConnection', 'throttlePause', 'rate', 'burst'].includes(key)) throw new Error(`rule for "${e.match}": unknown field "${key}" (known: match, connections, messagesPerConnection, throttlePause, rate, burst)`);
    }
    const rule: DestinationLimitRule = { match: e.match.trim().toLowerCase() };
    for (const key of ['connections', 'messagesPerConnection'] as const) {
      if (e[key] === undefined) continue;
      if (!Number.isInteger(e[key]) || (e[key] as number) < 1) throw new Error(`rule for "${e.match}": ${key} must be a whole number >= 1`);
      rule[key] = e[key] as number;
    }
    if (e.throttlePause !== undefined) {
      const seconds = parseSeconds(e.throttlePause as string | number);
      if (!(seconds >= 0)) throw new Error(`rule for "${e.match}": throttlePause must be a duration such as 10m`);
      rule.throttlePause = seconds;
    }
    if (e.burst !== undefined && e.rate === undefined) throw new Error(`rule for "${e.match}": burst needs a rate, such as "rate": "100/h", "burst": 10`);
    if (e.rate !== undefined) {
      try {
        rule.rate = parseRate(String(e.rate), e.burst === undefined ? 1 : (e.burst as number));
      } catch (err) {
        throw new Error(`rule for "${e.match}": ${(err as Error).message}`);
      }
    }
    return rule;
  });
}

export const schema = {
  submission: {
    host: { doc: 'Address the submission server listens on (STARTTLS).', format: String, default: '127.0.0.1', env: 'RELAY_SUBMISSION_HOST' },
    port: { doc: 'Port of the submission server (STARTTLS).', format: 'port', default: 2587, env: 'RELAY_SUBMISSION_PORT' },
    tlsPort: {
      doc: 'Port of an additional implicit-TLS submission listener (like 465); 0 turns it off.',
      format: 'port', default: 0, env: 'RELAY_SUBMISSION_TLS_PORT',
    },
    maxSize: { doc: 'Largest message accepted, in bytes or with a unit K, M, G (50M, 512K).', format: 'bytes', default: 50 * 1024 * 1024, env: 'RELAY_MAX_SIZE' },
    maxRecipients: { doc: 'Most recipients accepted for one message.', format: 'nat', default: 500, env: 'RELAY_MAX_RECIPIENTS' },
    maxLineLength: {
      doc: 'Longest header or body line accepted, in octets without CRLF (RFC 5322 allows 998).',
      format: 'nat', default: 998, env: 'RELAY_MAX_LINE_LENGTH',
    },
    maxHeaderSize: { doc: 'Largest header section accepted, in bytes.', format: 'bytes', default: 1024 * 1024, env: 'RELAY_MAX_HEADER_SIZE' },
    maxClients: { doc: 'Most simultaneous client connections.', format: 'nat', default: 200, env: 'RELAY_MAX_CLIENTS' },
    maxConnectionsPerClient: {
      // 20: what a Postfix in front of the relay opens to its relayhost (default_destination_concurrency_limit)
      doc: 'Most simultaneous connections from one client address (an IPv6 client: its /64) outside trustedNetworks; more get 421 4.7.0. 0: no limit.',
      format: 'nat', default: 20, env: 'RELAY_MAX_CONNECTIONS_PER_CLIENT',
    },
    reservedForTrustedNetworks: {
      doc: 'Connections of submission.maxClients kept for trustedNetworks: clients outside them together get the rest, so a flood from many addresses cannot shut out the trusted ones.',
      format: 'nat', default: 20, env: 'RELAY_RESERVED_FOR_TRUSTED_NETWORKS',
    },
    maxJunkCommands: {
      // Postfix's smtpd_junk_command_limit
      doc: 'Commands that send no mail (NOOP, RSET, VRFY, HELP, HELO/EHLO, and any command refused) one session may give between accepted messages; the next one gets 421 4.7.0 and the connection is closed. 0: no limit.',
      format: 'nat', default: 100, env: 'RELAY_MAX_JUNK_COMMANDS',
    },
    socketTimeout: { doc: 'Idle time after which a client connection is closed.', format: 'seconds', default: 300, env: 'RELAY_SOCKET_TIMEOUT' },
    maxCommandLength: {
      doc: 'Longest SMTP command line accepted, in octets (RFC 5321 wants 512; AUTH lines need more, RFC 4954 allows 12288).',
      format: 'nat', default: 4096, env: 'RELAY_MAX_COMMAND_LENGTH',
    },
    hideClient: {
      doc: 'Leave the client\'s address and EHLO name out of the Received field the relay adds.',
      format: Boolean, default: false, env: 'RELAY_HIDE_CLIENT',
    },
  },
  auth: {
    maxFailures: {
      doc: 'Failed logins (attempts in flight count) from one address (IPv6: one /64) before its AUTH is refused (421 4.7.0) for auth.blockTime, and its connections unless it is a trusted network; answers slow down after 3. Failures leak away over auth.blockTime; a successful login does not clear them.',
      format: 'nat', default: 10, env: 'RELAY_AUTH_MAX_FAILURES',
    },
    maxUserFailures: {
      doc: 'Failed logins (attempts in flight count) for one user name, from any addresses, before that name is refused for auth.blockTime from addresses that have not logged in as it in the last 30 days (its own clients keep working).',
      format: 'nat', default: 20, env: 'RELAY_AUTH_MAX_USER_FAILURES',
    },
    blockTime: { doc: 'How long an address (or user name) stays refused after too many failed logins; failures counted also take this long to leak away.', format: 'seconds', default: 900, env: 'RELAY_AUTH_BLOCK_TIME' },
    failureDelay: {
      doc: 'Added wait per failed login beyond the third (at most five times this), in seconds.',
      format: 'seconds', default: 1, env: 'RELAY_AUTH_FAILURE_DELAY',
    },
  },
  tls: {
    key: { doc: 'PEM private key for STARTTLS; empty: a self-signed certificate is made on first start and kept in the data dir.', format: String, default: '', env: 'RELAY_TLS_KEY' },
    cert: { doc: 'PEM certificate (chain) for STARTTLS; set together with tls.key.', format: String, default: '', env: 'RELAY_TLS_CERT' },
  },
  trustedNetworks: {
    doc: 'Client networks (CIDR) that may relay without AUTH.',
    format: 'cidr-list', default: ['127.0.0.0/8', '::1/128'], env: 'RELAY_TRUSTED_NETWORKS',
  },
  plainAuthNetworks: {
    doc: 'Client networks (CIDR) that may AUTH without TLS. Anyone else must run STARTTLS (or use the implicit-TLS port) first.',
    format: 'cidr-list', default: ['127.0.0.0/8', '::1/128'], env: 'RELAY_PLAIN_AUTH_NETWORKS',
  },
  usersFile: { doc: 'Users allowed to AUTH, with their sender domains (managed by `dkim-relay users`).', format: String, default: './config/users.json', env: 'RELAY_USERS_FILE' },
  keysDir: { doc: 'The DKIM key store: one folder per signing domain.', format: String, default: './keys', env: 'RELAY_KEYS_DIR' },
  keys: {
    checkInterval: {
      doc: 'How often the running relay looks up the DNS records of pending DKIM keys, to activate those whose record is published (also done at start).',
      format: 'seconds', default: 300, env: 'RELAY_KEYS_CHECK_INTERVAL',
    },
  },
  dataDir: { doc: 'Spool, journal of final outcomes and generated TLS certificate.', format: String, default: './data', env: 'RELAY_DATA_DIR' },
  signing: {
    unsignedPolicy: {
      doc: 'What to do with mail from a domain that has no DKIM key: "refuse" (550 with the keygen command) or "relay" (deliver unsigned, logged as a warning).',
      format: ['refuse', 'relay'], default: 'refuse', env: 'RELAY_UNSIGNED_POLICY',
    },
    displayNameAddresses: {
      doc: 'Whether an authenticated user\'s From (Sender, Resent-*) may carry an address of a domain the user may not send as in its display name or a comment ("x@other.test" <alice@example.test>): "refuse" (550 5.7.1; mail clients show such a name as the sender) or "allow".',
      format: ['refuse', 'allow'], default: 'refuse', env: 'RELAY_DISPLAY_NAME_ADDRESSES',
    },
  },
  delivery: {
    localAddress: {
      doc: 'Fixed source IPs for delivery: one IPv4 and/or one IPv6 address, comma separated (192.0.2.25,2001:db8::25); each MX address is reached from the one of its family. Empty: the OS chooses.',
      format: 'local-addresses', default: '', env: 'RELAY_LOCAL_ADDRESS',
    },
    heloName: { doc: 'EHLO name used on delivery; empty: the PTR name of the source address of each family (else the host name). When set, it must be the PTR name of every address in delivery.localAddress.', format: String, default: '', env: 'RELAY_HELO_NAME' },
    addressPreference: {
      doc: 'Which address family of an MX host is tried first: ipv4, ipv6, or any (the order DNS gives). The other family is tried before the next MX host.',
      format: ['ipv4', 'ipv6', 'any'], default: 'ipv4', env: 'RELAY_ADDRESS_PREFERENCE',
    },
    mxPort: { doc: 'Port used on the recipients\' MX hosts.', format: 'port', default: 25, env: 'RELAY_MX_PORT' },
    smarthost: { doc: 'Deliver everything to this host:port instead of the MX hosts; empty: MX delivery.', format: 'hostport-or-empty', default: '', env: 'RELAY_SMARTHOST' },
    retrySchedule: {
      doc: 'Waits before the retries of a deferred recipient, comma separated (s, m, h, d); the last one repeats. Each wait is stretched by a random 0-10% (jitter).',
      format: 'duration-list', default: '5m,10m,20m,40m,1h', env: 'RELAY_RETRY_SCHEDULE',
    },
    retryExpire: {
      doc: 'How long a recipient is retried before it is given up and bounced (counted from acceptance).',
      format: 'seconds', default: 5 * 86400, env: 'RELAY_RETRY_EXPIRE',
    },
    delayWarning: {
      doc: 'Send the sender a delay notice (DSN, Action: delayed) once a recipient has been queued this long; 0 turns it off.',
      format: 'seconds', default: 0, env: 'RELAY_DELAY_WARNING',
    },
    connectionsPerDestination: {
      // Postfix's default_destination_concurrency_limit; the big providers have presets
      doc: 'Most connections open at the same time to one destination (MX host) without a rule in destinationLimits.',
      format: 'nat', default: 20, env: 'RELAY_CONNECTIONS_PER_DESTINATION',
    },
    messagesPerConnection: {
      doc: 'Most messages sent over one connection before it is closed and a new one opened, for destinations without a rule.',
      format: 'nat', default: 100, env: 'RELAY_MESSAGES_PER_CONNECTION',
    },
    throttlePause: {
      doc: 'How long a destination is left alone after a throttling reply (any 421, Outlook 4.7.650, Yahoo [TS..], GMX policy restrictions).',
      format: 'seconds', default: 600, env: 'RELAY_THROTTLE_PAUSE',
    },
    destinationLimits: {
      doc: 'Rules for MX hosts by pattern, before the built-in presets (Outlook, GMX/WEB.DE, Gmail, Yahoo, T-Online): [{match, connections, messagesPerConnection, throttlePause, rate, burst}]; rate is messages per period over all nodes, such as "100/h" (also /s, /m, /d), evenly spread unless burst lets more go at once; JSON in the environment.',
      format: 'destination-limits', default: [] as DestinationLimitRule[], env: 'RELAY_DESTINATION_LIMITS',
    },
    classifierRules: {
      doc: 'A JSON file of extra reply rules, checked before the built-in ones (first match wins): [{id, match: {code, enhanced, text, host}, class, explanation, fix}].',
      format: String, default: '', env: 'RELAY_CLASSIFIER_RULES',
    },
    connectTimeout: { doc: 'Time to wait for an MX to answer.', format: 'seconds', default: 30, env: 'RELAY_CONNECT_TIMEOUT' },
    dane: {
      doc: 'DANE (RFC 7672): an MX host with DNSSEC-signed TLSA records gets mail only over TLS with a certificate that matches them. Needs a DNSSEC-validating resolver on this machine (dns.servers on 127.0.0.1 or ::1, such as unbound).',
      format: 'on-off', default: false, env: 'RELAY_DANE',
    },
    // above connectionsPerDestination, so one busy destination leaves room for the others
    concurrency: { doc: 'Most delivery connections open at the same time, over all destinations.', format: 'nat', default: 50, env: 'RELAY_DELIVERY_CONCURRENCY' },
    activeQueueLimit: {
      // Postfix's qmgr_message_active_limit (20000): what is in delivery or due soon
      doc: 'Most queued messages held in memory (the active queue: in delivery or due within a minute); the others wait on disk, found through the spool index. At least 1.',
      format: 'nat', default: 10_000, env: 'RELAY_ACTIVE_QUEUE_LIMIT',
    },
    mtaSts: {
      doc: 'Honour the MTA-STS policies of recipient domains (RFC 8461): under mode enforce, mail goes only to the MX hosts the policy names, over TLS 1.2+ with a valid certificate, or waits. Policies are cached in the data dir (mta-sts/). off: opportunistic TLS only.',
      format: 'on-off', default: true, env: 'RELAY_MTA_STS',
    },
    caFile: {
      doc: 'A PEM file of extra CA certificates trusted besides the built-in ones, for MTA-STS policy fetches, MX certificates under MTA-STS and TLS report POSTs; empty: none. Checked at start.',
      format: String, default: '', env: 'RELAY_DELIVERY_CA_FILE',
    },
  },
  tlsrpt: {
    enabled: {
      doc: 'Send TLS reports (RFC 8460): the TLS outcome of every delivery connection is counted per recipient domain, and once per tlsrpt.interval each domain that publishes a _smtp._tls TXT record gets a report. off: nothing is recorded or sent.',
      format: 'on-off', default: true, env: 'RELAY_TLSRPT',
    },
    interval: {
      doc: 'The reporting period: records are counted per period and reported after it ends. 1d (the default) is the UTC day RFC 8460 asks for; a short one (2s) is for tests.',
      format: 'seconds', default: 86400, env: 'RELAY_TLSRPT_INTERVAL',
    },
    org: {
      doc: 'organization-name of the reports; empty: the HELO name.',
      format: String, default: '', env: 'RELAY_TLSRPT_ORG',
    },
    contact: {
      doc: 'contact-info of the reports (an address or URI where a domain owner can reach the relay\'s operator); empty: postmaster@ the HELO name.',
      format: String, default: '', env: 'RELAY_TLSRPT_CONTACT',
    },
  },
  queue: {
    journalDays: {
      doc: 'Days the journal of final outcomes (<dataDir>/journal/, read by `queue show` once a message has left the queue) keeps its records; 0 turns it off and removes its files.',
      format: 'nat', default: 7, env: 'RELAY_JOURNAL_DAYS',
    },
    journalMaxDaySize: {
      doc: 'Most bytes the journal writes for one day (one file per day); further outcomes of that day are not recorded (one warning).',
      format: 'bytes', default: 256 * 1024 * 1024, env: 'RELAY_JOURNAL_MAX_DAY_SIZE',
    },
  },
  identity: {
    strict: {
      doc: 'Refuse to start when the sending identity is not right: no delivery.localAddress, no PTR, PTR name not the HELO name, HELO name not resolving to the address, or DNS unable to tell. Off: each problem is one warning at start.',
      format: Boolean, default: false, env: 'RELAY_IDENTITY_STRICT',
    },
  },
  doctor: {
    spamhausZone: {
      doc: 'Spamhaus ZEN zone `doctor` asks about the sending IP (a DQS zone such as KEY.zen.dq.spamhaus.net works from public resolvers); empty: not asked.',
      format: 'dns-zone-or-empty', default: 'zen.spamhaus.org', env: 'RELAY_DOCTOR_SPAMHAUS_ZONE',
    },
    blocklists: {
      doc: 'Further DNS blocklist zones `doctor` asks about the sending IP; any 127.x answer means listed.',
      format: 'dns-zone-list', default: ['bl.spamcop.net', 'psbl.surriel.com'], env: 'RELAY_DOCTOR_BLOCKLISTS',
    },
  },
  dns: {
    servers: { doc: 'DNS resolvers as IP address[:port]; empty: the system\'s.', format: 'ip-port-list', default: [] as string[], env: 'RELAY_DNS_SERVERS' },
    timeout: { doc: 'Time to wait for one DNS answer.', format: 'seconds', default: 5, env: 'RELAY_DNS_TIMEOUT' },
  },
  http: {
    listen: {
      doc: 'Address and port (host:port, [v6]:port) of the HTTP listener for /metrics, /healthz, /readyz and the status page /; empty: no listener. An address beyond loopback needs http.token.',
      format: 'listen-or-empty', default: '', env: 'RELAY_HTTP_LISTEN',
    },
    token: {
      doc: 'Bearer token every HTTP request must carry (Authorization: Bearer TOKEN) when set; required when http.listen is not a loopback address. A secret: never logged or shown.',
      format: String, default: '', env: 'RELAY_HTTP_TOKEN', sensitive: true,
    },
  },
  log: {
    level: { doc: 'Log level: fatal, error, warn, info, debug, trace.', format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', env: 'RELAY_LOG_LEVEL' },
  },
  redis: {
    url: {
      doc: 'Redis shared by several relay nodes (redis://[:password@]host:port[/db], rediss:// for TLS, or a unix socket path): connection limits, message rates, throttling pauses and failed-login counters hold across all nodes. Empty: each node on its own, in memory. A password here is masked in config show and logs.',
      format: 'redis-url', default: '', env: 'RELAY_REDIS_URL', sensitive: true,
    },
  },
  node: {
    name: { doc: 'This node\'s name in log lines (the `node` field), metrics and Redis; empty: the HELO name.', format: String, default: '', env: 'RELAY_NODE_NAME' },
  },
};

export type RelayConfig = {
  submission: {
    host: string; port: number; tlsPort: number; maxSize: number; maxRecipients: number;
    maxLineLength: number; maxHeaderSize: number; maxClients: number; socketTimeout: number;
    maxCommandLength: number; maxConnectionsPerClient: number; reservedForTrustedNetworks: number;
    maxJunkCommands: number; hideClient: boolean;
  };
  auth: { maxFailures: number; maxUserFailures: number; blockTime: number; failureDelay: number };
  tls: { key: string; cert: string };
  trustedNetworks: string[];
  plainAuthNetworks: string[];
  usersFile: string;
  keysDir: string;
  keys: { checkInterval: number };
  dataDir: string;
  signing: { unsignedPolicy: 'refuse' | 'relay'; displayNameAddresses: 'refuse' | 'allow' };
  delivery: {
    localAddress: string; heloName: string; addressPreference: 'ipv4' | 'ipv6' | 'any'; mxPort: number; smarthost: string;
    retrySchedule: string; retryExpire: number; delayWarning: number;
    connectionsPerDestination: number; messagesPerConnection: number; throttlePause: number;
    destinationLimits: DestinationLimitRule[];
    classifierRules: string;
    connectTimeout: number; concurrency: number; dane: boolean; mtaSts: boolean; caFile: string; activeQueueLimit: number;
  };
  queue: { journalDays: number; journalMaxDaySize: number };
  tlsrpt: { enabled: boolean; interval: number; org: string; contact: string };
  identity: { strict: boolean };
  doctor: { spamhausZone: string; blocklists: string[] };
  dns: { servers: string[]; timeout: number };
  http: { listen: string; token: string };
  log: { level: string };
  redis: { url: string };
  node: { name: string };
};

/** The source addresses of delivery.localAddress by family; throws saying what is wrong. */
export function parseLocalAddresses(value: string): { 4?: string; 6?: string } {
  const out: { 4?: string; 6?: string } = {};
  for (const part of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const family = net.isIP(part);
    if (family !== 4 && family !== 6) throw new Error(`"${part}" is not an IP address: give one IPv4 and/or one IPv6 address of this machine, comma separated (for example 192.0.2.25,2001:db8::25), or leave it empty`);
    if (out[family]) throw new Error(`"${out[family]}" and "${part}" are both IPv${family} addresses: give at most one address of each family (for example 192.0.2.25,2001:db8::25)`);
    out[family] = part;
  }
  return out;
}
