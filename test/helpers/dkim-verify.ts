// An independent DKIM verifier for tests: Debian's python3-dkim (dkimpy) through
// test/helpers/verify_dkim.py. Independent of mailauth, which the relay signs with, so a
// signing bug cannot hide behind the same bug in the verifier.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

/** The system Python with python3-dkim and python3-nacl; not the pyenv python3 on PATH. */
export const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(__dirname, 'verify_dkim.py');

export interface DkimSignatureVerdict {
  d: string;
  s: string;
  a: string;
  /** header names in h=, lower-cased, in order */
  h: string[];
  ok: boolean;
  error?: string;
}

export interface DkimVerdict {
  /** every DKIM-Signature verified and there is at least one */
  ok: boolean;
  /** one per DKIM-Signature header, top to bottom */
  signatures: DkimSignatureVerdict[];
}

/**
 * Verifies every DKIM-Signature of `message` separately.
 * records: DNS name (e.g. "s1._domainkey.example.org") -> TXT value. No real DNS is used.
 * Rejects (never reports success) if Python, dkimpy or nacl is missing or the script fails.
 * opts.python overrides the interpreter (for testing that failure path).
 */
export function verifyDkim(
  message: Buffer,
  records: Record<string, string>,
  opts: { python?: string } = {}
): Promise<DkimVerdict> {
  const python = opts.python ?? PYTHON;
  return new Promise((resolve, reject) => {
    const child = spawn(python, [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new Error(`verifyDkim: cannot run ${python} (${e.code ?? e.message}); the DKIM tests need Debian's python3 with python3-dkim and python3-nacl`));
    });
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString().trim();
      if (code !== 0) {
        const why = code === 3 ? 'python3-dkim or python3-nacl is not installed for ' + python : `exit ${code ?? signal}`;
        return reject(new Error(`verifyDkim: ${SCRIPT} failed: ${why}${stderr ? `\n${stderr}` : ''}`));
      }
      try {
        const { signatures } = JSON.parse(Buffer.concat(out).toString()) as { signatures: DkimSignatureVerdict[] };
        if (!Array.isArray(signatures)) throw new Error('no signatures array');
        resolve({ ok: signatures.length > 0 && signatures.every((s) => s.ok === true), signatures });
      } catch (e) {
        reject(new Error(`verifyDkim: unreadable output from ${SCRIPT}: ${(e as Error).message}\n${stderr}`));
      }
    });
    // EPIPE if python died early is reported through 'close' above
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify({ message: message.toString('base64'), records }));
  });
}
