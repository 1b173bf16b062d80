// src/submission/junk-commands.ts wraps smtp-server's SMTPConnection._onCommand and send(), and
// reads its _nextHandler, _ready, _upgrading and _transactionCounter. This test pins the
// smtp-server code those come from: when it fails after an smtp-server update, read the new
// _onCommand, send, handler_DATA and _createParser, check what the shim relies on (every
// command line reaches _onCommand; an AUTH continuation line is marked by _nextHandler;
// DATA's final reply is sent before _transactionCounter is counted up; a 421 closes the
// connection), then update the hashes. The behaviour itself is tested over real SMTP in
// test/security/flood-junk-commands.test.ts; here, that servers without the limit are untouched.
import crypto from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import { connectRaw } from '../helpers/raw-smtp';

type Proto = Record<string, (...args: unknown[]) => unknown>;
const proto = SMTPConnection.prototype as unknown as Proto;

// taken before the shim is loaded below
const ORIGINALS = Object.fromEntries(['_onCommand', 'send', 'handler_DATA', '_createParser'].map((name) => [name, proto[name]]));

const EXPECTED_SHA256: Record<string, string> = {
  _onCommand: '30fcdb6085ee7bedc772971f5a169d4aee5045d583a4c8bf53c365b7613ed2b6',
  send: 'be54edae97755d8a5e296308a2f04d79188d162612bc2366998ddf193cad7c90',
  handler_DATA: '4517c405a4565ad891315252ff85352849145c51b4bf690a679643bc691168f7',
  _createParser: '6d2533f00f14194e886a29458af70476d5795159eabfea43e83913d247a3b567',
};

/** The source without comments and with runs of whitespace made one space. */
function normalized(source: string): string {
  return source.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ' ').trim();
}

test.each(Object.keys(EXPECTED_SHA256))('smtp-server\'s %s is still the one the junk-command shim was written against', (name) => {
  const source = normalized(ORIGINALS[name].toString());
  expect(crypto.createHash('sha256').update(source).digest('hex')).toBe(EXPECTED_SHA256[name]);
});

test('what the shim relies on is in those sources', () => {
  expect(normalized(ORIGINALS._createParser.toString())).toContain('parser.oncommand = (command, callback) => this._onCommand(command, callback);');
  const onCommand = normalized(ORIGINALS._onCommand.toString());
  expect(onCommand).toContain('if (this._upgrading) { return done(); }');
  expect(onCommand).toContain('if (this._nextHandler) { handler = this._nextHandler; this._nextHandler = false; }');
  const data = normalized(ORIGINALS.handler_DATA.toString());
  expect(data.lastIndexOf("'DATA_OK');")).toBeLessThan(data.indexOf('this._transactionCounter++;'));
  expect(normalized(ORIGINALS.send.toString())).toContain('if (code === 421) { this.close(); }');
});

test('the shim wraps _onCommand and send once, and leaves a server without the limit alone', async () => {
  const { JUNK_LIMIT_OPTION } = await import('../../src/submission/junk-commands');
  await import('../../src/submission/junk-commands');
  expect(proto._onCommand).not.toBe(ORIGINALS._onCommand);
  expect(proto.send).not.toBe(ORIGINALS.send);
  expect(JUNK_LIMIT_OPTION).toBe('dkimRelayMaxJunkCommands');

  const server = new SMTPServer({ authOptional: true, logger: false, disabledCommands: ['STARTTLS'] });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const s = await connectRaw((server.server.address() as { port: number }).port);
    expect(await s.reply()).toMatch(/^220 /);
    for (let i = 0; i < 150; i++) expect(await s.command('NOOP')).toMatch(/^250 /);
    s.end();
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
