// Submission TLS follows Mozilla's "intermediate" profile (issue 15, section 5): over real
// sockets, on the STARTTLS port and on the implicit-TLS port, a client that offers only RSA key
// exchange (AES128-SHA, AES256-GCM-SHA384), only CBC with SHA-1 (ECDHE-RSA-AES128-SHA), or
// only TLS 1.1 is refused by the server (a TLS alert); ECDHE-RSA-AES128-GCM-SHA256 on TLS 1.2
// and TLS 1.3 work, and on TLS 1.2 the client's order of suites wins.
import net from 'node:net';
import tls from 'node:tls';
import { Harness, startHarness } from '../helpers/relay-harness';
import { freePort } from '../helpers/sink';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ RELAY_SUBMISSION_TLS_PORT: String(await freePort()) });
});

afterAll(async () => {
  await h?.stop();
});

/** Reads one complete SMTP reply (the line whose code is followed by a space ends it). */
function readReply(socket: net.Socket | tls.TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (/(^|\r\n)\d{3} [^\r\n]*\r\n$/.test(text)) {
        socket.off('data', onData);
        socket.off('error', reject);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

type Offer = Pick<tls.ConnectionOptions, 'ciphers' | 'minVersion' | 'maxVersion'>;

interface Outcome { protocol?: string | null; cipher?: string; error?: string; ehlo?: string }

/** The TLS handshake with `offer`, after STARTTLS or at once, and an EHLO over it. */
async function handshake(kind: 'starttls' | 'implicit', offer: Offer): Promise<Outcome> {
  const port = kind === 'starttls' ? h.relay.ports.starttls : h.relay.ports.tls!;
  const plain = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' });
  try {
    if (kind === 'starttls') {
      await new Promise<void>((resolve, reject) => plain.once('connect', resolve).once('error', reject));
      expect(await readReply(plain)).toMatch(/^220 /);
      plain.write('EHLO client.example\r\n');
      expect(await readReply(plain)).toMatch(/STARTTLS/);
      plain.write('STARTTLS\r\n');
      expect(await readReply(plain)).toMatch(/^220 /);
    }
    // SECLEVEL=0 so that the client itself would offer TLS 1.1 and SHA-1 suites: any refusal is the server's
    const secure = tls.connect({ socket: plain, servername: 'localhost', rejectUnauthorized: false, ...offer,
      ciphers: `${offer.ciphers ?? 'DEFAULT'}@SECLEVEL=0` });
    try {
      await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    } catch (err) {
      return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
    }
    const outcome: Outcome = { protocol: secure.getProtocol(), cipher: secure.getCipher().name };
    if (kind === 'implicit') expect(await readReply(secure)).toMatch(/^220 /);
    secure.write('EHLO client.example\r\n');
    outcome.ehlo = (await readReply(secure)).split('\r\n')[0];
    secure.end('QUIT\r\n');
    return outcome;
  } finally {
    plain.destroy();
  }
}

const TLS12: Offer = { minVersion: 'TLSv1', maxVersion: 'TLSv1.2' };

describe.each(['starttls', 'implicit'] as const)('on the %s port', (kind) => {
  test.each([
    ['AES128-SHA (RSA key exchange, CBC, SHA-1)', { ...TLS12, ciphers: 'AES128-SHA' }],
    ['AES256-GCM-SHA384 (RSA key exchange)', { ...TLS12, ciphers: 'AES256-GCM-SHA384' }],
    ['ECDHE-RSA-AES128-SHA (CBC, SHA-1)', { ...TLS12, ciphers: 'ECDHE-RSA-AES128-SHA' }],
    ['TLS 1.1', { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' }],
    ['TLS 1.0', { minVersion: 'TLSv1', maxVersion: 'TLSv1' }],
  ] as [string, Offer][])('%s is refused with a TLS alert', async (_name, offer) => {
    const outcome = await handshake(kind, offer);
    expect(outcome.error).toMatch(/^ERR_SSL_.*ALERT_(HANDSHAKE_FAILURE|PROTOCOL_VERSION|INSUFFICIENT_SECURITY)$/);
  });

  test('ECDHE-RSA-AES128-GCM-SHA256 on TLS 1.2 works', async () => {
    expect(await handshake(kind, { ...TLS12, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }))
      .toEqual({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', ehlo: expect.stringMatching(/^250-/) });
  });

  test('TLS 1.3 works', async () => {
    const outcome = await handshake(kind, { minVersion: 'TLSv1.3' });
    expect(outcome).toMatchObject({ protocol: 'TLSv1.3', ehlo: expect.stringMatching(/^250-/) });
    expect(outcome.cipher).toMatch(/^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
  });

  test('on TLS 1.2 the client chooses among the allowed suites (Mozilla: no server preference)', async () => {
    const outcome = await handshake(kind, { ...TLS12, ciphers: 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256' });
    expect(outcome.cipher).toBe('ECDHE-RSA-CHACHA20-POLY1305');
  });
});
