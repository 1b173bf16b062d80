// src/submission/data-dot-search.ts replaces smtp-server's SMTPStream._feedDataStream with a
// copy whose search for "\n." uses Buffer.indexOf. The copy must stay smtp-server's code in
// everything else, so this test pins the original (when it fails after an smtp-server
// update: compare the new _feedDataStream with the shim, carry over what changed, then
// update ORIGINAL_SHA256) and checks that both read the same data and the same commands
// after it from random input, cut into chunks at random places.
import crypto from 'node:crypto';
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream';
import { smtpServerFeed } from '../../src/submission/data-dot-search';

const ORIGINAL_SHA256 = '102f79c23db8756f7730e9d7735e3ed18cd99f898b9f4ce5a852d2e94fe3c7d3';

type Feed = typeof smtpServerFeed;

/** The source without comments and with runs of whitespace made one space. */
function normalized(source: string): string {
  return source.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ' ').trim();
}

interface Received { data: string[]; commands: string[]; dataBytes: number[] }

/** Feeds `input` to an SMTPStream in chunks cut at `cuts`; DATA starts data mode. */
async function receive(input: Buffer, cuts: number[], feed: Feed | null): Promise<Received> {
  const stream = new SMTPStream();
  if (feed) (stream as unknown as { _feedDataStream: Feed })._feedDataStream = feed;
  const got: Received = { data: [], commands: [], dataBytes: [] };
  (stream as unknown as { oncommand: (line: Buffer, next?: () => void) => void }).oncommand = (line, next) => {
    const command = line.toString('latin1');
    got.commands.push(command);
    if (command === 'DATA') {
      const data = stream.startDataMode();
      const parts: Buffer[] = [];
      data.on('data', (b: Buffer) => parts.push(b));
      data.on('end', () => {
        got.data.push(Buffer.concat(parts).toString('latin1'));
        got.dataBytes.push(stream.dataBytes);
        stream.continue();
      });
    }
    next?.();
  };
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...points, input.length]) {
    if (to > from) await new Promise<void>((resolve) => stream.write(input.subarray(from, to), () => resolve()));
    from = Math.max(from, to);
  }
  await new Promise<void>((resolve) => stream.end(() => resolve()));
  return got;
}

test('smtp-server\'s _feedDataStream is still the one the shim copies', () => {
  const hash = crypto.createHash('sha256').update(normalized(smtpServerFeed.toString())).digest('hex');
  expect(hash).toBe(ORIGINAL_SHA256);
});

test('the shim is installed', () => {
  expect((SMTPStream.prototype as unknown as { _feedDataStream: Feed })._feedDataStream).not.toBe(smtpServerFeed);
});

// Mostly what matters in DATA: CR, LF and dots; the body may or may not end properly.
const body = fc.array(fc.constantFrom('\r', '\n', '.', 'a', '\r\n', '\r\n.', '..', '\r\n.\r\n'), { maxLength: 40 }).map((a) => a.join(''));
const ending = fc.constantFrom('\r\n.\r\n', '.\r\n', '', '\r\n..\r\n.\r\n');

test('the shim reads the same data and the same commands as smtp-server, however the input is cut', async () => {
  await fc.assert(fc.asyncProperty(body, ending, fc.array(fc.nat(), { maxLength: 8 }), async (text, end, cuts) => {
    const input = Buffer.from(`MAIL FROM:<a@b>\r\nDATA\r\n${text}${end}QUIT\r\n`, 'latin1');
    expect(await receive(input, cuts, null)).toEqual(await receive(input, cuts, smtpServerFeed));
  }), { numRuns: 3000 });
});

test('a large body in one chunk: the data, then the command after it', async () => {
  const text = ('line of text\r\n..stuffed\r\n').repeat(5000);
  const input = Buffer.from(`DATA\r\n${text}.\r\nQUIT\r\n`, 'latin1');
  const got = await receive(input, [], null);
  expect(got.data).toEqual([text.replace(/\r\n\.\./g, '\r\n.')]);
  expect(got.commands).toEqual(['DATA', 'QUIT']);
});
