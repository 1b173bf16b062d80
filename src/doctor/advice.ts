// What the providers want that DNS cannot show, printed as `info` so the report is the whole
// list: the relay's identity (T-Online, Microsoft) and each domain's complaint rate.
import { check, Check } from './check';
import { DoctorContext } from './context';

export function identityAdvice(ctx: DoctorContext): Check[] {
  const ptr = ctx.identity.ptr?.status === 'found' ? ctx.identity.ptr.names[0] : ctx.identity.heloName;
  const site = ptr.split('.').slice(-2).join('.');
  return [
    check('advice.t-online-imprint', 'info',
      `T-Online accepts mail from servers whose PTR name's domain (${site}) has a website with an imprint (Impressum) naming who runs the server; see https://postmaster.t-online.de/`),
    check('advice.microsoft-snds', 'info',
      `enrol ${ctx.identity.localAddress ?? 'the sending IP'} in Microsoft SNDS and JMRP (https://sendersupport.olc.protection.outlook.com/snds/) to see how Outlook rates it and receive complaints`),
  ];
}

export function domainAdvice(domain: string): Check[] {
  return [
    check('advice.complaint-rate', 'info',
      `keep the spam complaint rate of ${domain} below 0.3% (better 0.1%) as Gmail and Yahoo demand: watch it in Google Postmaster Tools and Yahoo Sender Hub, and give bulk mail a one-click unsubscribe (RFC 8058)`),
  ];
}
