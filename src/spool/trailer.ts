// The envelope at the end of a spool file: <message bytes><envelope JSON><footer>, where the
// footer is FOOTER_LENGTH bytes, "\n#dkim-relay-envelope 0000001234\n", giving the JSON's
// length. A file whose footer is missing or does not add up was never committed.
import fsp from 'node:fs/promises';

const MAGIC = '\n#dkim-relay-envelope ';
const DIGITS = 10;
export const FOOTER_LENGTH = MAGIC.length + DIGITS + 1;

/** The trailer to append after the message bytes. */
export function encodeTrailer(envelope: object): Buffer {
  const json = Buffer.from(JSON.stringify(envelope), 'utf8');
  const footer = Buffer.from(`${MAGIC}${String(json.length).padStart(DIGITS, '0')}\n`, 'latin1');
  return Buffer.concat([json, footer]);
}

/**
 * Reads the envelope from the trailer of `file`. Null when the file has no valid trailer
 * (or `size`, the message length the envelope states, does not match what precedes it).
 */
export async function readTrailer<T extends { size: number }>(file: string): Promise<T | null> {
  const handle = await fsp.open(file, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    if (fileSize < FOOTER_LENGTH) return null;
    const footer = Buffer.alloc(FOOTER_LENGTH);
    await handle.read(footer, 0, FOOTER_LENGTH, fileSize - FOOTER_LENGTH);
    const text = footer.toString('latin1');
    if (!text.startsWith(MAGIC) || !text.endsWith('\n')) return null;
    const length = Number(text.slice(MAGIC.length, -1));
    if (!Number.isInteger(length) || length <= 0 || length > fileSize - FOOTER_LENGTH) return null;
    const json = Buffer.alloc(length);
    await handle.read(json, 0, length, fileSize - FOOTER_LENGTH - length);
    const envelope = JSON.parse(json.toString('utf8')) as T;
    return envelope.size === fileSize - FOOTER_LENGTH - length ? envelope : null;
  } catch (err) {
    if (err instanceof SyntaxError) return null;
    throw err;
  } finally {
    await handle.close();
  }
}
