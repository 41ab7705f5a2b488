/**
 * The whole admin API, mounted at /admin in one place (behind adminAuth): each resource's routes
 * live in their own file, and this is the only list of them.
 *   admin.ts        organizations, keys, credit, prices, nodes, usage lookup, reconciliation
 *   statements.ts   /organizations/:id/statements/:month
 *   limits.ts       /organizations/:id/limits, /keys/:id/limits, /organizations/:id/account
 *   backends.ts     /models/:model/backends
 *   spend-controls.ts  /keys/:id/budget, /keys/:id/allowed-models, /organizations/:id/alerts
 */
import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';
import { admin } from './admin.ts';
import { backends } from './backends.ts';
import { limits } from './limits.ts';
import { spendControls } from './spend-controls.ts';
import { statements } from './statements.ts';

export const adminApi = new Hono<AppEnv>().route('/', admin).route('/organizations', statements).route('/', limits).route('/', spendControls).route('/models', backends);
