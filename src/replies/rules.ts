// The built-in reply rules, as data: checked in order, the first match wins. User rules
// (RELAY_CLASSIFIER_RULES) come before these. Every provider rule names its source: the
// provider's published page where there is one, else where the reply text was observed.
// Codes and texts without a source we could find are left out on purpose.

export const REPLY_CLASSES = [
  'delivered', 'rate-limit', 'reputation', 'authentication', 'policy', 'recipient-unknown',
  'mailbox-full', 'tls', 'dns', 'connect', 'transient', 'other',
] as const;
export type ReplyClass = typeof REPLY_CLASSES[number];

export interface ReplyRule {
  id: string;
  provider?: string;
  /** Regular expressions (case-insensitive); every one given must match. */
  match: {
    /** The 3-digit reply code, e.g. "^5". */
    code?: string;
    /** The enhanced status code (RFC 3463), e.g. "^5\\.7\\.2[5-9]$". */
    enhanced?: string;
    /** The reply text, or the local failure's description. */
    text?: string;
    /** The host that answered, e.g. "\\.protection\\.outlook\\.com$". */
    host?: string;
    /** true: only local failures (no SMTP reply); false: only SMTP replies. */
    local?: boolean;
  };
  class: ReplyClass;
  /** Pause the destination on a temporary reply (default: yes for rate-limit and reputation). */
  throttle?: boolean;
  explanation: string;
  fix: string;
  source?: string;
}

const MS_NDR = 'https://learn.microsoft.com/en-us/troubleshoot/exchange/email-delivery/ndr/non-delivery-reports-in-exchange-online (Microsoft\'s list of NDR codes)';
const GMAIL = 'https://support.google.com/a/answer/3726730 (Gmail SMTP errors and codes)';

