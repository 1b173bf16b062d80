// A domain's TLS reporting record (RFC 8460 section 3): the TXT record at _smtp._tls.DOMAIN,
// "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://reports.example.com/tlsrpt". Records
// that do not start with v=TLSRPTv1 are someone else's; more than one TLSRPT record, or one
// that does not parse, means the domain does not take reports (as the RFC says).

export type ReportTarget =
  | { kind: 'mailto'; uri: string; address: string }
  | { kind: 'https'; uri: string; url: URL };

export type RecordReading =
  | { ok: true; targets: ReportTarget[] }
  | { ok: false; reason: string };

/** The name the record lives at. */
export function recordName(domain: string): string {
  return `_smtp._tls.${domain.replace(/\.$/, '')}`;
}

/** Reads the TXT strings found at _smtp._tls.DOMAIN (each record's strings already joined). */
export function readTlsRptRecords(txt: string[]): RecordReading {
  const mine = txt.filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t));
  if (!mine.length) return { ok: false, reason: 'no v=TLSRPTv1 record' };
  if (mine.length > 1) return { ok: false, reason: `${mine.length} v=TLSRPTv1 records (RFC 8460 3: exactly one)` };
  const fields = mine[0].split(';').map((f) => f.trim());
  fields.shift(); // v=TLSRPTv1
  if (fields.length && fields[fields.length - 1] === '') fields.pop(); // a trailing ";" is allowed
  const rua = fields.filter((f) => /^rua=/.test(f));
  if (rua.length !== 1) return { ok: false, reason: rua.length ? 'more than one rua=' : 'no rua=' };
  if (fields.some((f) => !/^[A-Za-z0-9_.-]+=/.test(f))) return { ok: false, reason: 'a field that is not name=value' };
  const targets: ReportTarget[] = [];
  for (const raw of rua[0].slice(4).split(',').map((u) => u.trim())) {
    const target = readTarget(raw);
    if (target) targets.push(target);
  }
  if (!targets.length) return { ok: false, reason: `no usable mailto: or https: URI in "${rua[0]}"` };
  return { ok: true, targets };
}

function readTarget(uri: string): ReportTarget | null {
  if (/^mailto:/i.test(uri)) {
    let address: string;
    try {
      address = decodeURIComponent(uri.slice(7).split('?')[0]);
    } catch {
      return null;
    }
    // one plain addr-spec: no list, no display name, nothing that could add a header or recipient
    if (!/^[^\s@<>(),;:"\\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$/.test(address)) return null;
    return { kind: 'mailto', uri, address };
  }
  if (/^https:/i.test(uri)) {
    try {
      const url = new URL(uri);
      if (url.protocol !== 'https:' || url.username || url.password) return null;
      return { kind: 'https', uri, url };
    } catch {
      return null;
    }
  }
  return null; // RFC 8460 defines mailto and https only
}
