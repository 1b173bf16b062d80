// The users allowed to AUTH on the submission port and the sender domains granted to each,
// kept in one JSON file (config.usersFile, managed by `dkim-relay users`, git-ignored):
//   { "users": [ { "name": "app1", "domains": ["example.org"],
//                  "password": "scrypt$16384$8$1$<salt b64>$<hash b64>", "created": "<ISO date>" } ] }
// Passwords are kept only as scrypt hashes. A user may send as exactly the domains listed:
// a grant of example.org does not cover mail.example.org (grant that one too). Exact matches
// keep the rule easy to read in the file and impossible to widen by accident.
// The file is replaced atomically (temporary file, fsync, rename), mode 0600. Two `users`
// commands run at the same instant may lose one change; the CLI is run by one admin.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { replaceFileSync } from '../fs/durable-file';
import { domainNameProblem, normalizeDomainName } from '../dkim/dns-record';

export interface UserRecord {
  name: string;
  /** Lower-case domain names this user may send as (exact match, no subdomains). */
  domains: string[];
  /** scrypt$N$r$p$<salt b64>$<hash b64>; never logged or printed. */
  password: string;
  /** ISO 8601 time the user was added. */
  created: string;
}

/** A problem the person running the relay or the CLI caused and can fix; the message says how. */
export class UsersError extends Error {}

const SCRYPT = { N: 16384, r: 8, p: 1, saltBytes: 16, keyBytes: 32 };
/** Longest password accepted; longer client input is refused without hashing it. */
export const MAX_PASSWORD_LENGTH = 1024;
export const MIN_PASSWORD_LENGTH = 8;
const NAME_RE = /^[A-Za-z0-9._@+-]{1,64}$/;

function scrypt(password: string, salt: Buffer, keyBytes: number, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(password, salt, keyBytes, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A new scrypt hash of `password`: scrypt$16384$8$1$<salt b64>$<hash b64>. */
export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(SCRYPT.saltBytes);
  const key = await scrypt(password, salt, SCRYPT.keyBytes, SCRYPT.N, SCRYPT.r, SCRYPT.p);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface ParsedHash { N: number; r: number; p: number; salt: Buffer; key: Buffer }

// Bounds keep a hand-edited hash from making one AUTH cost gigabytes or minutes.
function parseHash(stored: string): ParsedHash | null {
  if (typeof stored !== 'string') return null;
  const m = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(stored);
  if (!m) return null;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const salt = Buffer.from(m[4], 'base64');
  const key = Buffer.from(m[5], 'base64');
  if (salt.length < 8 || (key.length !== 32 && key.length !== 64)) return null;
  return { N, r, p, salt, key };
}

/**
 * Whether `password` matches the `stored` hash, compared in constant time. False, never an
 * exception, for a malformed hash or any client input.
 */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed || typeof password !== 'string' || password.length > MAX_PASSWORD_LENGTH) return false;
  try {
    const key = await scrypt(password, parsed.salt, parsed.key.length, parsed.N, parsed.r, parsed.p);
    return crypto.timingSafeEqual(key, parsed.key);
  } catch {
    return false;
  }
}

/** Why `name` cannot be a user name, or null. */
export function userNameProblem(name: string): string | null {
  if (NAME_RE.test(name)) return null;
  return `"${name.length > 70 ? `${name.slice(0, 70)}...` : name}" is not a valid user name: use 1-64 characters of letters, digits and . _ @ + -`;
}

/** The users in `file`; a missing file means no users. Throws UsersError naming the file and the problem. */
export function readUsers(file: string): UserRecord[] {
  const bytes = readUsersBytes(file);
  return bytes ? parseUsers(file, bytes.toString('utf8')) : [];
}

/** The file's bytes, null when it does not exist. Throws UsersError naming the file and the problem. */
function readUsersBytes(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new UsersError(`users file ${file} cannot be read (${code ?? (err as Error).message}): check usersFile (env RELAY_USERS_FILE) and its permissions`);
  }
}

