// Keeps one client, or a crowd of them, from taking every submission connection (issue 15:
// one address holding all 200 connections with a NOOP every 2 s shut every other client out).
//  - A client address may hold at most `maxPerClient` connections (an IPv6 client counts by
//    its /64, which one host or subscriber usually has whole). Trusted networks are exempt,
//    as Postfix exempts $mynetworks from its per-client limits: they are the relay's own apps.
//  - Clients outside the trusted networks together hold at most `maxClients - reservedForTrusted`
//    connections, so a flood from many addresses still leaves room for the trusted networks.
//    smtp-server's own maxClients check stays the cap on all connections.
// One instance serves both listeners (STARTTLS and implicit TLS). Connections are counted from
// onConnect to onClose, by session id.
import { Logger } from '../log';
import { clientKey, NetworkList } from '../policy/client-access';
import { Rejection } from '../policy/rejection';

export interface ConnectionLimitOptions {
  /** 0: no limit per client. */
  maxPerClient: number;
  /** submission.maxClients; 0: no limit. */
  maxClients: number;
  reservedForTrusted: number;
  trusted: NetworkList;
  log: Logger;
}

export class ConnectionLimits {
  private readonly perClient = new Map<string, number>();
  /** Admitted sessions: id -> the client key counted, or null for a trusted client. */
  private readonly sessions = new Map<string, string | null>();
  private untrusted = 0;
  /** Client keys refused since they last had room, so each is logged once. */
  private readonly refusing = new Set<string>();

  constructor(private readonly options: ConnectionLimitOptions) {}

  /** Counts the new connection in, or returns the 421 to refuse it with. */
  admit(session: { id: string; remoteAddress: string }): Rejection | null {
    const { options } = this;
    if (options.trusted.contains(session.remoteAddress)) {
      this.sessions.set(session.id, null);
      return null;
    }
    const key = clientKey(session.remoteAddress);
    const open = this.perClient.get(key) ?? 0;
    if (options.maxPerClient && open >= options.maxPerClient) {
      this.logOnce(key, `client ${key} holds submission.maxConnectionsPerClient (${options.maxPerClient}) connections: further ones are refused with 421 until some close`);
      return new Rejection(421, '4.7.0',
        `too many connections from ${key}: ${open} are open, the most one client address may hold ` +
        `(submission.maxConnectionsPerClient, RELAY_MAX_CONNECTIONS_PER_CLIENT); close some or try again later`);
    }
    const untrustedMax = Math.max(0, options.maxClients - options.reservedForTrusted);
    if (options.maxClients && this.untrusted >= untrustedMax) {
      this.logOnce('(outside the trusted networks)', `clients outside the trusted networks hold ${this.untrusted} connections, all that submission.maxClients (${options.maxClients}) minus submission.reservedForTrustedNetworks (${options.reservedForTrusted}) allows: further ones are refused with 421 until some close`);
      return new Rejection(421, '4.7.0',
        `the relay is busy: clients outside its trusted networks hold all ${untrustedMax} connections they may ` +
        '(submission.maxClients minus submission.reservedForTrustedNetworks); try again in a moment');
    }
    this.perClient.set(key, open + 1);
    this.untrusted += 1;
    this.sessions.set(session.id, key);
    this.refusing.delete(key);
    this.refusing.delete('(outside the trusted networks)');
    return null;
  }

  /** The connection closed (admitted or not). */
  release(session: { id: string }): void {
    if (!this.sessions.has(session.id)) return;
    const key = this.sessions.get(session.id);
    this.sessions.delete(session.id);
    if (key === null || key === undefined) return;
    this.untrusted -= 1;
    const open = (this.perClient.get(key) ?? 1) - 1;
    if (open > 0) this.perClient.set(key, open);
    else this.perClient.delete(key);
  }

  /** Connections open per client key (for tests and status). */
  openBy(address: string): number {
    return this.perClient.get(clientKey(address)) ?? 0;
  }

  private logOnce(key: string, message: string): void {
    if (this.refusing.has(key)) return;
    // bounded: a key leaves the set once it is admitted again
    if (this.refusing.size < 10_000) this.refusing.add(key);
    this.options.log.warn({ client: key }, message);
  }
}
