/**
 * What production needs from wrangler.toml and the bundle (scripts/deploy-checks.ts), read the way
 * wrangler reads it, and the offline half of `npm run deploy`: a real `wrangler deploy --dry-run`
 * whose bundle must fit the Workers size limit.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unstable_readConfig } from 'wrangler';
import { configProblems, durableObjectMigrationProblems, PLACEHOLDER_D1_ID, productionProblems, REQUIRED_SECRETS } from '../scripts/deploy-checks.ts';
import { REPO_ROOT } from '../scripts/local-node.ts';

const config = () => unstable_readConfig({ config: join(REPO_ROOT, 'wrangler.toml') });

describe('wrangler.toml for production', () => {
  it('declares every secret the worker reads, migrates every Durable Object class in order, binds Analytics Engine', () => {
    const c = config();
    expect(configProblems(c)).toEqual([]);
    expect(c.secrets?.required).toEqual(expect.arrayContaining([...REQUIRED_SECRETS]));
  });

  it('refuses to deploy with the placeholder D1 id, and only for that', () => {
    const c = config();
    expect(c.d1_databases[0].database_id).toBe(PLACEHOLDER_D1_ID);
    expect(productionProblems(c)).toEqual([expect.stringContaining('placeholder id')]);
    c.d1_databases[0].database_id = '3f1c9a52-6d0e-4c1b-9f2a-7e8d5b4a3c21';
    expect(productionProblems(c)).toEqual([]);
  });

  it('catches Durable Object migrations out of order, duplicated or missing', () => {
    const c = config();
    const all = c.migrations;
    const [first] = all;
    expect(durableObjectMigrationProblems({ ...c, migrations: [first] })).toEqual([
      expect.stringContaining('PrefixRouter, which no migration creates'),
      expect.stringContaining('ResponseCache, which no migration creates'),
    ]);
    expect(durableObjectMigrationProblems({ ...c, migrations: [...all.slice(0, -1), { ...all.at(-1)!, tag: first.tag }] })).toEqual([expect.stringContaining('used twice')]);
    expect(durableObjectMigrationProblems({ ...c, migrations: [...all, { tag: 'again', new_sqlite_classes: ['OrgAccount'] }] })).toEqual([
      expect.stringContaining('already created'),
    ]);
    expect(durableObjectMigrationProblems({ ...c, migrations: [...all, { tag: 'drop', deleted_classes: ['OrgAccount'] }] })).toEqual([
      expect.stringContaining('ORG_ACCOUNT uses OrgAccount, which no migration creates'),
    ]);
  });

  it('catches a secret declared as a plain var, or one not declared', () => {
    const c = config();
    expect(configProblems({ ...c, vars: { ...c.vars, NODE_SECRET: 'x' }, secrets: { required: ['ADMIN_TOKEN'] } })).toEqual([
      '[secrets].required lacks NODE_SECRET',
      expect.stringContaining('[vars].NODE_SECRET looks like a secret'),
    ]);
  });
});

describe('npm run deploy -- --dry-run', () => {
  it('bundles the worker offline and keeps it inside the size budget', () => {
    const run = spawnSync(process.execPath, ['scripts/deploy.ts', '--dry-run'], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CI: '1' } });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    const kib = Number(/bundle: (\d+) KiB gzipped/.exec(run.stdout)?.[1]);
    expect(kib).toBeGreaterThan(50); // the bundle really holds the worker
    expect(run.stdout).toContain('dry run OK');
  });
});