function parseUsers(file: string, text: string): UserRecord[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    // V8's message may quote the file (and so a hash); keep only where the problem is.
    const where = /line \d+ column \d+|position \d+/.exec((err as Error).message)?.[0];
    throw new UsersError(`users file ${file} is not valid JSON${where ? ` (at ${where})` : ''}: fix it, or manage it with \`dkim-relay users\``);
  }
  const bad = (what: string) =>
    new UsersError(`users file ${file}: ${what}; expected {"users": [{"name", "domains", "password", "created"}]} as written by \`dkim-relay users add\``);
  if (typeof data !== 'object' || data === null || !Array.isArray((data as { users?: unknown }).users)) {
    throw bad('there is no "users" list at the top');
  }
  const seen = new Set<string>();
  return ((data as { users: unknown[] }).users).map((entry, i) => {
    const at = `users[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw bad(`${at} is not an object`);
    const u = entry as Record<string, unknown>;
    if (typeof u.name !== 'string') throw bad(`${at} has no "name"`);
    const nameProblem = userNameProblem(u.name);
    if (nameProblem) throw bad(`${at}: ${nameProblem}`);
    if (seen.has(u.name)) throw bad(`the user "${u.name}" is listed twice`);
    seen.add(u.name);
    if (!Array.isArray(u.domains) || u.domains.length === 0 || !u.domains.every((d) => typeof d === 'string')) {
      throw bad(`user "${u.name}" needs "domains", a non-empty list of domain names`);
    }
    const domains = (u.domains as string[]).map(normalizeDomainName);
    for (const d of domains) {
      const problem = domainNameProblem(d);
      if (problem) throw bad(`user "${u.name}": ${problem}`);
    }
    // Never quote the hash in the message.
    if (typeof u.password !== 'string' || !parseHash(u.password)) {
      throw bad(`user "${u.name}" has no valid "password" hash (scrypt$N$r$p$salt$hash); set a new password by removing and adding the user`);
    }
    if (typeof u.created !== 'string') throw bad(`user "${u.name}" has no "created" date`);
    return { name: u.name, domains: [...new Set(domains)], password: u.password, created: u.created };
  });
}

export interface NewUser {
  name: string;
  domains: string[];
  password: string;
}

/** Adds a user (refusing an existing name) and returns the record written. */
export async function addUser(file: string, user: NewUser): Promise<UserRecord> {
  const nameProblem = userNameProblem(user.name);
  if (nameProblem) throw new UsersError(nameProblem);
  if (user.domains.length === 0) {
    throw new UsersError(`user ${user.name} needs at least one domain it may send as: add --domain example.org`);
  }
  const domains = [...new Set(user.domains.map(normalizeDomainName))];
  for (const d of domains) {
    const problem = domainNameProblem(d);
    if (problem) throw new UsersError(`--domain: ${problem}`);
  }
  if (user.password.length < MIN_PASSWORD_LENGTH) {
    throw new UsersError(`the password is shorter than ${MIN_PASSWORD_LENGTH} characters: choose a longer one, or leave out --password-stdin to have one generated`);
  }
  if (user.password.length > MAX_PASSWORD_LENGTH) {
    throw new UsersError(`the password is longer than ${MAX_PASSWORD_LENGTH} characters: choose a shorter one`);
  }
  const users = readUsers(file);
  const existing = users.find((u) => u.name.toLowerCase() === user.name.toLowerCase());
  if (existing) {
    throw new UsersError(`user ${existing.name} exists: remove it first with \`dkim-relay users remove ${existing.name}\``);
  }
  const record: UserRecord = { name: user.name, domains, password: await hashPassword(user.password), created: new Date().toISOString() };
  writeUsers(file, [...users, record]);
  return record;
}

/** Removes the user `name`; throws UsersError when there is none. */
export function removeUser(file: string, name: string): void {
  const users = readUsers(file);
  const rest = users.filter((u) => u.name !== name);
  if (rest.length === users.length) {
    throw new UsersError(`there is no user ${name} in ${file}: \`dkim-relay users list\` shows the users`);
  }
  writeUsers(file, rest);
}

