/**
 * What a production deploy needs from wrangler.toml and from the built bundle, as pure checks over
 * wrangler's own reading of the config (`unstable_readConfig`), so `npm run deploy` and the tests
 * agree on the rules:
 *
 *   - every secret the code reads is declared in [secrets].required (wrangler then refuses to deploy without it)
 *   - no placeholder resource id is left (the all-zero D1 id is for local runs only)
 *   - Durable Object migrations: tags unique, each class created once, before or with its binding's
 *     first use, and never deleted while bound
 *   - the bundle, gzipped, fits the Workers size limit
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Unstable_Config } from 'wrangler';

/** Secrets the worker reads from its env; `npm run deploy` checks each exists on the account. */
export const REQUIRED_SECRETS = ['ADMIN_TOKEN', 'NODE_SECRET'] as const;

/** Workers script size limit after compression, paid plan (the free plan's is 3 MB): developers.cloudflare.com/workers/platform/limits/ */
export const WORKER_GZIP_LIMIT_BYTES = 10 * 1024 * 1024;
/** We keep well under the free plan's 3 MB too, so the edge deploys on any account. */
export const WORKER_GZIP_BUDGET_BYTES = 3 * 1024 * 1024;

/** The all-zero id wrangler.toml carries until `npm run deploy` creates the database and writes its id. */
export const PLACEHOLDER_D1_ID = '00000000-0000-0000-0000-000000000000';

/** Problems that stop a deploy in any mode (dry run included). */
export function configProblems(config: Unstable_Config): string[] {
  const problems: string[] = [];
  const required = config.secrets?.required ?? [];
  for (const name of REQUIRED_SECRETS) if (!required.includes(name)) problems.push(`[secrets].required lacks ${name}`);
  for (const name of Object.keys(config.vars ?? {})) {
    if (/TOKEN|SECRET|PASSWORD|API_KEY/i.test(name)) problems.push(`[vars].${name} looks like a secret; declare it in [secrets] and use \`wrangler secret put\``);
  }
  problems.push(...durableObjectMigrationProblems(config));
  if (!config.analytics_engine_datasets?.some((d) => d.binding === 'REQUEST_METRICS')) problems.push('no REQUEST_METRICS analytics_engine_datasets binding');
  return problems;
}

/** Problems that stop a real deploy (not a dry run): resources that must exist on the account. */
export function productionProblems(config: Unstable_Config): string[] {
  const problems = configProblems(config);
  for (const db of config.d1_databases) {
    if (!db.database_id || db.database_id === PLACEHOLDER_D1_ID) problems.push(`D1 binding ${db.binding} still has the placeholder id; \`npm run deploy\` creates the database and writes its id`);
  }
  return problems;
}

export function durableObjectMigrationProblems(config: Unstable_Config): string[] {
  const problems: string[] = [];
  const tags = new Set<string>();
  const live = new Set<string>();
  for (const m of config.migrations) {
    if (tags.has(m.tag)) problems.push(`migration tag ${m.tag} is used twice`);
    tags.add(m.tag);
    for (const cls of [...(m.new_classes ?? []), ...(m.new_sqlite_classes ?? [])]) {
      if (live.has(cls)) problems.push(`migration ${m.tag} creates ${cls}, which an earlier migration already created`);
      live.add(cls);
    }
    for (const r of m.renamed_classes ?? []) {
      if (!live.delete(r.from)) problems.push(`migration ${m.tag} renames ${r.from}, which no earlier migration created`);
      live.add(r.to);
    }
    for (const cls of m.deleted_classes ?? []) {
      if (!live.delete(cls)) problems.push(`migration ${m.tag} deletes ${cls}, which no earlier migration created`);
    }
  }
  for (const b of config.durable_objects.bindings) {
    // A class in another worker (script_name) is migrated there, not here.
    if (!b.script_name && !live.has(b.class_name)) problems.push(`Durable Object binding ${b.name} uses ${b.class_name}, which no migration creates`);
  }
  return problems;
}

/** Gzipped size of what `wrangler deploy --dry-run --outdir DIR` wrote (source maps and the README are not uploaded as code). */
export function bundleGzipBytes(outdir: string): number {
  let total = 0;
  for (const name of readdirSync(outdir)) {
    const path = join(outdir, name);
    if (statSync(path).isDirectory() || name.endsWith('.map') || name === 'README.md') continue;
    total += gzipSync(readFileSync(path)).length;
  }
  return total;
}
