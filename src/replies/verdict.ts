// What an SMTP reply or a local failure (DNS, connect, TLS) means: temporary or permanent, a
// class, a plain-language explanation and a fix. The rules are data (rules.ts, and a user
// file by RELAY_CLASSIFIER_RULES); the first match wins. Delivery, bounces and (later) the
// status page and doctor all ask here, so they tell the same story.
import fs from 'fs';
import { BUILT_IN_RULES, REPLY_CLASSES, ReplyClass, ReplyRule } from './rules';

export type { ReplyClass, ReplyRule } from './rules';

export interface ReplyInput {
  /** The 3-digit SMTP reply code; absent for a local failure. */
  code?: number;
  /** The enhanced status code, e.g. "5.7.26"; read from the text when absent. */
  enhanced?: string;
  text: string;
  /** The host that answered. */
  host?: string;
  domain?: string;
}

export interface Verdict {
  permanent: boolean;
  /** Pause the destination instead of trying again at once. */
  throttle: boolean;
  class: ReplyClass;
  provider?: string;
  explanation: string;
  fix: string;
  rule: string;
}

interface CompiledRule { rule: ReplyRule; code?: RegExp; enhanced?: RegExp; text?: RegExp; host?: RegExp }

const compile = (rule: ReplyRule): CompiledRule => ({
  rule,
  code: rule.match.code !== undefined ? new RegExp(rule.match.code, 'i') : undefined,
  enhanced: rule.match.enhanced !== undefined ? new RegExp(rule.match.enhanced, 'i') : undefined,
  text: rule.match.text !== undefined ? new RegExp(rule.match.text, 'i') : undefined,
  host: rule.match.host !== undefined ? new RegExp(rule.match.host, 'i') : undefined,
});

const builtIn = BUILT_IN_RULES.map(compile);
let userRules: CompiledRule[] = [];

/** The user's rules, checked before the built-in ones (set once at start). */
export function setUserRules(rules: ReplyRule[]): void {
  userRules = rules.map(compile);
}

/** The verdict on a reply or a local failure. */
export function classifyReply(input: ReplyInput): Verdict {
  const local = input.code === undefined;
  const code = local ? '' : String(input.code);
  const enhanced = input.enhanced ?? enhancedStatus(input.text) ?? '';
  const permanent = !local && input.code! >= 500 && input.code! < 600;
  for (const c of [...userRules, ...builtIn]) {
    const m = c.rule.match;
    if (m.local !== undefined && m.local !== local) continue;
    if (c.code && !c.code.test(code)) continue;
    if (c.enhanced && !c.enhanced.test(enhanced)) continue;
    if (c.text && !c.text.test(input.text)) continue;
    if (c.host && !c.host.test(input.host ?? '')) continue;
    const cls = c.rule.class;
    const throttle = !permanent && !local && code[0] === '4' && (c.rule.throttle ?? (cls === 'rate-limit' || cls === 'reputation'));
    return { permanent, throttle, class: cls, provider: c.rule.provider, explanation: c.rule.explanation, fix: c.rule.fix, rule: c.rule.id };
  }
  /* istanbul ignore next: the last built-in rule matches everything */
  throw new Error('no reply rule matched');
}

/** The verdict on a reply line as the relay keeps it ("550 5.7.1 ..." or a local failure's words). */
export function verdictOf(reply: string, host?: string): Verdict {
  reply = reply.replace(/^gave up after [^:]*: /, '');
  const code = /^([2-5]\d\d)(?:[ :-]|$)/.exec(reply)?.[1];
  return classifyReply({ code: code ? Number(code) : undefined, text: reply, host });
}

/** The enhanced status code (RFC 3463) in a reply, e.g. "5.1.1", if there is one. */
export function enhancedStatus(reply: string): string | undefined {
  return /^(?:\d{3}[ -])?([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply)?.[1];
}

/** Reads and checks a user rules file; the error names the file and the bad rule. */
export function loadRulesFile(file: string): ReplyRule[] {
  const where = `RELAY_CLASSIFIER_RULES file ${file}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${where} cannot be read as JSON: ${(err as Error).message}; it must be a JSON array of rules ` +
      '[{"id": "...", "match": {"code": "^5", "enhanced": "...", "text": "...", "host": "..."}, "class": "...", "explanation": "...", "fix": "..."}]');
  }
  if (!Array.isArray(parsed)) throw new Error(`${where} must hold a JSON array of rules, not ${typeof parsed}`);
  return parsed.map((r, i) => checkRule(r, `${where}: rule ${i + 1}${r && typeof r.id === 'string' ? ` ("${r.id}")` : ''}`));
}

function checkRule(r: unknown, where: string): ReplyRule {
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw new Error(`${where} must be an object`);
  const rule = r as Record<string, unknown>;
  for (const key of Object.keys(rule)) {
    if (!['id', 'provider', 'match', 'class', 'throttle', 'explanation', 'fix', 'source'].includes(key)) throw new Error(`${where}: unknown field "${key}"`);
  }
  if (typeof rule.id !== 'string' || !rule.id) throw new Error(`${where}: "id" must be a non-empty string`);
  if (!REPLY_CLASSES.includes(rule.class as ReplyClass)) throw new Error(`${where}: "class" must be one of ${REPLY_CLASSES.join(', ')}, not ${JSON.stringify(rule.class)}`);
  if (typeof rule.explanation !== 'string' || !rule.explanation) throw new Error(`${where}: "explanation" must be a non-empty string`);
  if (rule.fix !== undefined && typeof rule.fix !== 'string') throw new Error(`${where}: "fix" must be a string`);
  if (rule.throttle !== undefined && typeof rule.throttle !== 'boolean') throw new Error(`${where}: "throttle" must be true or false`);
  const match = rule.match as Record<string, unknown> | undefined;
  if (!match || typeof match !== 'object' || Array.isArray(match)) throw new Error(`${where}: "match" must be an object with code, enhanced, text or host`);
  const fields = Object.keys(match);
  if (!fields.length) throw new Error(`${where}: "match" is empty; it would match every reply`);
  for (const key of fields) {
    if (key === 'local') {
      if (typeof match.local !== 'boolean') throw new Error(`${where}: match.local must be true or false`);
      continue;
    }
    if (!['code', 'enhanced', 'text', 'host'].includes(key)) throw new Error(`${where}: match has an unknown field "${key}"`);
    if (typeof match[key] !== 'string') throw new Error(`${where}: match.${key} must be a regular expression as a string`);
    try {
      new RegExp(match[key] as string, 'i');
    } catch (err) {
      throw new Error(`${where}: match.${key} is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  return { ...(rule as unknown as ReplyRule), fix: (rule.fix as string | undefined) ?? '' };
}
