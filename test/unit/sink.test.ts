// The sink MX records what a real SMTP client (nodemailer) sends it, over real TCP on loopback.
import * as net from 'node:net';
import nodemailer from 'nodemailer';
import { freePort, Sink, startSink } from '../helpers/sink';

function transportTo(sink: { host: string; port: number }, extra: { ignoreTLS?: boolean } = {}) {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    secure: false,
    localAddress: '127.0.0.2',
    name: 'relay.test.example',
    tls: { rejectUnauthorized: false },
    ...extra,
  });
}

const MESSAGE = {
  from: 'alice@sender.example',
  to: 'bob@rcpt.example',
  subject: 'hello',
  text: 'body line\n',
  messageId: '<m1@sender.example>',
};

describe('sink MX', () => {
  let sink: Sink;
  afterEach(() => sink?.close());

  test('records client address, EHLO name, TLS, envelope and data', async () => {
    sink = await startSink();
    expect(sink.host).toBe('127.0.0.3');
    const info = await transportTo(sink).sendMail({ ...MESSAGE, envelope: { from: 'bounce@sender.example', to: ['bob@rcpt.example', 'carol@rcpt.example'] } });
    expect(info.accepted).toEqual(['bob@rcpt.example', 'carol@rcpt.example']);

    const [msg] = await sink.waitForMessages(1);
    expect(msg.remoteAddress).toBe('127.0.0.2');
    expect(msg.helo).toBe('relay.test.example');
    expect(msg.secure).toBe(true);
    expect(msg.mailFrom).toBe('bounce@sender.example');
    expect(msg.rcptTo).toEqual(['bob@rcpt.example', 'carol@rcpt.example']);
    const text = msg.data.toString();
    expect(text).toMatch(/^Subject: hello\r\n/m);
    expect(text).toContain('\r\n\r\nbody line');
    expect(sink.connections).toEqual([{ remoteAddress: '127.0.0.2' }]);
  });

  test('without TLS the message arrives in clear and STARTTLS is not offered', async () => {
    sink = await startSink({ tls: false });
    await transportTo(sink, { }).sendMail(MESSAGE);
    const [msg] = await sink.waitForMessages(1);
    expect(msg.secure).toBe(false);

    // A client that insists on TLS must fail against it
    await expect(
      nodemailer.createTransport({ host: sink.host, port: sink.port, requireTLS: true, tls: { rejectUnauthorized: false } }).sendMail(MESSAGE)
    ).rejects.toThrow(/STARTTLS/);
  });

  test('rejects recipients per onRcpt, counting attempts per address', async () => {
    const seen: [string, number][] = [];
    sink = await startSink({
      onRcpt: (rcpt, attempt) => {
        seen.push([rcpt, attempt]);
        if (rcpt.startsWith('nobody@')) return { code: 550, message: '5.1.1 no such user' };
        if (rcpt.startsWith('later@') && attempt === 1) return { code: 451, message: '4.3.0 try later' };
        return undefined;
      },
    });
    const t = transportTo(sink);
    const info = await t.sendMail({ ...MESSAGE, to: ['bob@rcpt.example', 'nobody@rcpt.example', 'later@rcpt.example'] });
    expect(info.accepted).toEqual(['bob@rcpt.example']);
    expect(info.rejected.sort()).toEqual(['later@rcpt.example', 'nobody@rcpt.example']);
    const rejectedErrors = (info as unknown as { rejectedErrors: { response: string }[] }).rejectedErrors.map((e) => e.response).sort();
    expect(rejectedErrors).toEqual(['451 4.3.0 try later', '550 5.1.1 no such user']);

    // Second try of the temporarily failed one gets in
    await t.sendMail({ ...MESSAGE, to: 'later@rcpt.example' });
    const msgs = await sink.waitForMessages(2);
    expect(msgs.map((m) => m.rcptTo)).toEqual([['bob@rcpt.example'], ['later@rcpt.example']]);
    expect(seen).toContainEqual(['later@rcpt.example', 2]);
    expect(sink.rejections.map((r) => [r.stage, r.code])).toEqual(expect.arrayContaining([['rcpt', 550], ['rcpt', 451]]));
  });

  test('rejects messages per onData; rejected ones are not recorded', async () => {
    sink = await startSink({ onData: (_msg, attempt) => (attempt === 1 ? { code: 451, message: '4.3.0 try later' } : undefined) });
    const t = transportTo(sink);
    await expect(t.sendMail(MESSAGE)).rejects.toMatchObject({ responseCode: 451 });
    expect(sink.messages).toHaveLength(0);
    await t.sendMail(MESSAGE); // same Message-ID: attempt 2
    await sink.waitForMessages(1);
    expect(sink.rejections).toEqual([{ stage: 'data', rcptTo: ['bob@rcpt.example'], code: 451, message: '4.3.0 try later' }]);
  });

  test('waitForMessages times out with a clear message', async () => {
    sink = await startSink({ host: '127.0.0.4' });
    await transportTo(sink).sendMail(MESSAGE);
    await expect(sink.waitForMessages(2, 300)).rejects.toThrow(/waited 300 ms for 2 message\(s\), 1 arrived/);
  });

  test('freePort gives a port that refuses connections', async () => {
    const port = await freePort('127.0.0.3');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      const s = net.connect({ host: '127.0.0.3', port }, () => resolve(new Error('connected') as NodeJS.ErrnoException));
      s.on('error', resolve);
    });
    expect(err.code).toBe('ECONNREFUSED');
  });
});
