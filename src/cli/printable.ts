// Text from outside (recipient addresses from clients, reply texts from remote servers,
// stored headers) printed to an operator's terminal: control characters could move the
// cursor, rewrite the screen or the window title, so they are shown as \xNN instead.
// Tab stays (folded header lines use it); CR and LF are shown too (one item, one line).

/** `text` with C0 and C1 control characters and DEL written as \xNN (tab kept). */
export function printable(text: unknown): string {
  return String(text ?? '').replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Multi-line text (a header section): each line made printable, the line ends kept. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

/**
 * JSON for a terminal: JSON.stringify escapes C0 controls but not DEL and C1 (U+0080-U+009F,
 * which some terminals take as escape sequences), nor the line separators U+2028/U+2029.
 */
export function terminalJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
