import { describe, expect, it } from 'vitest';
import { tenantIds } from './tenant-ids.ts';

describe('tenantIds', () => {
  it('is stable per org and secret, distinct across orgs, purposes and secrets, and never contains the org id', async () => {
    const a = await tenantIds('pool-secret', 'org_acme');
    expect(await tenantIds('pool-secret', 'org_acme')).toEqual(a);
    const b = await tenantIds('pool-secret', 'org_acmf');
    const rotated = await tenantIds('other-secret', 'org_acme');
    const all = [a.tenant, a.cacheSalt, b.tenant, b.cacheSalt, rotated.tenant, rotated.cacheSalt];
    expect(new Set(all).size).toBe(6);
    for (const id of all) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(id).not.toContain('acme');
    }
  });
});
