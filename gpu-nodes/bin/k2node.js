#!/usr/bin/env node
// Runs gpu-nodes/src/cli.ts in this same process: Node ≥ 22.18 strips TypeScript types itself, so no
// build step, and signals (Ctrl-C, SIGTERM from a supervisor) reach the server directly.
// An older Node cannot load a .ts file at all; say so in one line instead of ERR_UNKNOWN_FILE_EXTENSION.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`k2node needs Node >= 22.18 (this is ${process.versions.node}); run \`npx k2node\`, which uses the project's Node from node_modules.`);
  process.exit(1);
}
await import('../src/cli.ts');
