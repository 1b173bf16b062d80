// Generated From fields for the spoofing tests: pieces of the attacks in "Composition Kills"
// (Chen et al., USENIX Security 2020) glued at random, and plausible Froms of the user's own
// address with one piece changed, so that both refusals and acceptances are reached.
import fc from 'fast-check';

/** `own`: the user's address (alice@example.test); `other`: an address of a domain it may not use. */
export function fromFieldArbitrary(own: string, other: string): fc.Arbitrary<Buffer> {
  const [ownLocal, ownDomain] = own.split('@');
  const [otherLocal, otherDomain] = other.split('@');
  const q = (s: string) => s.replace(/@/g, '=40').replace(/</g, '=3C').replace(/>/g, '=3E');
  const pieces: (string | Buffer)[] = [
    ownLocal, otherLocal, 'Alice', 'John', 'Q.', '.', '@', ownDomain, otherDomain, ownDomain.toUpperCase(), `sub.${ownDomain}`,
    own, other, `<${own}>`, `<${other}>`, '<', '>', '"', '(', ')', ',', ':', ';',
    ' ', ' ', '\t', '\r\n ', '\r\n\t', '\r\n', '\n', '\n ', '\r', '\\', '\\"', `"${other}"`, `(${other})`, '(Alice)',
    `=?utf-8?q?${q(other)}?=`, `=?utf-8?b?${Buffer.from(other).toString('base64')}?=`, '=?utf-8?q?Alice?=', `=?iso-8859-1?q?${q(other)}?=`,
    `=?utf-8?q?${q(own)}?=`, `=?utf-8?q?${q(`<${other}>`)}?=`,
    '\u00a0', Buffer.from([0xa0]), Buffer.from([0xff]), '\uff20', '\u200b', '\u202e', '\0', '\x7f', '\u3000', 'ü', 'Jürgen',
    '[192.0.2.1]', 'xn--bcher-kva.test', '-', '_', "'", `${ownDomain}.`, '..', `"${ownLocal}"`, '<>', '""',
  ];
  const piece = fc.constantFrom(...pieces);
  // Pieces of names that are fine on their own, so that many generated fields are accepted.
  const namePiece = fc.constantFrom('Alice', 'Q.', '"Alice Example"', '"x y"', '(Sales)', ' ', '\r\n ', '=?utf-8?q?J=C3=BCrgen?=', 'Jürgen',
    "O'Brien", '"\\\\"', `(${other})`, `"${other}"`, `=?utf-8?q?${q(other)}?=`, other, '.', '""', '\t', `\uff20${otherDomain}`);
  return fc.oneof(
    fc.tuple(fc.array(namePiece, { maxLength: 5 }), fc.constantFrom(` <${own}>`, ` <${own.toUpperCase()}>`, own, ` <${ownLocal}@sub.${ownDomain}>`), fc.array(namePiece, { maxLength: 2 }))
      .map(([a, b, c]) => [...a, b, ...c]),
    fc.array(piece, { minLength: 1, maxLength: 10 }),
    fc.tuple(fc.array(piece, { maxLength: 4 }), fc.constantFrom(` <${own}>`, `<${own}>`, ` ${own}`, own), fc.array(piece, { maxLength: 3 }))
      .map(([a, b, c]) => [...a, b, ...c]),
    fc.tuple(fc.constantFrom('"Alice Example" ', 'Alice ', '', 'Alice Q. Example '), fc.constantFrom('<', ''), fc.array(piece, { maxLength: 3 }),
      fc.constantFrom(own, `${ownLocal}@${otherDomain}`, other), fc.array(piece, { maxLength: 3 }), fc.constantFrom('>', ''))
      .map(([name, open, a, address, b, close]) => [name, open, ...a, address, ...b, close]),
  ).map((parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p))));
}
