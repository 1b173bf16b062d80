// Types for the parts of mailauth that dkim-relay uses below its public API: the header
// parser and canonicalization, and the body hasher. They are plain CommonJS modules of
// mailauth 7; the signer (src/dkim/signer.ts) is the only user.
declare module 'mailauth/lib/tools' {
  export interface ParsedHeader { key: string | null; casedKey: string | undefined; line: Buffer }
  export function parseHeaders(buf: Buffer): { parsed: ParsedHeader[]; original: Buffer };
  export function getSigningHeaderLines(
    parsed: ParsedHeader[],
    fieldNames: string
  ): { keys: string; headers: ParsedHeader[] };
  export function formatSignatureHeaderLine(type: 'DKIM', values: Record<string, unknown>, folded: boolean): string;
}

declare module 'mailauth/lib/dkim/body' {
  export interface BodyHasher { update(chunk: Buffer | null, final?: boolean): void; digest(encoding: 'base64'): string }
  export function dkimBody(canonicalization: string, hashAlgo: string, maxBodyLength: number | false): BodyHasher;
}

declare module 'mailauth/lib/dkim/header' {
  export function generateCanonicalizedHeader(
    type: 'DKIM',
    signingHeaderLines: { keys: string; headers: import('mailauth/lib/tools').ParsedHeader[] },
    options: Record<string, unknown>
  ): { canonicalizedHeader: Buffer; dkimHeaderOpts: Record<string, unknown> };
}
