// The TlsOutcome of one delivery connection, for the TLS reports. A transport that decides a
// TLS policy (MTA-STS, DANE) hands its outcome over as `tlsOutcome` on the session (or on the
// refusal of a connection its policy did not allow); without one, the connection had no
// policy (no-policy-found, opportunistic TLS) and its outcome is read off the session:
// TLS negotiated: a successful session; clear text after STARTTLS was offered (a failed
// handshake, retried in clear, or a refused STARTTLS): validation-failure, RFC 8460 4.3's
// "general failure for a reason not matching a category above"; clear text without STARTTLS
// offered: starttls-not-supported.
import { Destination } from '../delivery/route';
import { TlsOutcome } from '../delivery/tls-outcome';
import { OpenResult, TlsDeferral, TlsRequirement } from '../delivery/transport';

/**
 * requirement: the TLS policy the connection was opened under (DANE, MTA-STS), if any. A
 * connection that failed it (error.tlsFailure) counts as a failure of that policy.
 */
export function tlsOutcomeOfOpen(opened: OpenResult, destination: Destination, domain: string, requirement?: TlsRequirement, at = Date.now()): TlsOutcome | undefined {
  const base = {
    domain, mxHost: destination.host, ip: destination.ip, policy: requirement?.policy ?? { type: 'no-policy-found' as const, domain }, at,
  };
  if (!('session' in opened)) {
    const failure = opened.error.tlsFailure;
    // no connection, or refused before TLS: nothing about TLS to report
    return failure ? { ...base, level: requirement?.level ?? 'none', verified: false, failure } : undefined;
  }
  const { session } = opened;
  if (requirement?.policy) {
    const reached = session.tlsInfo;
    return { ...base, level: reached.level, tlsVersion: reached.version, verified: reached.verified };
  }
  if (session.tls) return { ...base, level: 'opportunistic', verified: false };
  return {
    ...base,
    level: 'none',
    verified: false,
    failure: session.starttlsOffered
      ? { result: 'validation-failure', reason: 'STARTTLS was offered but TLS could not be negotiated; the mail went in clear text' }
      : { result: 'starttls-not-supported', reason: 'the server does not offer STARTTLS' },
  };
}

/** A host the TLS policy ruled out before any connection (DANE: its DNSSEC does not validate). */
export function tlsOutcomeOfDeferral(deferral: TlsDeferral, destination: Destination, domain: string, at = Date.now()): TlsOutcome | undefined {
  if (!deferral.result) return undefined;
  return {
    domain, mxHost: destination.host, ip: destination.ip, at,
    policy: deferral.policy ?? { type: 'no-policy-found', domain },
    level: 'none', verified: false, failure: { result: deferral.result, reason: deferral.defer },
  };
}
