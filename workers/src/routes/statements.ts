/**
 * Monthly statements, mounted under the admin API:
 *   GET /admin/organizations/:orgId/statements/:month            → JSON (`Statement`)
 *   GET /admin/organizations/:orgId/statements/:month?format=csv → text/csv
 *   GET /admin/organizations/:orgId/statements/:month?format=html → printable page (documents/statement-page.ts)
 * `month` is a UTC calendar month, "YYYY-MM". Amounts are integer micro-dollars.
 */
import { Hono } from 'hono';
import { loadStatement, parseMonth, statementCsv } from '../billing/statement.ts';
import { DOCUMENT_HEADERS } from '../documents/page-shell.ts';
import { receiptHref } from '../documents/receipt.ts';
import { renderStatementPage } from '../documents/statement-page.ts';
import { database, organizationExists } from '../db/queries.ts';
import type { AppEnv } from '../env.ts';
import { InvalidRequestError, NotFoundError } from '../errors.ts';

export const statements = new Hono<AppEnv>().get('/:orgId/statements/:month', async (c) => {
  const { orgId, month } = c.req.param();
  const period = parseMonth(month);
  if (!period) throw new InvalidRequestError(`month must be "YYYY-MM", got "${month}"`, 'month');
  const format = c.req.query('format') ?? 'json';
  if (format !== 'json' && format !== 'csv' && format !== 'html') throw new InvalidRequestError('format must be "json", "csv" or "html"', 'format');
  if (!(await organizationExists(database(c.env.DB), orgId))) throw new NotFoundError(`organization '${orgId}'`);

  const statement = await loadStatement(c.env.DB, orgId, period);
  if (format === 'json') return c.json(statement);
  if (format === 'html') return c.html(await renderStatementPage(c.env.DB, statement, receiptHref(orgId)), 200, DOCUMENT_HEADERS);
  return c.body(statementCsv(statement), 200, {
    'content-type': 'text/csv; charset=utf-8',
    'content-disposition': `attachment; filename="statement-${orgId}-${month}.csv"`,
  });
});
