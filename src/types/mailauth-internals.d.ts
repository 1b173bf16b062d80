// Types for the part of mailauth that dkim-relay uses below its public API: the streaming
// body hasher, a plain CommonJS module of mailauth 7 that loads nothing but node:crypto and
// its own files. The signer (src/dkim/signer.ts) is the only user. The header side
// (canonicalization, field selection, the DKIM-Signature field) is src/dkim/header-fields.ts:
// mailauth/lib/tools.js, which its header code needs, loads ~25 MB of other modules.
declare module 'mailauth/lib/dkim/body' {
  export interface BodyHasher { update(chunk: Buffer | null, final?: boolean): void; digest(encoding: 'base64'): string }
  export function dkimBody(canonicalization: string, hashAlgo: string, maxBodyLength: number | false): BodyHasher;
}
