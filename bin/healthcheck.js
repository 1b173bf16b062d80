#!/usr/bin/env node
'use strict';
// The container's health check (Dockerfile HEALTHCHECK): exit 0 when the relay is ready, 1
// when not, with one line saying why. With RELAY_HTTP_LISTEN set it asks /readyz (spool
// writable, submission listening, identity known), sending RELAY_HTTP_TOKEN when there is
// one; without it, the submission port must greet with 220. Plain Node.js, no dependencies:
// it runs every 30 s and must start fast.
const net = require('node:net');
const http = require('node:http');

const fail = (why) => {
  process.stdout.write(`not healthy: ${why}\n`);
  process.exit(1);
};
setTimeout(() => fail('no answer within 4 s'), 4000).unref();

const listen = (process.env.RELAY_HTTP_LISTEN || '').trim();
if (listen) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  if (!m) fail(`RELAY_HTTP_LISTEN is "${listen}", not host:port`);
  let host = m[1] || m[2];
  // a listener on all addresses is asked on loopback
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const token = process.env.RELAY_HTTP_TOKEN || '';
  const req = http.get({ host, port: Number(m[3]), path: '/readyz', headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => (body += chunk));
    res.on('end', () => {
      if (res.statusCode === 200) process.exit(0);
      fail(`/readyz answered ${res.statusCode} ${body.slice(0, 500)}`);
    });
  });
  req.on('error', (err) => fail(`/readyz on ${listen}: ${err.message}`));
} else {
  const port = Number(process.env.RELAY_SUBMISSION_PORT || 2587);
  let host = process.env.RELAY_SUBMISSION_HOST || '127.0.0.1';
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const socket = net.connect(port, host);
  socket.once('data', (d) => (/^220 /.test(d.toString()) ? process.exit(0) : fail(`the submission port greeted with ${d.toString().trim().slice(0, 200)}`)));
  socket.on('error', (err) => fail(`submission port ${host}:${port}: ${err.message}`));
}
