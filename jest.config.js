// ts-jest type-checks every test file and what it imports (no isolatedModules), so a type
// error fails the suite instead of being transpiled away.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
  // e2e tests bind fixed loopback addresses; two workers keep CI within 2 cores
  maxWorkers: 2,
};
