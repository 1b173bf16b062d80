// The dual-stack scenario with distinct addresses of both families: dual-stack.test.ts run
// again inside a private network namespace (unshare -n, needs root), whose loopback gets
// documentation addresses. Relay source 192.0.2.25 and 2001:db8::25, sinks on 192.0.2.3 and
// 2001:db8::3, nothing on 192.0.2.4; DNS and submission on the namespace's 127.0.0.1. Shows an
// A-only MX reached from the IPv4 address, an AAAA-only MX from the IPv6 address, a dual MX
// per the preference, the fallback to IPv6 when IPv4 refuses, the HELO each time the PTR
// name of the source used. No address outside the namespace is touched.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

test('inside a private network namespace with 192.0.2.0/24 and 2001:db8::/32 on lo', () => {
  const setup = [
    'ip link set lo up',
    'ip addr add 192.0.2.25/24 dev lo', 'ip addr add 192.0.2.3/24 dev lo',
    'ip addr add 2001:db8::25/64 dev lo nodad', 'ip addr add 2001:db8::3/64 dev lo nodad',
    'exec npx jest --ci test/e2e/dual-stack.test.ts',
  ].join(' && ');
  const run = spawnSync('unshare', ['-n', 'sh', '-c', setup], {
    cwd: path.join(__dirname, '..', '..'),
    env: {
      ...process.env,
      DUALSTACK_V4: '192.0.2.25', DUALSTACK_V6: '2001:db8::25',
      DUALSTACK_SINK4: '192.0.2.3', DUALSTACK_SINK6: '2001:db8::3', DUALSTACK_DOWN4: '192.0.2.4',
    },
    encoding: 'utf8',
    timeout: 240_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  if (run.status !== 0) throw new Error(`the scenario in the namespace failed (exit ${run.status}, ${run.error?.message ?? ''}):\n${output}`);
  expect(output).toMatch(/Tests:\s+(\d+) passed, \1 total/);
}, 250_000);
