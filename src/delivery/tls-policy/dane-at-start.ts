// DANE at the start of `serve`: with delivery.dane on, the relay asks its resolver whether it
// validates DNSSEC and says so in one log line, then hands the queue runner its tlsPolicy.
// A resolver that is not on loopback or does not validate leaves DANE without effect (every
// TLSA record counts as unsigned): a warning says why and what to do, the relay still starts.
import { RelayConfig } from '../../config/schema';
import { Logger } from '../../log';
import type { daneTlsPolicy } from './dane';

export async function startDane(config: RelayConfig, log: Logger): Promise<ReturnType<typeof daneTlsPolicy> | undefined> {
  if (!config.delivery.dane) return undefined;
  if (config.delivery.smarthost) {
    log.warn({ smarthost: config.delivery.smarthost }, 'delivery.dane is on, but all mail goes to the smarthost: DANE applies to MX delivery only and is not used');
    return undefined;
  }
  // loaded only when on: a relay without DANE does not carry dns-packet
  const { Dane, daneTlsPolicy: tlsPolicyOf } = await import('./dane');
  const dane = new Dane({ servers: config.dns.servers, timeoutMs: Math.max(1, config.dns.timeout) * 1000, mxPort: config.delivery.mxPort });
  const verdict = await dane.checkResolver();
  if (verdict.ok) log.info({ dane: 'on', resolvers: dane.servers.map((s) => `${s.host}:${s.port}`) }, `DANE is on: ${verdict.detail}`);
  else log.warn({ dane: 'ineffective', fix: verdict.fix }, `DANE is on, but ${verdict.detail}; fix: ${verdict.fix}`);
  // unusable resolvers (not on loopback): every host is left to opportunistic TLS, said once above
  return tlsPolicyOf(dane, log);
}
