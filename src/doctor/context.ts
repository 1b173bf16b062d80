// What every check group of the doctor gets: the configuration, the resolver (dns.servers,
// a deadline on every lookup, each question asked once per run) and the sending identity
// as DNS shows it, examined once.
import { RelayConfig } from '../config/schema';
import { Resolver } from '../dns/resolver';
import { IdentityReport } from '../identity/sending-identity';

export interface DoctorContext {
  config: RelayConfig;
  resolver: Resolver;
  identity: IdentityReport;
  /** One report per address of delivery.localAddress (IPv4 first); [identity] with none or one. */
  identities: IdentityReport[];
  /** Milliseconds one SPF evaluation may take in all. */
  spfTimeLimitMs: number;
}
