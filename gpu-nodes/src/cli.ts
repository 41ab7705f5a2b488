/**
 * `k2node <command> …`: a thin dispatcher, one file per subcommand under cli/. Each subcommand module
 * exports `run(args: string[]): Promise<void>` and its own usage line.
 */
export {}; // a module, so top-level await works

const commands: Record<string, { usage: string; load: () => Promise<{ run(args: string[]): Promise<void> }> }> = {
  serve: {
    usage: 'serve DIR [--port 8788] [--host 127.0.0.1] [--backend auto|webgpu|wasm|reference] [--threads N] [--max-batch 32] [--max-tokens-per-step 256] [--kv-blocks N] [--block-size 16] [--max-queue 256] [--model-id ID] [--node-id ID] [--secret-file F] [--previous-secret-file F] [--api-key-file F] [--insecure-no-auth] [--drain-timeout 30]',
    load: () => import('./cli/serve.ts'),
  },
  inspect: {
    usage: 'inspect DIR [--json] [--kv-tokens N]',
    load: () => import('./cli/inspect.ts'),
  },
  generate: {
    usage: 'generate DIR (--prompt TEXT [--chat] | --tokens 1,2,3) [--max-tokens 64] [--temperature 0] [--top-p 1] [--seed S] [--ids] [--ignore-eos] [--backend auto|wasm|webgpu|reference] [--threads N]',
    load: () => import('./cli/generate.ts'),
  },
  logits: {
    usage: 'logits DIR (--tokens 1,2,3 | --prompt TEXT [--chat]) [--out FILE.npy|FILE.json] [--backend auto|wasm|webgpu|reference] [--threads N]',
    load: () => import('./cli/logits.ts'),
  },
};

function usage(): string {
  return ['usage: k2node <command> …', ...Object.values(commands).map((c) => `  k2node ${c.usage}`)].join('\n');
}

const [name, ...args] = process.argv.slice(2);
const command = name === undefined ? undefined : commands[name];
if (!command) {
  console.error(name === undefined || name === '--help' ? usage() : `unknown command "${name}"\n${usage()}`);
  process.exit(name === '--help' ? 0 : 2);
}
try {
  await (await command.load()).run(args);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
