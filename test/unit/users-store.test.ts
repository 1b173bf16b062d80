import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, UsageError } from '../../src/cli-context';
import { capturedContext } from '../helpers/cli-context';
import { usersCommand } from '../../src/cli/users-command';
import { loadConfig } from '../../src/config/load';
import { addUser, hashPassword, readUsers, removeUser, UserDirectory, UsersError, verifyPassword } from '../../src/users/store';

let dir: string;
let file: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'users-store-'));
  file = path.join(dir, 'config', 'users.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('password hashes', () => {
  test('are scrypt$16384$8$1$salt$hash with a 16-byte salt and a 32-byte key', async () => {
    const stored = await hashPassword('correct horse');
    const m = /^scrypt\$16384\$8\$1\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
    expect(m).not.toBeNull();
    expect(Buffer.from(m![1], 'base64')).toHaveLength(16);
    expect(Buffer.from(m![2], 'base64')).toHaveLength(32);
    expect(await hashPassword('correct horse')).not.toBe(stored); // salted
  });

  test('verify the right password and refuse a wrong one', async () => {
    const stored = await hashPassword('correct horse');
    expect(await verifyPassword(stored, 'correct horse')).toBe(true);
    expect(await verifyPassword(stored, 'correct horsE')).toBe(false);
    expect(await verifyPassword(stored, '')).toBe(false);
    expect(await verifyPassword(stored, 'x'.repeat(100_000))).toBe(false);
  });

  test('a malformed stored hash verifies nothing and does not throw', async () => {
    const good = await hashPassword('pw');
    const [, , , , salt, hash] = good.split('$');
    for (const bad of [
      '', 'plain', 'scrypt$', `bcrypt$16384$8$1$${salt}$${hash}`, `scrypt$16384$8$1$${salt}`,
      `scrypt$1000$8$1$${salt}$${hash}`, // N not a power of two
      `scrypt$1073741824$8$1$${salt}$${hash}`, // N absurdly large
      `scrypt$16384$8$1$${salt}$${Buffer.alloc(5).toString('base64')}`, // short key
      `scrypt$16384$8$1$!!!$${hash}`,
    ]) {
      await expect(verifyPassword(bad, 'pw')).resolves.toBe(false);
    }
    await expect(verifyPassword(undefined as unknown as string, 'pw')).resolves.toBe(false);
    await expect(verifyPassword(good, undefined as unknown as string)).resolves.toBe(false);
  });
});

