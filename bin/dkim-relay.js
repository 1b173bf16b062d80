#!/usr/bin/env node
'use strict';
// Entry point of the `dkim-relay` command: checks the Node.js version, then hands over to the
// compiled CLI. dkim-relay needs Node.js >= 22.19 (mailauth 7); `npm ci` installs Node.js 24
// as the `node` devDependency. Started by an older Node.js (the system's, through `npx` or
// `node bin/dkim-relay.js`), this launcher runs the command on that Node.js 24 instead, so
// the commands work and npm has no engine to warn about (package.json engines: the launcher's).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  const path = require('node:path');
  const projectNode = path.join(__dirname, '..', 'node_modules', 'node', 'bin', 'node');
  if (require('node:fs').existsSync(projectNode)) {
    runOn(projectNode);
    return;
  }
  process.stderr.write(
    `dkim-relay needs Node.js >= 22.19, this is ${process.version}.\n` +
      'Run `npm ci` in the project folder (it installs Node.js 24 for dkim-relay), or install Node.js 22.19 or newer.\n'
  );
  process.exit(2);
}
// `serve` runs for days. Left alone, V8 grows its young generation to 64 MB under load, half
// of the relay's memory, and glibc gives each thread of the pool its own malloc arena: capped
// here (measured in bench/RESULTS.md: no loss of speed). Node reads these settings only at
// process start, so the process replaces itself once with them (execve: same pid, so
// systemd, Docker and the spool lock see one process). Settings the user gives win.
const command = commandOf(process.argv.slice(2));
const userSetSemiSpace = [...process.execArgv, process.env.NODE_OPTIONS || ''].some((a) => a.includes('--max-semi-space-size'));
if (command === 'serve' && !userSetSemiSpace && typeof process.execve === 'function') {
  try {
    process.execve(process.execPath, [process.execPath, '--max-semi-space-size=4', ...process.execArgv, ...process.argv.slice(1)],
      { MALLOC_ARENA_MAX: '2', ...process.env });
  } catch (err) {
    // only reached when the exec itself failed: the relay runs as it is, with Node's defaults
    process.stderr.write(`dkim-relay: running with Node's default memory settings (re-executing failed: ${err && err.message})\n`);
  }
}
let cli;
try {
  cli = require('../dist/cli.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND') {
    process.stderr.write('dkim-relay is not built yet: run `npm ci` (or `npm run build`) in the project folder.\n');
    process.exit(2);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then(code => { process.exitCode = code; });

/** The command name: the first argument that is neither an option nor the value of --config. */
function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-c' || args[i] === '--config') i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}

/**
 * Runs this command on `node` and exits as it does. SIGTERM and SIGHUP are passed on (a
 * service manager sends them to this process only); SIGINT from a terminal reaches both
 * processes already, so it is not passed on again (serve would take it as a second signal).
 */
function runOn(node) {
  const child = require('node:child_process').spawn(node, [...process.execArgv, __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  process.on('SIGINT', () => undefined);
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code === null ? 1 : code);
    }
  });
}
