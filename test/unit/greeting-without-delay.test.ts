// src/submission/greeting-without-delay.ts replaces smtp-server's SMTPConnection.init() with
// a copy that greets at once. A copy goes stale silently when smtp-server changes init(), so
// this test pins the original: when it fails after an smtp-server update, compare the new
// init() with the shim, carry over what changed, and update EXPECTED_INIT.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

const EXPECTED_INIT = `init() {
  this._setListeners(() => {
    if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
      return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
    }
    let readyTimer = setTimeout(() => this.connectionReady(), 100);
    readyTimer.unref();
  });
}`;

/** The source without comments and with runs of whitespace made one space. */
function normalized(source: string): string {
  return source.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ' ').trim();
}

type Init = { init(): void };

test('smtp-server\'s init() is still the one the shim was written against', () => {
  const original = (SMTPConnection.prototype as unknown as Init).init;
  expect(normalized(original.toString())).toBe(normalized(EXPECTED_INIT));
});

test('the shim replaces init() and keeps the client limit check', async () => {
  const original = (SMTPConnection.prototype as unknown as Init).init;
  await import('../../src/submission/greeting-without-delay');
  const replaced = (SMTPConnection.prototype as unknown as Init).init;
  expect(replaced).not.toBe(original);
  const source = normalized(replaced.toString());
  expect(source).not.toMatch(/setTimeout/);
  expect(source).toMatch(/maxClients/);
  expect(source).toMatch(/Too many connected clients/);
  expect(source).toMatch(/connectionReady\(\)/);
});
