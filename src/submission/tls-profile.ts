// What TLS the submission ports speak: Mozilla's "intermediate" server profile (Server Side
// TLS 5.7, the one it recommends for general-purpose servers): TLS 1.2 and 1.3 only; on TLS
// 1.2 only ECDHE key exchange with AEAD ciphers (forward secret; no RSA key exchange, no CBC,
// no SHA-1 MACs); the client picks among them (the profile's "server_preferred_order": false,
// since every suite left is strong and the client knows whether it has AES hardware).
// smtp-server's own defaults would allow TLS 1.0 and whatever OpenSSL allows.
import type { TlsOptions } from 'node:tls';

/** TLS 1.2 suites, in Mozilla's order (OpenSSL names). */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** TLS 1.3 suites (all three AEAD suites TLS 1.3 has in common use). */
export const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

export const SUBMISSION_TLS: TlsOptions = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  // Node takes the TLS 1.3 suites and the TLS 1.2 list in one string
  ciphers: [...TLS13_CIPHERS, ...TLS12_CIPHERS].join(':'),
  honorCipherOrder: false,
  ecdhCurve: 'X25519:prime256v1:secp384r1',
};
