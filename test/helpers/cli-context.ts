// A CliContext for calling a command function in-process, with what it prints captured.
import { PassThrough } from 'node:stream';
import { CliContext } from '../../src/cli-context';
import { RelayConfig } from '../../src/config/schema';

export function capturedContext(config: RelayConfig, stdinText?: string): { ctx: CliContext; out: { stdout: string; stderr: string } } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  if (stdinText !== undefined) stdin.end(stdinText);
  const out = { stdout: '', stderr: '' };
  stdout.on('data', (c) => (out.stdout += c));
  stderr.on('data', (c) => (out.stderr += c));
  return { ctx: { config, stdout, stderr, stdin }, out };
}
