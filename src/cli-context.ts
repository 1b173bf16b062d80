// What every CLI command receives, and the two errors it may throw. Commands never print a
// stack trace: cli.ts prints the message of these errors and exits with their code.
import { SettingOrigin } from './config/load';
import { RelayConfig } from './config/schema';

export interface CliContext {
  config: RelayConfig;
  /** Where each setting came from (`config show`); absent when a test builds the config. */
  origins?: Record<string, SettingOrigin>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

export type Command = (args: string[], ctx: CliContext) => Promise<number>;

/** Wrong arguments: exit code 2, with the usage line in the message. */
export class UsageError extends Error {}

/** The command could not do what was asked: exit code 1. Say what is wrong and how to fix it. */
export class CliError extends Error {}
