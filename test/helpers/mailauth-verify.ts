// A second, independent DKIM verifier: mailauth's own verifier (it shares no signing code
// path with the relay's use of its canonicalization). Keys come from the given records.
import { dkimVerify } from 'mailauth/lib/dkim/verify';

export interface MailauthVerdict {
  ok: boolean;
  signatures: { d?: string; s?: string; a?: string; result: string; comment?: string }[];
}

export async function verifyWithMailauth(message: Buffer, records: Record<string, string>): Promise<MailauthVerdict> {
  const resolver = async (name: string, type: string) => {
    const value = records[name.toLowerCase().replace(/\.$/, '')];
    if (type !== 'TXT' || value === undefined) {
      throw Object.assign(new Error(`no ${type} record for ${name}`), { code: 'ENOTFOUND' });
    }
    return [[value]];
  };
  const result = await dkimVerify(message, { resolver });
  const signatures = result.results.map((r) => ({
    d: r.signingDomain,
    s: r.selector,
    a: r.algo,
    result: String(r.status?.result),
    comment: r.status?.comment,
  }));
  return { ok: signatures.length > 0 && signatures.every((s) => s.result === 'pass'), signatures };
}