export const BUILT_IN_RULES: ReplyRule[] = [
  // --- Outlook / Microsoft 365 ---
  {
    id: 'outlook-s3140-s3150', provider: 'outlook', match: { text: '\\bA?S3(140|150)\\b' }, class: 'reputation',
    explanation: 'Outlook.com refuses mail from this IP address: its network range is on Microsoft\'s block list.',
    fix: 'Ask for delisting at https://sender.office.com/ (Outlook.com: the sender support form http://go.microsoft.com/fwlink/?LinkID=614866), and register the IP with Microsoft SNDS and JMRP (https://postmaster.live.com/snds/) to see its reputation.',
    source: 'from observed bounce texts ("...part of their network is on our block list (S3140)", e.g. https://pastebin.com/index/3Peq5x5F, https://pastebin.com/ExQUnA6B, https://dijitul.uk/live-outlook-hotmail-rejects-emails-550-5-7-1-s3150); the reply itself points to http://mail.live.com/mail/troubleshooting.aspx#errors; delist form and SNDS from https://www.virtbiz.com/client/index.php?rp=%2Fknowledgebase%2F71%2FOutlook-or-Hotmail-or-Microsoft-has-blocked-my-email.html and https://support.binarylane.com.au/support/solutions/articles/11000047583-emails-to-hotmail-and-outlook-are-blocked',
  },
  {
    id: 'outlook-4.7.650', provider: 'outlook', match: { enhanced: '^4\\.7\\.65[01]$' }, class: 'reputation', throttle: true,
    explanation: 'Microsoft limits mail from this IP address for now: its reputation is poor or unknown (a new IP).',
    fix: 'Slow down and let the relay retry; register the IP with Microsoft SNDS and JMRP, and ask https://sender.office.com/ for a review if it lasts.',
    source: `from observed bounce texts, widely documented ("451 4.7.650 The mail server [IP] has been temporarily rate limited due to IP reputation"); not found on a Microsoft page we could read; see ${MS_NDR}`,
  },
  {
    id: 'outlook-5.7.515', provider: 'outlook', match: { enhanced: '^5\\.7\\.515$' }, class: 'authentication',
    explanation: 'Microsoft requires high-volume senders to pass SPF, DKIM and DMARC; this message did not meet that.',
    fix: 'Publish an SPF record that names this relay\'s IP, a DKIM key for every signing domain (`dkim-relay doctor`), and a DMARC record (_dmarc.<domain> TXT "v=DMARC1; p=none") aligned with the From domain.',
    source: 'https://support.microsoft.com/en-au/topic/fix-ndr-error-550-5-7-515-in-outlook-com-34cfe8f8-6fbf-457e-9e8b-9e4dbaf4e0ef (550 5.7.515 Access denied, sending domain <domain> does not meet the required authentication level)',
  },
  {
    id: 'outlook-5.7.606-649', provider: 'outlook', match: { enhanced: '^5\\.7\\.(60[6-9]|6[1-3]\\d|64\\d)$' }, class: 'reputation',
    explanation: 'Microsoft has banned this sending IP address (or its network).',
    fix: 'Request removal at https://sender.office.com/ and follow the directions; then register the IP with Microsoft SNDS and JMRP.',
    source: `from observed bounce texts ("550 5.7.606 Access denied, banned sending IP [IP]. To request removal from this list please visit https://sender.office.com/ ...", e.g. https://pastebin.com/EH1TUb0X); the reply links http://go.microsoft.com/fwlink/?LinkID=526655; see ${MS_NDR}`,
  },
  // --- Gmail ---
  {
    id: 'gmail-4.7.28-unsolicited', provider: 'gmail', match: { enhanced: '^4\\.7\\.(28|0)$', text: 'unsolicited mail' }, class: 'reputation', throttle: true,
    explanation: 'Gmail sees an unusual rate of unsolicited mail from this IP address and has blocked it for now.',
    fix: 'Slow down; check the IP and domain in Google Postmaster Tools; follow https://support.google.com/mail/answer/81126 (Email sender guidelines).',
    source: GMAIL,
  },
  {
    id: 'gmail-4.7.28', provider: 'gmail', match: { enhanced: '^4\\.7\\.28$' }, class: 'rate-limit', throttle: true,
    explanation: 'Gmail limits the rate of mail from this IP address or domain for now.',
    fix: 'Slow down (lower the destination limits for gmail) and meet Gmail\'s sender guidelines: https://support.google.com/mail/answer/81126.',
    source: GMAIL,
  },
  {
    id: 'gmail-4.7.32', provider: 'gmail', match: { enhanced: '^4\\.7\\.32$' }, class: 'authentication',
    explanation: 'Gmail wants the From domain aligned with the SPF or DKIM domain (DMARC alignment), and it is not.',
    fix: 'Sign with DKIM for the From domain (the relay does that when a key for the domain is active), or publish SPF for it.',
    source: GMAIL,
  },
  {
    id: 'gmail-5.7.25', provider: 'gmail', match: { enhanced: '^5\\.7\\.25$' }, class: 'authentication',
    explanation: 'Gmail requires a PTR record (reverse DNS) for the sending IP address that matches its name, and there is none.',
    fix: 'Ask the owner of the IP (hoster) to set its PTR record to the relay\'s HELO name, and publish an A/AAAA record for that name pointing back to the IP.',
    source: GMAIL,
  },
  {
    id: 'gmail-5.7.26-30', provider: 'gmail', match: { enhanced: '^5\\.7\\.(2[6-9]|30)$' }, class: 'authentication',
    explanation: 'Gmail refuses this message as unauthenticated: SPF, DKIM or DMARC did not pass for the sender\'s domain.',
    fix: 'Publish an SPF record that names this relay\'s IP, make sure the DKIM key is published (`dkim-relay doctor`), and publish a DMARC record for the From domain.',
    source: GMAIL,
  },
  {
    id: 'gmail-5.7.1-unsolicited', provider: 'gmail', match: { enhanced: '^5\\.7\\.1$', text: 'unsolicited|likely spam' }, class: 'policy',
    explanation: 'Gmail judged this message to be unsolicited mail (spam) and refused it.',
    fix: 'Check the content and the sender\'s authentication; follow https://support.google.com/mail/answer/81126 and watch Google Postmaster Tools.',
    source: GMAIL,
  },
  // --- Yahoo ---
  {
    id: 'yahoo-tss04', provider: 'yahoo', match: { text: '\\[TSS04\\]' }, class: 'rate-limit', throttle: true,
    explanation: 'Yahoo defers mail from this IP address for now: unusual volume, or complaints from its users.',
    fix: 'Slow down and let the relay retry; read the page the reply links (help.yahoo.com/kb/postmaster) and Yahoo\'s sender best practices.',
    source: 'from observed bounce texts ("421 4.7.0 [TSS04] Messages from IP temporarily deferred due to user complaints - 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html", e.g. https://pastebin.com/yEw1BuRq); third-party summary https://tamingdns.com/bounce-decoder/yahoo',
  },
  {
    id: 'yahoo-ts01-03', provider: 'yahoo', match: { text: '\\[TS0[1-3]\\]' }, class: 'reputation', throttle: true,
    explanation: 'Yahoo defers mail from this IP address because of its reputation (complaints, or no sending history yet).',
    fix: 'Slow down, send only wanted mail, and follow the page the reply links (help.yahoo.com/kb/postmaster).',
    source: 'from observed bounce texts ("421 4.7.1 [TS03] All messages from IP will be permanently deferred; Retrying will NOT succeed. See https://help.yahoo.com/kb/postmaster/SLN3436.html", https://pastebin.com/XUBwTvbV); third-party summaries https://datarecoverypanama.com/blog/deliverability-recovery/yahoo-ts01-ts02-ts03-smtp-error-fix-guide.html, http://www.smtp-error-codes.info/bounce/yahoo/bounce_421_4.7.0_TS02.php',
  },
  // --- the usual wording of throttling, kept from the former delivery/classify.ts ---
  {
    id: 'throttling-words', match: { code: '^4', text: '\\b4\\.7\\.500\\b|\\[TSS?0\\d\\]|policy restrictions|too many (connections|messages)|rate limit|try again later, closing' }, class: 'rate-limit', throttle: true,
    explanation: 'The destination asks us to send less, for now.', fix: 'Slow down: the relay pauses this destination; lower its destination limits if it happens often.',
    source: 'RFC 5321 and the usual wording of MTAs (GMX/WEB.DE "Reject due to policy restrictions")',
  },
  { id: '421', match: { code: '^421$' }, class: 'rate-limit', throttle: true, explanation: 'The destination closes the connection for now (421): usually too many connections or messages.', fix: 'Slow down: the relay pauses this destination and tries again later.', source: 'RFC 5321 4.2.3' },
  // --- GMX / WEB.DE (United Internet, the same mail platform as IONOS) ---
  {
    id: 'gmx-webde-rate-limit', provider: 'gmx-webde', match: { text: 'Rate limit reached' }, class: 'rate-limit', throttle: true,
    explanation: 'GMX/WEB.DE received too many messages from this server in too short a time.',
    fix: 'Slow down: try again in a few hours at a lower rate (lower the destination limits for *.gmx.net / *.web.de); contact https://postmaster.web.de/ if it lasts.',
    source: 'https://postmaster.web.de/de/fehlermeldungen and https://ionos.de/hilfe/e-mail/postmaster/smtp-fehlermeldungen-der-11-ionos-mailserver ("421 Rate limit reached. Please try again later")',
  },
  {
    id: 'gmx-webde-policy-violations', provider: 'gmx-webde', match: { text: 'Reject due to policy violations' }, class: 'reputation',
    explanation: 'GMX/WEB.DE (United Internet) blocks this server\'s IP address for now: too many messages to addresses that do not exist, or a HELO name that keeps changing.',
    fix: 'Clean the recipient lists of dead addresses, keep one HELO name per IP (RELAY_HELO_NAME), and try again later; see https://postmaster.web.de/.',
    source: 'https://ionos.de/hilfe/e-mail/postmaster/smtp-fehlermeldungen-der-11-ionos-mailserver ("421/450 Reject due to policy violations"); https://postmaster.web.de/de/fehlermeldungen',
  },
  // --- T-Online ---
  {
    id: 't-online-dial', provider: 't-online', match: { text: '\\(DIAL\\)|Dialup/transient IP not allowed' }, class: 'reputation',
    explanation: 'T-Online treats this server\'s IP address as a dial-up/transient address and takes no mail from it; it also answers so when it finds no legal notice (Impressum) for the server\'s host name.',
    fix: 'Publish a web page with a legal notice (Impressum) and contact details at the relay\'s HELO/PTR name, as https://postmaster.t-online.de/ (4.1) asks; then write to the address in the reply (toda@rx.t-online.de) to be unblocked.',
    source: 'https://postmaster.t-online.de/index.en.html (4.1 requirements for access); reply text "554: Dialup/transient IP not allowed. Use a mailgateway or contact toda@rx.t-online.de if obsolete. (DIAL)" from https://help.creoline.com/de/doc/t-online-554-dialuptransient-ip-not-allowed-zVwMz4z866',
  },
  {
    id: 't-online-nowl', provider: 't-online', match: { text: 'IP=\\S+ - None/bad reputation|\\(NOWL\\)' }, class: 'reputation',
    explanation: 'T-Online has no (or a bad) reputation for this server\'s IP address and does not take its mail.',
    fix: 'Meet https://postmaster.t-online.de/ section 4.1 (PTR record, a legal notice at the host name), then ask postmaster@rx.t-online.de for a reset, as the reply says.',
    source: 'reply text "554 IP=<IP> - None/bad reputation. Ask your postmaster for help or to contact <postmaster@rx.t-online.de> for reset. (NOWL)" from https://timmehosting.de/leitfaden-wenn-t-online-e-mails-blockiert-ursachen-und-loesungen; https://postmaster.t-online.de/index.en.html',
  },
  // --- generic, by enhanced status code (RFC 3463, IANA registry) ---
  { id: 'x.1.1', match: { enhanced: '^5\\.1\\.(1|10)$' }, class: 'recipient-unknown', explanation: 'The recipient address does not exist at the destination.', fix: 'Check the address for typos; remove it from the list if it is gone.', source: 'RFC 3463 / RFC 7505' },
  { id: 'x.1.2', match: { enhanced: '^5\\.1\\.2$' }, class: 'dns', explanation: 'The recipient\'s domain does not exist or takes no mail.', fix: 'Check the domain part of the address.', source: 'RFC 3463' },
  { id: 'x.2.2', match: { enhanced: '^[45]\\.2\\.2$' }, class: 'mailbox-full', explanation: 'The recipient\'s mailbox is full.', fix: 'Nothing to do at the relay; the recipient must make room, or be reached another way.', source: 'RFC 3463' },
  { id: 'x.2.1-disabled', match: { enhanced: '^5\\.2\\.1$' }, class: 'recipient-unknown', explanation: 'The recipient\'s mailbox is disabled.', fix: 'Reach the recipient another way; remove the address from lists.', source: 'RFC 3463' },
  { id: 'x.7.23-spf', match: { enhanced: '^5\\.7\\.23$' }, class: 'authentication', explanation: 'SPF failed for the sender\'s domain.', fix: 'Add this relay\'s IP to the SPF record of the envelope sender\'s domain.', source: 'RFC 7372' },
  { id: 'x.7.x-auth', match: { enhanced: '^5\\.7\\.(2[0-9]|30)$' }, class: 'authentication', explanation: 'The destination found the message\'s authentication (SPF, DKIM or DMARC) lacking.', fix: 'Check SPF, DKIM and DMARC of the sender\'s domain (`dkim-relay doctor`).', source: 'RFC 7372' },
  { id: 'x.4.7', match: { enhanced: '^[45]\\.4\\.7$' }, class: 'transient', explanation: 'The message waited too long.', fix: 'See the earlier replies for why.', source: 'RFC 3463' },
  { id: 'x.7.x', match: { enhanced: '^[45]\\.7\\.\\d+$' }, class: 'policy', explanation: 'The destination refused the message by its policy (security or content).', fix: 'Read the destination\'s words in the reply; it often names a page with more.', source: 'RFC 3463' },
  // --- local failures: no SMTP reply ---
  { id: 'local-dane', match: { local: true, text: '^DANE' }, class: 'tls', explanation: 'The destination publishes DNSSEC-signed TLSA records (DANE): the relay sends only over TLS with a certificate that matches them, and that did not happen, or the DNSSEC of its records did not validate.', fix: 'Usually the destination\'s to fix (its certificate, TLSA or DNSSEC records); the relay tries again. The reply names the host and what failed.', source: 'RFC 7672' },
  {
    id: 'local-mta-sts', match: { local: true, text: '^MTA-STS enforce:' }, class: 'tls',
    explanation: 'The recipient\'s domain publishes an MTA-STS policy in enforce mode (RFC 8461), and this MX host, its TLS or its certificate does not meet it; the relay sends neither in clear nor to another host.',
    fix: 'Usually the recipient domain\'s to fix (its MX records, certificate or policy); the relay tries again until the message expires. For a private CA, add it with delivery.caFile.',
    source: 'RFC 8461 4 and 5',
  },
  { id: 'local-dns', match: { local: true, text: 'NXDOMAIN|null MX|ENOTFOUND|EAI_AGAIN|ESERVFAIL|no MX|DNS|resolv' }, class: 'dns', explanation: 'The destination\'s mail servers could not be found in DNS.', fix: 'Check the recipient\'s domain; a temporary DNS failure is tried again.' },
  { id: 'local-tls', match: { local: true, text: 'TLS|certificate|STARTTLS|SSL' }, class: 'tls', explanation: 'No TLS connection could be made as required.', fix: 'Check the destination\'s certificate and the TLS policy for it.' },
  { id: 'local-connect', match: { local: true, text: 'ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET|connect|took no connection|timed? ?out|closed' }, class: 'connect', explanation: 'The destination\'s mail server took no connection, or dropped it.', fix: 'Usually passing: the relay tries again. If it lasts, check that outgoing port 25 is open from this host.' },
  // --- the last word, by reply code ---
  { id: '2xx', match: { code: '^2' }, class: 'delivered', explanation: 'The destination accepted the message.', fix: '' },
  { id: '5xx', match: { code: '^5' }, class: 'other', explanation: 'The destination refused the message for good.', fix: 'Read the destination\'s words in the reply.' },
  { id: '4xx', match: { code: '^4' }, class: 'transient', explanation: 'The destination refused the message for now; the relay tries again.', fix: 'Usually nothing; if it lasts, read the destination\'s words in the reply.' },
  { id: 'other', match: {}, class: 'other', explanation: 'The delivery did not succeed; the relay tries again.', fix: 'Read the reason given.' },
];
