// `dkim-relay users add|list|remove`: the users allowed to AUTH on the submission port and
// the sender domains granted to each (src/users/store.ts). A running relay picks up changes
// within a second. Passwords are read from stdin or generated, never taken as an argument
// (arguments show up in `ps` and shell history), and only a generated one is ever printed.
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { CliContext, CliError, Command, UsageError } from '../cli-context';
import { addUser, readUsers, removeUser, UsersError } from '../users/store';

export const USERS_USAGE = [
  'usage: dkim-relay users add NAME --domain DOMAIN [--domain DOMAIN2 ...] [--password-stdin]',
  '       dkim-relay users list [--json]',
  '       dkim-relay users remove NAME',
].join('\n');

/** A generated password: 18 random bytes, 24 characters of base64url. */
export function generatePassword(): string {
  return crypto.randomBytes(18).toString('base64url');
}

export const usersCommand: Command = async (args, ctx) => {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'add':
        return await add(rest, ctx);
      case 'list':
        return list(rest, ctx);
      case 'remove':
        return remove(rest, ctx);
      case '-h':
      case '--help':
        ctx.stdout.write(`${USERS_USAGE}\n`);
        return 0;
      case undefined:
        throw new UsageError(`say what to do with the users: add, list or remove\n${USERS_USAGE}`);
      default:
        throw new UsageError(`unknown users command "${sub}": use add, list or remove\n${USERS_USAGE}`);
    }
  } catch (err) {
    if (err instanceof UsersError) throw new CliError(err.message);
    throw err;
  }
};

/** Runs parseArgs, turning its complaints into a UsageError with the usage lines. */
function parse<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USERS_USAGE}`);
  }
}

async function add(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(() => parseArgs({
    args,
    allowPositionals: true,
    options: { domain: { type: 'string', multiple: true }, 'password-stdin': { type: 'boolean' } },
  }));
  if (positionals.length !== 1) {
    throw new UsageError(`users add takes one user NAME${positionals.length ? `, not ${positionals.length}` : ''}\n${USERS_USAGE}`);
  }
  const name = positionals[0];
  const domains = values.domain ?? [];
  if (domains.length === 0) {
    throw new UsageError(`users add needs at least one --domain the user may send as\n${USERS_USAGE}`);
  }
  const fromStdin = values['password-stdin'] === true;
  const password = fromStdin ? await readPasswordLine(ctx.stdin) : generatePassword();
  const record = await addUser(ctx.config.usersFile, { name, domains, password });
  if (!fromStdin) {
    ctx.stdout.write(`${password}\n`);
    ctx.stderr.write(`The password of ${record.name} is printed above and shown only this once: store it now.\n`);
  }
  ctx.stderr.write(`Added user ${record.name}, who may send as ${record.domains.join(', ')} (in ${ctx.config.usersFile}).\n`);
  return 0;
}

function list(args: string[], ctx: CliContext): number {
  const { values, positionals } = parse(() => parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } }));
  if (positionals.length) throw new UsageError(`users list takes no arguments\n${USERS_USAGE}`);
  const users = readUsers(ctx.config.usersFile).map((u) => ({ name: u.name, domains: u.domains, created: u.created }));
  if (values.json) {
    ctx.stdout.write(`${JSON.stringify(users, null, 2)}\n`);
    return 0;
  }
  if (users.length === 0) {
    ctx.stderr.write(`No users in ${ctx.config.usersFile}: add one with \`dkim-relay users add NAME --domain DOMAIN\`.\n`);
    return 0;
  }
  const rows = [['NAME', 'DOMAINS', 'CREATED'], ...users.map((u) => [u.name, u.domains.join(','), u.created])];
  const widths = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) ctx.stdout.write(`${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}\n`);
  return 0;
}

function remove(args: string[], ctx: CliContext): number {
  const { positionals } = parse(() => parseArgs({ args, allowPositionals: true, options: {} }));
  if (positionals.length !== 1) throw new UsageError(`users remove takes one user NAME\n${USERS_USAGE}`);
  removeUser(ctx.config.usersFile, positionals[0]);
  ctx.stderr.write(`Removed user ${positionals[0]}; a running relay refuses its logins within a second.\n`);
  return 0;
}

/** The first line of `stdin`, without its line ending. */
async function readPasswordLine(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
    chunks.push(buf);
    if (buf.includes(0x0a)) break;
  }
  const line = Buffer.concat(chunks).toString('utf8').split('\n')[0].replace(/\r$/, '');
  if (!line) {
    throw new CliError(
      'no password on stdin: pipe it in, for example `printf \'%s\\n\' "$PASSWORD" | dkim-relay users add NAME --domain DOMAIN --password-stdin`, or leave out --password-stdin to have one generated',
    );
  }
  return line;
}
