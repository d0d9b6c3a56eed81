import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'var/**', '.venv/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // The integration suites each start their own Envoy and SoftHSM2 tokens; two cores
    // run them one file at a time.
    fileParallelism: false,
    // Finds or starts the PostgreSQL server that the store tests use.
    globalSetup: ['test/global-setup.ts'],
  },
})