describe('users file', () => {
  test('a missing file means no users', () => {
    expect(readUsers(file)).toEqual([]);
  });

  test('add, list and remove; the folder is made and the file is 0600', async () => {
    const added = await addUser(file, { name: 'app1', domains: ['Example.ORG', 'example.net.'], password: 'secret-pw-1' });
    expect(added.domains).toEqual(['example.org', 'example.net']);
    await addUser(file, { name: 'app2@example.org', domains: ['example.com'], password: 'secret-pw-2' });
    expect((fs.statSync(file).mode & 0o777).toString(8)).toBe('600');
    const users = readUsers(file);
    expect(users.map((u) => u.name)).toEqual(['app1', 'app2@example.org']);
    expect(Number.isNaN(Date.parse(users[0].created))).toBe(false);
    expect(await verifyPassword(users[0].password, 'secret-pw-1')).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).not.toContain('secret-pw');
    removeUser(file, 'app1');
    expect(readUsers(file).map((u) => u.name)).toEqual(['app2@example.org']);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['users.json']); // no temporary files left
    expect(() => removeUser(file, 'app1')).toThrow(/no user app1.*users list/);
  });

  test('an existing name is refused with the command that removes it', async () => {
    await addUser(file, { name: 'app1', domains: ['example.org'], password: 'secret-pw-1' });
    await expect(addUser(file, { name: 'app1', domains: ['example.com'], password: 'secret-pw-2' }))
      .rejects.toThrow('user app1 exists: remove it first with `dkim-relay users remove app1`');
    await expect(addUser(file, { name: 'APP1', domains: ['example.com'], password: 'secret-pw-2' })).rejects.toThrow(/app1 exists/);
  });

  test('bad names, domains and passwords are refused with the reason', async () => {
    const ok = { name: 'app1', domains: ['example.org'], password: 'secret-pw-1' };
    await expect(addUser(file, { ...ok, name: 'has space' })).rejects.toThrow(UsersError);
    await expect(addUser(file, { ...ok, name: '' })).rejects.toThrow(/1-64 characters/);
    await expect(addUser(file, { ...ok, name: 'x'.repeat(65) })).rejects.toThrow(/1-64 characters/);
    await expect(addUser(file, { ...ok, domains: [] })).rejects.toThrow(/at least one domain/);
    await expect(addUser(file, { ...ok, domains: ['not a domain'] })).rejects.toThrow(/spaces/);
    await expect(addUser(file, { ...ok, domains: ['localhost'] })).rejects.toThrow(/no dot/);
    await expect(addUser(file, { ...ok, domains: ['-bad.example'] })).rejects.toThrow(/not a domain name/);
    await expect(addUser(file, { ...ok, password: 'short' })).rejects.toThrow(/shorter than 8/);
    expect(fs.existsSync(file)).toBe(false);
  });

  test('bad JSON or a bad shape names the file and the problem, never the hash', async () => {
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, '{"users": [');
    expect(() => readUsers(file)).toThrow(new RegExp(`users file ${file.replace(/[.]/g, '\\.')} is not valid JSON`));
    fs.writeFileSync(file, '{"people": []}');
    expect(() => readUsers(file)).toThrow(/no "users" list/);
    fs.writeFileSync(file, JSON.stringify({ users: [{ name: 'a', domains: 'example.org', password: 'x', created: '' }] }));
    expect(() => readUsers(file)).toThrow(/user "a" needs "domains"/);
    fs.writeFileSync(file, JSON.stringify({ users: [{ name: 'a', domains: ['example.org'], password: 'scrypt$secretish', created: '' }] }));
    expect(() => readUsers(file)).toThrow(/no valid "password" hash/);
    expect(() => readUsers(file)).not.toThrow(/secretish/);
  });
});

describe('UserDirectory', () => {
  test('authenticates by name and password', async () => {
    await addUser(file, { name: 'app1', domains: ['example.org'], password: 'secret-pw-1' });
    const users = new UserDirectory(file);
    expect((await users.authenticate('app1', 'secret-pw-1'))?.domains).toEqual(['example.org']);
    expect(await users.authenticate('app1', 'wrong-pw')).toBeNull();
    expect(await users.authenticate('nobody', 'secret-pw-1')).toBeNull();
    expect(await users.authenticate(undefined as unknown as string, undefined as unknown as string)).toBeNull();
  });

  test('picks up users added or removed while running at once, on the next look', async () => {
    const users = new UserDirectory(file);
    expect(await users.authenticate('app1', 'secret-pw-1')).toBeNull();
    await addUser(file, { name: 'app1', domains: ['example.org'], password: 'secret-pw-1' });
    expect((await users.authenticate('app1', 'secret-pw-1'))?.name).toBe('app1');
    expect(users.current('app1')?.domains).toEqual(['example.org']);

    removeUser(file, 'app1');
    expect(users.current('app1')).toBeUndefined();
    expect(users.reload()).toBe(false); // seen already
    expect(await users.authenticate('app1', 'secret-pw-1')).toBeNull();
  });

  test('a rewrite in place that keeps inode, size and mtime is seen (ctime and the bytes tell)', async () => {
    await addUser(file, { name: 'app1', domains: ['example.org'], password: 'secret-pw-1' });
    const users = new UserDirectory(file);
    const before = fs.statSync(file);
    // Same inode, same size, the old mtime put back: only ctime and the bytes differ.
    const text = fs.readFileSync(file, 'utf8');
    const other = JSON.parse(text) as { users: { name: string; password: string }[] };
    const replacement = await hashPassword('secret-pw-2');
    other.users[0].password = replacement;
    const changed = `${JSON.stringify(other, null, 2)}\n`;
    expect(changed.length).toBe(text.length);
    fs.writeFileSync(file, changed);
    fs.utimesSync(file, before.atime, before.mtime);
    expect((await users.authenticate('app1', 'secret-pw-2'))?.name).toBe('app1');
    expect(await users.authenticate('app1', 'secret-pw-1')).toBeNull();
  });

  test('a broken file keeps the users read before and reports the problem once', async () => {
    await addUser(file, { name: 'app1', domains: ['example.org'], password: 'secret-pw-1' });
    const errors: Error[] = [];
    const users = new UserDirectory(file, { onReloadError: (e) => errors.push(e) });
    fs.writeFileSync(file, '{broken');
    expect((await users.authenticate('app1', 'secret-pw-1'))?.name).toBe('app1');
    expect(await users.authenticate('app1', 'wrong')).toBeNull();
    expect(users.current('app1')?.name).toBe('app1');
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(/not valid JSON/);
  });

  test('a broken file at start stops the start', () => {
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, 'nope');
    expect(() => new UserDirectory(file)).toThrow(UsersError);
  });
});

