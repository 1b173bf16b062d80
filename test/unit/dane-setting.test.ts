// delivery.dane (RELAY_DANE): off by default, on/off (true/false, yes/no, 1/0) in the
// environment, anything else refused with the setting named.
import { loadConfig } from '../../src/config/load';

test('delivery.dane is off unless turned on', () => {
  expect(loadConfig({ env: {} }).delivery.dane).toBe(false);
  for (const on of ['on', 'ON', 'true', 'yes', '1']) expect(loadConfig({ env: { RELAY_DANE: on } }).delivery.dane).toBe(true);
  for (const off of ['off', 'false', 'no', '0']) expect(loadConfig({ env: { RELAY_DANE: off } }).delivery.dane).toBe(false);
});

test('RELAY_DANE=maybe is refused, naming the setting and what it takes', () => {
  expect(() => loadConfig({ env: { RELAY_DANE: 'maybe' } })).toThrow(/delivery\.dane[\s\S]*must be on or off, not "maybe"/);
});
