// The dkim-relay command: parses the global options, loads the configuration and hands
// over to one command. A user error prints one message (what is wrong, how to fix it) and
// no stack trace.
import { parseArgs } from 'node:util';
import { CliContext, CliError, Command, UsageError } from './cli-context';
import { COMMAND_HELP } from './cli/command-help';
import { ConfigError, loadConfigWithOrigins } from './config/load';

// Each command's module is loaded only when that command runs: `serve` then does not carry
// doctor's DNS checks, keygen, the queue tool and so on in its memory. The summaries stay
// here so that the usage needs none of them.
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  serve: { load: async () => (await import('./cli/serve-command')).serveCommand, summary: 'run the relay (submission, signing, spool, delivery)' },
  keygen: { load: async () => (await import('./cli/keygen-command')).keygenCommand, summary: 'make a DKIM key for a domain and print its DNS record' },
  keys: { load: async () => (await import('./cli/keys-command')).keysCommand, summary: 'list DKIM keys, activate one once its record is in DNS, retire one' },
  users: { load: async () => (await import('./cli/users-command')).usersCommand, summary: 'add, list or remove users allowed to AUTH' },
  queue: { load: async () => (await import('./cli/queue-command')).queueCommand, summary: 'list, show, retry or delete queued messages (works while the relay runs)' },
  doctor: { load: async () => (await import('./cli/doctor-command')).doctorCommand, summary: 'check PTR, HELO, blocklists, SPF, DKIM and DMARC in DNS and print the fixes' },
  config: { load: async () => (await import('./cli/config-command')).configCommand, summary: 'show the effective configuration, each setting with where it came from' },
};

export const USAGE = [
  'usage: dkim-relay [--config FILE] COMMAND [ARGS]',
  '',
  'commands:',
  ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
  `  ${'help'.padEnd(8)} this list; \`dkim-relay help COMMAND\` (or COMMAND --help): a command's usage and options`,
  '',
  'Settings come from config/default.json, then --config FILE, then RELAY_* environment variables (see README).',
  'Every command reads them, not only serve: give keys, doctor, users and queue the same --config and',
  'RELAY_* variables as the relay (`dkim-relay config show` prints what a command sees).',
].join('\n');

export async function main(argv: string[], io: Partial<Pick<CliContext, 'stdout' | 'stderr' | 'stdin'>> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  try {
    // Global options come before the command; everything after it belongs to the command.
    const commandIndex = commandIndexOf(argv);
    const globalArgs = commandIndex === -1 ? argv : argv.slice(0, commandIndex);
    const { values } = parseArgs({
      args: globalArgs,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: false,
    });
    const name = commandIndex === -1 ? undefined : argv[commandIndex];
    const args = commandIndex === -1 ? [] : argv.slice(commandIndex + 1);
    if (values.help || !name) {
      (values.help ? stdout : stderr).write(USAGE + '\n');
      return values.help ? 0 : 2;
    }
    if (name === 'help') return help(args[0], stdout);
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command "${name}"\n${USAGE}`);
    // Help needs no configuration: it works even while a setting is wrong.
    if (args.includes('--help') || args.includes('-h')) return help(name, stdout);
    const { config, origins } = loadConfigWithOrigins({ configFile: typeof values.config === 'string' ? values.config : undefined });
    const run = await command.load();
    return await run(args, { config, origins, stdout, stderr, stdin });
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`dkim-relay: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CliError || err instanceof ConfigError || isUserFacing(err)) {
      stderr.write(`dkim-relay: ${(err as Error).message}\n`);
      return 1;
    }
    stderr.write(`dkim-relay: unexpected error: ${(err as Error).stack ?? err}\n`);
    return 1;
  }
}

/** Index of the command name: the first argument that is neither an option nor the value of --config. */
function commandIndexOf(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-c' || argv[i] === '--config') i++;
    else if (!argv[i].startsWith('-')) return i;
  }
  return -1;
}

function help(name: string | undefined, stdout: NodeJS.WritableStream): number {
  if (name === undefined) {
    stdout.write(USAGE + '\n');
    return 0;
  }
  const text = COMMAND_HELP[name];
  if (!text) throw new UsageError(`no help for "${name}": it is not a command\n${USAGE}`);
  stdout.write(text + '\n');
  return 0;
}

/** Errors of the modules that are written for the user to read (named *Error by them). */
function isUserFacing(err: unknown): boolean {
  return err instanceof Error && ['UsersError', 'KeygenError', 'KeyLifecycleError', 'TlsCertificateError', 'SpoolError', 'IdentityError', 'StartError'].includes(err.constructor.name);
}