/** Replaces the file atomically and durably (src/fs/durable-file.ts), mode 0600. */
function writeUsers(file: string, users: UserRecord[]): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 }); // not 0777 less the umask: it may be 000
    replaceFileSync(path.resolve(file), `${JSON.stringify({ users }, null, 2)}\n`, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsersError(`cannot write the users file ${file} (${code ?? (err as Error).message}): check usersFile (env RELAY_USERS_FILE) and that this user may write to ${dir}`);
  }
}

export interface UserDirectoryOptions {
  /** Called once for each changed version of the file that cannot be read; the users read before stay in force. */
  onReloadError?: (err: Error) => void;
}

/**
 * The users as the submission server sees them. Reads the file at construction (throwing
 * UsersError when it is bad, so a broken file stops the start) and again as soon as it has
 * changed, without a restart: every AUTH and every check of a logged-in session looks at the
 * file's identity (one stat: device, inode, size, modification and change times in
 * nanoseconds; `dkim-relay users` replaces the file, so the inode changes too), and before a
 * login is refused the file's bytes are compared with those last read, in case two changes
 * fell within one tick of a coarse file system clock. So a user that `users add` reported
 * as added logs in at once, and a removed user is gone at once.
 */
export class UserDirectory {
  private users: UserRecord[] = [];
  private signature = '';
  /** The bytes the users were parsed from; null for a missing file. */
  private bytes: Buffer | null = null;
  /** The last version found unreadable, so that it is reported (and parsed) once. */
  private badSignature = '';
  private badBytes: Buffer | null = null;
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly file: string, private readonly options: UserDirectoryOptions = {}) {
    this.reload();
  }

  /**
   * Re-reads the file if its identity changed since the last read. Returns whether the users
   * were re-read. Throws UsersError when the changed file is bad; the users read before stay
   * in force.
   */
  reload(): boolean {
    const signature = this.stat();
    if (signature === this.signature || signature === this.badSignature) return false;
    const bytes = readUsersBytes(this.file);
    try {
      this.use(bytes);
    } catch (err) {
      this.badSignature = signature;
      this.badBytes = bytes;
      throw err;
    }
    this.signature = signature;
    return true;
  }

  /** The user `name` as the file has it now, or undefined. */
  current(name: string): UserRecord | undefined {
    this.refresh(() => this.reload());
    return this.users.find((u) => u.name === name);
  }

  /** The user when `name` and `password` match, else null. Never throws on client input. */
  async authenticate(name: string, password: string): Promise<UserRecord | null> {
    const user = typeof name === 'string' ? this.current(name) : undefined;
    if (user && (await verifyPassword(user.password, password))) return user;
    if (!user) {
      // Spend the same time as for a real user, so replies do not tell which names exist.
      this.dummyHash ??= hashPassword(crypto.randomBytes(16).toString('hex'));
      await verifyPassword(await this.dummyHash, typeof password === 'string' ? password : '');
    }
    // Before refusing: the file may have changed in a way its stat did not show.
    if (!this.refresh(() => this.reloadIfBytesChanged())) return null;
    const now = typeof name === 'string' ? this.users.find((u) => u.name === name) : undefined;
    return now && (await verifyPassword(now.password, password)) ? now : null;
  }

  /** The users as last read (for status output; the records include the hashes). */
  list(): UserRecord[] {
    return [...this.users];
  }

  private refresh(load: () => boolean): boolean {
    try {
      return load();
    } catch (err) {
      this.options.onReloadError?.(err as Error);
      return false;
    }
  }

  private reloadIfBytesChanged(): boolean {
    const bytes = readUsersBytes(this.file);
    if (sameBytes(bytes, this.bytes) || (this.badBytes && sameBytes(bytes, this.badBytes))) return false;
    try {
      this.use(bytes);
    } catch (err) {
      this.badBytes = bytes;
      throw err;
    }
    this.signature = ''; // the stat taken before may not describe these bytes
    return true;
  }

  private use(bytes: Buffer | null): void {
    this.users = bytes ? parseUsers(this.file, bytes.toString('utf8')) : [];
    this.bytes = bytes;
  }

  private stat(): string {
    try {
      const st = fs.statSync(this.file, { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch (err) {
      // Another error is reported by the read that follows, once for as long as it lasts.
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? 'missing' : `unreadable:${code}`;
    }
  }
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}