describe('dkim-relay users', () => {
  const context = (stdinText?: string) => capturedContext(loadConfig({ env: { RELAY_USERS_FILE: file } }), stdinText);

  test('add with --password-stdin, list, list --json, remove', async () => {
    const a = context('pw from stdin\r\nsecond line ignored\n');
    expect(await usersCommand(['add', 'app1', '--domain', 'example.org', '--domain', 'Example.NET', '--password-stdin'], a.ctx)).toBe(0);
    expect(a.out.stdout).toBe('');
    expect(a.out.stderr).toMatch(/Added user app1.*example\.org, example\.net/);
    expect(await new UserDirectory(file).authenticate('app1', 'pw from stdin')).not.toBeNull();

    const l = context();
    expect(await usersCommand(['list'], l.ctx)).toBe(0);
    expect(l.out.stdout).toMatch(/^NAME +DOMAINS +CREATED\napp1 +example\.org,example\.net +\d{4}-/);
    expect(l.out.stdout).not.toContain('scrypt');

    const j = context();
    expect(await usersCommand(['list', '--json'], j.ctx)).toBe(0);
    const listed = JSON.parse(j.out.stdout);
    expect(listed).toEqual([{ name: 'app1', domains: ['example.org', 'example.net'], created: expect.any(String) }]);

    const r = context();
    expect(await usersCommand(['remove', 'app1'], r.ctx)).toBe(0);
    expect(readUsers(file)).toEqual([]);
    await expect(usersCommand(['remove', 'app1'], context().ctx)).rejects.toThrow(CliError);
  });

  test('add without --password-stdin prints a generated password once', async () => {
    const a = context();
    expect(await usersCommand(['add', 'app1', '--domain', 'example.org'], a.ctx)).toBe(0);
    const password = a.out.stdout.trim();
    expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(a.out.stderr).toMatch(/shown only this once/);
    expect(await new UserDirectory(file).authenticate('app1', password)).not.toBeNull();
  });

  test('user errors become CliError or UsageError with a way out', async () => {
    await expect(usersCommand(['add', 'app1', '--domain', 'example.org', '--password-stdin'], context('\n').ctx))
      .rejects.toThrow(CliError);
    await expect(usersCommand(['add', 'app1', '--domain', 'example.org', '--password-stdin'], context('').ctx))
      .rejects.toThrow(/no password on stdin/);
    await expect(usersCommand(['add', 'app1', '--domain', 'bad domain', '--password-stdin'], context('long enough\n').ctx))
      .rejects.toThrow(CliError);
    await expect(usersCommand(['add', 'app1'], context().ctx)).rejects.toThrow(UsageError);
    await expect(usersCommand(['add', '--domain', 'example.org'], context().ctx)).rejects.toThrow(/usage: dkim-relay users add/);
    await expect(usersCommand(['add', 'app1', '--domain', 'example.org', '--password', 'x'], context().ctx)).rejects.toThrow(UsageError);
    await expect(usersCommand([], context().ctx)).rejects.toThrow(UsageError);
    await expect(usersCommand(['frobnicate'], context().ctx)).rejects.toThrow(/unknown users command/);
    await expect(usersCommand(['remove'], context().ctx)).rejects.toThrow(UsageError);

    await usersCommand(['add', 'app1', '--domain', 'example.org', '--password-stdin'], context('secret-pw-1\n').ctx);
    await expect(usersCommand(['add', 'app1', '--domain', 'example.org', '--password-stdin'], context('secret-pw-2\n').ctx))
      .rejects.toThrow(new CliError('user app1 exists: remove it first with `dkim-relay users remove app1`'));
  });
});
