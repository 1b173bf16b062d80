// The From the relay checks is the From everyone sees: for generated From fields (pieces of
// the spoofs in "Composition Kills", Chen et al. 2020, glued at random), whatever the relay's
// header checks accept, Python's email.headerregistry (an independent strict reader) reads as
// exactly one mailbox with the same domain, and whatever names another domain in a display
// name is refused for a user of example.test. Runs the relay's own pipeline on the header
// section (line endings, field syntax, field split, header rules, author check) without SMTP;
// test/security/from-spoofing.test.ts does the same over SMTP, signature and all.
import fc from 'fast-check';
import { LineEndings } from '../../src/accept-message';
import { parseHeaderFields } from '../../src/dkim/header-fields';
import { checkFieldSyntax, checkHeaders } from '../../src/policy/header-rules';
import { Rejection } from '../../src/policy/rejection';
import { checkAuthorFields } from '../../src/policy/sender-domains';
import { fromFieldArbitrary } from '../helpers/from-fields';
import { pythonReadsFrom } from '../helpers/python-from';

const ALICE = { user: { name: 'alice', domains: ['example.test'] } };

const fromValue = fromFieldArbitrary('alice@example.test', 'x@other.test');

function message(from: Buffer): Buffer {
  const lines = new LineEndings();
  const raw = Buffer.concat([Buffer.from('From: '), from, Buffer.from('\r\nTo: bob@elsewhere.test\r\nSubject: hi\r\n\r\nbody\r\n')]);
  return Buffer.concat([lines.normalize(raw), lines.flush()]);
}

/** The relay's verdict on a message's header section: the signing domain, or the refusal. */
function relayVerdict(raw: Buffer, identity = ALICE): { domain?: string; code?: string } {
  const end = raw.indexOf('\r\n\r\n');
  const section = raw.subarray(0, end + 2);
  try {
    checkFieldSyntax(section);
    const facts = checkHeaders(parseHeaderFields(section));
    checkAuthorFields(identity, facts.authors, 'refuse');
    return { domain: facts.fromDomain };
  } catch (err) {
    if (err instanceof Rejection) return { code: `${err.responseCode} ${err.enhancedCode}` };
    throw err;
  }
}

test('every From the header checks accept is one mailbox of the same domain for Python, and none shows another domain', async () => {
  const samples = fc.sample(fromValue, { numRuns: 6000, seed: 20261203 });
  const messages = samples.map(message);
  const python = await pythonReadsFrom(messages);
  let accepted = 0;
  const problems: string[] = [];
  messages.forEach((raw, i) => {
    const verdict = relayVerdict(raw);
    // A refusal is always one of the two documented ones.
    if (verdict.code) {
      if (!['550 5.6.0', '550 5.7.1'].includes(verdict.code)) problems.push(`${verdict.code} for ${JSON.stringify(samples[i].toString('latin1'))}`);
      return;
    }
    accepted++;
    const py = python[i];
    const seen = py.addresses ?? [];
    if (seen.length !== 1 || seen[0][2].toLowerCase() !== verdict.domain || verdict.domain !== 'example.test') {
      problems.push(`relay: ${verdict.domain}, python: ${JSON.stringify(py)} for ${JSON.stringify(samples[i].toString('latin1'))}`);
      return;
    }
    // Nothing Python shows as the display name may name another domain either.
    if (/@(?!example\.test\b)[^\s@]/i.test(seen[0][0].normalize('NFKC'))) problems.push(`display ${JSON.stringify(seen[0][0])} for ${JSON.stringify(samples[i].toString('latin1'))}`);
  });
  expect(problems.slice(0, 20)).toEqual([]);
  // The generator must reach both sides, or the test proves nothing.
  expect(accepted).toBeGreaterThan(200);
  expect(samples.length - accepted).toBeGreaterThan(1000);
}, 120000);
