#!/usr/bin/env node
'use strict';
// Entry point of the `dkim-relay` command: checks the Node.js version, then hands over to the
// compiled CLI. Run it through npm (`npx dkim-relay`, `npm start`) so that the Node.js 24 from
// the `node` devDependency comes first on PATH.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `dkim-relay needs Node.js >= 22.19, this is ${process.version}.\n` +
      'Run it as `npx dkim-relay ...` or `npm start` from the project folder (they use the Node.js ' +
      'installed by `npm ci`), or install Node.js 22.19 or newer.\n'
  );
  process.exit(2);
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
