// What one delivery connection achieved in TLS, and under which policy. The transport fills
// it in for each connection it opens (MTA-STS and DANE decide the policy and can fail it);
// the `delivery attempt` log line shows it, and the TLS report collector (RFC 8460) counts
// it per recipient domain. One shape for all three, so they cannot disagree.

/** RFC 8460 4.3 policy-type. */
export type TlsPolicyType = 'sts' | 'tlsa' | 'no-policy-found';

/** RFC 8460 4.3 result-type (the subset a sending MTA can observe). */
export type TlsResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid';

/** The protection a connection reached: none (clear text), opportunistic (TLS, certificate not required), sts, dane. */
export type TlsLevel = 'none' | 'opportunistic' | 'sts' | 'dane';

export interface TlsPolicyRef {
  type: TlsPolicyType;
  /** RFC 8460 policy-string: the MTA-STS policy lines, or the TLSA records in presentation form. */
  string?: string[];
  /** RFC 8460 policy-domain (the recipient domain) for sts; the MX host for tlsa. */
  domain: string;
  /** RFC 8460 mx-host: the MX patterns of an MTA-STS policy. */
  mxHost?: string[];
}

export interface TlsOutcome {
  /** Recipient domain the connection was opened for. */
  domain: string;
  /** MX host name and address connected to. */
  mxHost: string;
  ip: string;
  policy: TlsPolicyRef;
  level: TlsLevel;
  /** e.g. "TLSv1.3"; absent in clear text. */
  tlsVersion?: string;
  /** The certificate was checked and accepted (by WebPKI for sts, by TLSA for dane). */
  verified: boolean;
  /** Absent when the connection met its policy. */
  failure?: { result: TlsResultType; reason: string };
  /** Epoch ms. */
  at: number;
}
