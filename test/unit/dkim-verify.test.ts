// The independent verifier (dkimpy) accepts what mailauth signs and rejects tampering.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dkimSign } from 'mailauth/lib/dkim/sign';
import { PYTHON, verifyDkim } from '../helpers/dkim-verify';

const MESSAGE = Buffer.from(
  [
    'From: Alice <alice@example.org>',
    'To: bob@rcpt.example',
    'Subject: DKIM test',
    'Date: Thu, 01 Jan 2026 00:00:00 +0000',
    'Message-ID: <dkim-test@example.org>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello Bob,',
    'this is signed.',
    '',
  ].join('\r\n')
);

function rsaKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), txt: `v=DKIM1; k=rsa; p=${p}` };
}

function ed25519Key() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  // RFC 8463: p= is the raw 32-byte public key, i.e. the tail of the SPKI DER
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  return { pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), txt: `v=DKIM1; k=ed25519; p=${raw}` };
}

async function sign(message: Buffer, sigs: { selector: string; pem: string; algorithm: string }[]): Promise<Buffer> {
  const res = await dkimSign(message, {
    signingDomain: 'example.org',
    selector: sigs[0].selector,
    privateKey: sigs[0].pem,
    headerList: ['From', 'To', 'Subject', 'Date', 'Message-ID'],
    signatureData: sigs.map((s) => ({ signingDomain: 'example.org', selector: s.selector, privateKey: s.pem, algorithm: s.algorithm })),
  });
  expect(res.errors).toEqual([]);
  return Buffer.concat([Buffer.from(res.signatures), message]);
}

describe('verifyDkim (python3-dkim)', () => {
  const rsa = rsaKey();
  const ed = ed25519Key();
  const records = { 's1._domainkey.example.org': rsa.txt, 'e1._domainkey.example.org': ed.txt };

  test('rsa-sha256 signature verifies', async () => {
    const signed = await sign(MESSAGE, [{ selector: 's1', pem: rsa.pem, algorithm: 'rsa-sha256' }]);
    const v = await verifyDkim(signed, records);
    expect(v.ok).toBe(true);
    // h= as written by the signer (mailauth lists them bottom-up), lower-cased, in order
    const hTag = /\bh=([^;]+);/.exec(signed.toString().replace(/\r\n[ \t]+/g, ''))![1];
    expect(hTag.toLowerCase().trim().split(/\s*:\s*/)).toEqual(['message-id', 'date', 'subject', 'to', 'from']);
    expect(v.signatures).toEqual([
      { d: 'example.org', s: 's1', a: 'rsa-sha256', h: ['message-id', 'date', 'subject', 'to', 'from'], ok: true },
    ]);
  });

  test('ed25519-sha256 signature verifies (RFC 8463 raw key)', async () => {
    const signed = await sign(MESSAGE, [{ selector: 'e1', pem: ed.pem, algorithm: 'ed25519-sha256' }]);
    const v = await verifyDkim(signed, records);
    expect(v.signatures.map((s) => [s.a, s.ok, s.error])).toEqual([['ed25519-sha256', true, undefined]]);
    expect(v.ok).toBe(true);
  });

  test('each of several signatures is verified separately', async () => {
    const signed = await sign(MESSAGE, [
      { selector: 's1', pem: rsa.pem, algorithm: 'rsa-sha256' },
      { selector: 'e1', pem: ed.pem, algorithm: 'ed25519-sha256' },
    ]);
    const both = await verifyDkim(signed, records);
    expect(both.ok).toBe(true);
    expect(both.signatures.map((s) => `${s.s}:${s.a}:${s.ok}`).sort()).toEqual(['e1:ed25519-sha256:true', 's1:rsa-sha256:true']);

    // One key missing: that signature fails, the other still passes, the verdict is not ok
    const one = await verifyDkim(signed, { 's1._domainkey.example.org.': rsa.txt });
    expect(one.ok).toBe(false);
    const bySel = Object.fromEntries(one.signatures.map((s) => [s.s, s]));
    expect(bySel.s1.ok).toBe(true);
    expect(bySel.e1.ok).toBe(false);
    expect(bySel.e1.error).toMatch(/e1\._domainkey\.example\.org/);
  });

  test('tampered body fails', async () => {
    const signed = await sign(MESSAGE, [{ selector: 's1', pem: rsa.pem, algorithm: 'rsa-sha256' }]);
    const tampered = Buffer.from(signed.toString().replace('Hello Bob', 'Hello Eve'));
    const v = await verifyDkim(tampered, records);
    expect(v.ok).toBe(false);
    expect(v.signatures[0].ok).toBe(false);
    expect(v.signatures[0].error).toMatch(/body hash mismatch/);
  });

  test('tampered signed header fails', async () => {
    const signed = await sign(MESSAGE, [{ selector: 'e1', pem: ed.pem, algorithm: 'ed25519-sha256' }]);
    const tampered = Buffer.from(signed.toString().replace('Subject: DKIM test', 'Subject: DKIM t3st'));
    expect((await verifyDkim(tampered, records)).ok).toBe(false);
  });

  test('wrong key fails', async () => {
    const signed = await sign(MESSAGE, [
      { selector: 's1', pem: rsa.pem, algorithm: 'rsa-sha256' },
      { selector: 'e1', pem: ed.pem, algorithm: 'ed25519-sha256' },
    ]);
    const other = { 's1._domainkey.example.org': rsaKey().txt, 'e1._domainkey.example.org': ed25519Key().txt };
    const v = await verifyDkim(signed, other);
    expect(v.ok).toBe(false);
    expect(v.signatures.map((s) => s.ok)).toEqual([false, false]);
  });

  test('an unsigned message is not ok', async () => {
    expect(await verifyDkim(MESSAGE, records)).toEqual({ ok: false, signatures: [] });
  });

  test('missing interpreter or dkim module is an error, never a verdict', async () => {
    await expect(verifyDkim(MESSAGE, records, { python: '/nonexistent/python3' })).rejects.toThrow(/cannot run \/nonexistent\/python3/);

    // -S leaves out site-packages, so dkimpy cannot be imported
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkim-verify-'));
    const noSite = path.join(dir, 'python-nosite');
    fs.writeFileSync(noSite, `#!/bin/sh\nexec ${PYTHON} -S "$@"\n`, { mode: 0o755 });
    try {
      await expect(verifyDkim(MESSAGE, records, { python: noSite })).rejects.toThrow(/python3-dkim or python3-nacl is not installed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
