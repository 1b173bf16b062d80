// Types for the DMARC record discovery of mailauth 7 (RFC 9989 tree walk), a plain CommonJS
// module below its public API; doctor/dmarc-checks.ts is its only user.
declare module 'mailauth/lib/dmarc/get-dmarc-record' {
  interface DmarcRecord {
    [tag: string]: string | number | boolean | null | undefined;
    /** the record as published */
    rr: string;
    /** true when the record is the organizational domain's (or the PSD's), not the domain's own */
    isOrgRecord: boolean;
    recordDomain: string;
    orgDomain: string | null;
  }
  function getDmarcRecord(
    domain: string,
    resolver: (name: string, type: string) => Promise<unknown[]>,
    opts?: { strict?: boolean },
  ): Promise<DmarcRecord | false>;
  export = getDmarcRecord;
}
