// The sending identity's name: the EHLO name used on delivery. The configured name, else
// the machine's host name. Checking it against the PTR of the source address (FCrDNS)
// belongs here too and comes with the identity checks.
import os from 'node:os';
import { RelayConfig } from '../config/schema';

export function heloName(config: RelayConfig): string {
  return config.delivery.heloName || os.hostname();
}
