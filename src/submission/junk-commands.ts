// Postfix's smtpd_junk_command_limit for smtp-server, which has none: a session may give at
// most `submission.maxJunkCommands` commands that send no mail between accepted messages; the
// next one gets 421 4.7.0 and the connection is closed (issue 15: 200 connections kept open
// forever with a NOOP every 2 s). Junk is NOOP, RSET, VRFY, EXPN, HELP, ETRN, HELO/EHLO/LHLO,
// and any command refused (4xx/5xx: a MAIL FROM without AUTH, an unknown command, a refused
// message), so no loop of commands keeps a session alive without sending mail. An accepted
// message starts the count afresh, as in Postfix, so a client that sends many messages with
// RSET between them is never cut off. Recipients beyond submission.maxRecipients (452) count
// only past 1000 in one transaction, as Postfix's smtpd_recipient_overshoot_limit has it: a
// client that gives a long list of recipients at once then sends to the first ones.
//
// smtp-server calls SMTPConnection._onCommand for every command line; this shim wraps it and
// send() (to see refusals), and reads _nextHandler (an AUTH continuation line is part of its
// AUTH command), _ready, _upgrading and _transactionCounter (counted up after each DATA).
// test/unit/junk-commands.test.ts pins those in smtp-server's source: when it fails after an
// smtp-server update, check this shim against the new code. The limit is a server option
// (JUNK_LIMIT_OPTION); servers without it (the test sinks) are untouched. Installed once, at
// module load.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

export const JUNK_LIMIT_OPTION = 'dkimRelayMaxJunkCommands';

const JUNK = new Set(['NOOP', 'RSET', 'VRFY', 'EXPN', 'HELP', 'ETRN', 'HELO', 'EHLO', 'LHLO']);

interface JunkCount {
  count: number;
  /** This command was counted already (by name, or for its refusal). */
  counted: boolean;
  /** _transactionCounter when last looked at. */
  transactions: number;
  lastReply: number;
  /** The command being answered. */
  command: string;
  /** RCPTs refused in this transaction for too many recipients. */
  overshoot: number;
}

const RECIPIENT_OVERSHOOT = 1000;

interface ConnectionInternals {
  _server: { options: Record<string, unknown> };
  _nextHandler: unknown;
  _ready: boolean;
  _upgrading: boolean;
  _closing: boolean;
  _closed: boolean;
  _transactionCounter: number;
  send(code: number, data?: string | string[], context?: string | false): void;
  _onCommand(command: Buffer, callback?: () => void): void;
  __dkimRelayJunk?: JunkCount;
}

const proto = SMTPConnection.prototype as unknown as ConnectionInternals & { __dkimRelayJunkCommands?: boolean };

function limitOf(connection: ConnectionInternals): number {
  return Number(connection._server.options[JUNK_LIMIT_OPTION]) || 0;
}

function cutOff(connection: ConnectionInternals, limit: number): void {
  connection.send(421, `4.7.0 too many commands that send no mail: ${limit} NOOP, RSET, VRFY, HELP, HELO/EHLO or refused commands ` +
    'since the last accepted message is the limit (submission.maxJunkCommands, RELAY_MAX_JUNK_COMMANDS); closing the connection');
}

if (!proto.__dkimRelayJunkCommands) {
  const onCommand = proto._onCommand;
  const send = proto.send;

  proto._onCommand = function (this: ConnectionInternals, command, callback) {
    const limit = limitOf(this);
    if (!limit || this._nextHandler || this._upgrading || !this._ready) return onCommand.call(this, command, callback);
    const junk = (this.__dkimRelayJunk ??= { count: 0, counted: false, transactions: this._transactionCounter, lastReply: 0, command: '', overshoot: 0 });
    if (junk.transactions !== this._transactionCounter) {
      // a DATA ended since the last command; its reply was the last one sent
      if (junk.lastReply === 250) junk.count = 0;
      junk.transactions = this._transactionCounter;
    }
    junk.counted = false;
    const name = (command || '').toString().split(' ').shift()!.toUpperCase();
    junk.command = name;
    if (JUNK.has(name)) {
      junk.counted = true;
      if (++junk.count > limit) return cutOff(this, limit);
    }
    return onCommand.call(this, command, callback);
  };

  proto.send = function (this: ConnectionInternals, code, data, context) {
    const junk = this.__dkimRelayJunk;
    if (junk) {
      junk.lastReply = code;
      if (code === 250 && junk.command === 'MAIL') junk.overshoot = 0; // a new transaction
    }
    send.call(this, code, data, context);
    if (!junk || code < 400 || code === 421 || junk.counted || this._closing || this._closed) return;
    if (code === 452 && junk.command === 'RCPT' && ++junk.overshoot <= RECIPIENT_OVERSHOOT) return;
    junk.counted = true;
    const limit = limitOf(this);
    if (limit && ++junk.count > limit) cutOff(this, limit);
  };
  proto.__dkimRelayJunkCommands = true;
}
