// The dkim-relay command: parses the global options, loads the configuration and hands
// over to one command. A user error prints one message (what is wrong, how to fix it) and
// no stack trace.
import { parseArgs } from 'node:util';
import { CliContext, CliError, Command, UsageError } from './cli-context';
import { doctorCommand } from './cli/doctor-command';
import { keygenCommand } from './cli/keygen-command';
import { keysCommand } from './cli/keys-command';
import { queueCommand } from './cli/queue-command';
import { serveCommand } from './cli/serve-command';
import { usersCommand } from './cli/users-command';
import { ConfigError, loadConfig } from './config/load';

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  serve: { run: serveCommand, summary: 'run the relay (submission, signing, spool, delivery)' },
  keygen: { run: keygenCommand, summary: 'make a DKIM key for a domain and print its DNS record' },
  keys: { run: keysCommand, summary: 'list DKIM keys, activate one once its record is in DNS, retire one' },
  users: { run: usersCommand, summary: 'add, list or remove users allowed to AUTH' },
  queue: { run: queueCommand, summary: 'list, show, retry or delete queued messages (works while the relay runs)' },
  doctor: { run: doctorCommand, summary: 'check PTR, HELO, blocklists, SPF, DKIM and DMARC in DNS and print the fixes' },
};

export const USAGE = [
  'usage: dkim-relay [--config FILE] COMMAND [ARGS]',
  '',
  'commands:',
  ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`),
  '',
  'Settings come from config/default.json, then --config FILE, then RELAY_* environment variables (see README).',
].join('\n');

export async function main(argv: string[], io: Partial<Pick<CliContext, 'stdout' | 'stderr' | 'stdin'>> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  try {
    // Global options come before the command; everything after it belongs to the command.
    const { values, positionals } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: false,
    });
    const commandIndex = argv.findIndex((a) => a === positionals[0]);
    const name = positionals[0];
    if (values.help || !name) {
      (values.help ? stdout : stderr).write(USAGE + '\n');
      return values.help ? 0 : 2;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command "${name}"\n${USAGE}`);
    const config = loadConfig({ configFile: typeof values.config === 'string' ? values.config : undefined });
    return await command.run(argv.slice(commandIndex + 1), { config, stdout, stderr, stdin });
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

/** Errors of the modules that are written for the user to read (named *Error by them). */
function isUserFacing(err: unknown): boolean {
  return err instanceof Error && ['UsersError', 'KeygenError', 'KeyLifecycleError', 'TlsCertificateError', 'SpoolError', 'IdentityError'].includes(err.constructor.name);
}
