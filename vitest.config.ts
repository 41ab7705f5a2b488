import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers';
import { fileURLToPath } from 'node:url';
import { defineConfig, defineProject } from 'vitest/config';
import { WORKERS_TEST_NODE_API_KEY, WORKERS_TEST_NODE_SECRET } from './test/support/test-node.ts';

const migrationsDir = fileURLToPath(new URL('./migrations', import.meta.url));

// Two projects: worker code runs inside workerd (real D1 with our migrations applied);
// everything else (GPU node, shared, cross-process flows in test/) runs in Node.
export default defineConfig({
  test: {
    projects: [
      defineProject({
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations(migrationsDir),
                ADMIN_TOKEN: 'test-admin-token',
                // The shared test node (workers/test/global-setup.ts) holds the same two values.
                NODE_SECRET: WORKERS_TEST_NODE_SECRET,
                NODE_API_KEY: WORKERS_TEST_NODE_API_KEY,
              },
            },
          })),
        ],
        test: {
          name: 'workers',
          include: ['workers/**/*.test.ts'],
          setupFiles: ['./workers/test/apply-migrations.ts'],
          // Starts the GPU node (real when present) in Node; tests get its URL with inject('nodeUrl').
          globalSetup: ['./workers/test/global-setup.ts'],
          // Route tests generate on the shared test node; on a busy 2-core machine a few generations
          // in one test can pass vitest's 5 s default without anything being wrong.
          testTimeout: 30_000,
        },
      }),
      defineProject({
        test: {
          name: 'node',
          include: ['gpu-nodes/**/*.test.ts', 'shared/**/*.test.ts', 'test/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      }),
    ],
  },
});
