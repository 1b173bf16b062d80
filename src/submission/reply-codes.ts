// smtp-server picks the enhanced status code of a reply from its numeric code alone, so a
// policy refusal (550) would go out as "5.1.1 mailbox unavailable". The relay's replies
// carry their own enhanced code as the first word of the text ("5.7.1 user ... is not
// allowed..."); this shim keeps that code and drops the generic one. Replies without one
// (smtp-server's own) are untouched. Installed once, at module load.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

const OWN_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;
const proto = SMTPConnection.prototype as unknown as {
  send(code: number, data?: string | string[], context?: string | false): void;
  __dkimRelayReplyCodes?: boolean;
};

if (!proto.__dkimRelayReplyCodes) {
  const original = proto.send;
  proto.send = function send(code, data, context) {
    if (typeof data === 'string' && OWN_CODE.test(data)) return original.call(this, code, data, false);
    return original.call(this, code, data, context);
  };
  proto.__dkimRelayReplyCodes = true;
}
