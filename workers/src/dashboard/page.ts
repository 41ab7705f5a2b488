/**
 * The dashboard's one HTML document. Static: every number is filled in by assets/app.js from the
 * JSON API, so the page can be cached and never carries one tenant's data to another.
 * Landmarks (header, nav, main, sections with headings) and labelled controls for screen readers;
 * the layout is one column on a phone and a grid from 720px up (assets/app.css).
 */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Usage · Edge Inference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/assets/uplot.css">
<link rel="stylesheet" href="/dashboard/assets/app.css">
<script src="/dashboard/assets/uplot.js" defer></script>
<script src="/dashboard/assets/latency-charts.js" defer></script>
<script src="/dashboard/assets/app.js" type="module"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <h1>Edge Inference <span>usage</span></h1>
  <div class="who" id="who" hidden>
    <span id="who-label"></span>
    <button type="button" id="sign-out" class="secondary">Sign out</button>
  </div>
</header>

<main id="main">
<section id="sign-in" aria-labelledby="sign-in-title" class="card narrow">
  <h2 id="sign-in-title">Sign in</h2>
  <p>Paste an API key (you see its organization) or the admin token (every organization). The key is sent once to start a session of one hour; it is not stored in this browser.</p>
  <form id="sign-in-form">
    <label for="token">API key or admin token</label>
    <input id="token" name="token" type="password" autocomplete="off" required spellcheck="false">
    <button type="submit">Sign in</button>
    <p class="error" id="sign-in-error" role="alert"></p>
  </form>
</section>

<div id="app" hidden>
<form id="filters" class="filters" aria-label="What to show">
  <div class="field" id="org-field" hidden>
    <label for="org">Organization</label>
    <select id="org" name="org"><option value="">All organizations</option></select>
  </div>
  <div class="field">
    <label for="range">Period</label>
    <select id="range" name="range">
      <option value="1">Last 24 hours</option>
      <option value="7">Last 7 days</option>
      <option value="30" selected>Last 30 days</option>
      <option value="90">Last 90 days</option>
    </select>
  </div>
  <button type="button" id="refresh" class="secondary">Refresh</button>
  <p class="status" id="status" role="status" aria-live="polite"></p>
</form>

<section aria-labelledby="totals-title">
  <h2 id="totals-title">Totals for the period</h2>
  <dl class="stats" id="totals">
    <div><dt>Spend</dt><dd id="stat-spend">–</dd></div>
    <div><dt>Requests</dt><dd id="stat-requests">–</dd></div>
    <div><dt>Input tokens (uncached)</dt><dd id="stat-uncached">–</dd></div>
    <div><dt>Cached input tokens</dt><dd id="stat-cached">–</dd></div>
    <div><dt>Output tokens</dt><dd id="stat-output">–</dd></div>
    <div><dt>Cache hit rate</dt><dd id="stat-hit-rate">–</dd></div>
    <div><dt>Saved by caching</dt><dd id="stat-saved">–</dd></div>
  </dl>
</section>

<section aria-labelledby="account-title" id="account">
  <h2 id="account-title">Credit and rate limits</h2>
  <p id="account-note" class="note" hidden>Choose an organization to see its balance and limits.</p>
  <div id="account-body">
    <dl class="stats">
      <div><dt>Balance</dt><dd id="stat-balance">–</dd></div>
      <div><dt>Reserved by requests in flight</dt><dd id="stat-reserved">–</dd></div>
      <div><dt>Available</dt><dd id="stat-available">–</dd></div>
      <div><dt>Open reservations</dt><dd id="stat-reservations">–</dd></div>
    </dl>
    <div class="limits" id="limits"></div>
  </div>
</section>

<section aria-labelledby="charts-title">
  <h2 id="charts-title">Over time</h2>
  <div class="charts">
    <figure class="card chart">
      <figcaption id="spend-chart-title">Spend (USD)</figcaption>
      <div id="spend-chart" role="img" aria-labelledby="spend-chart-title" aria-describedby="spend-chart-desc"></div>
      <p class="sr-only" id="spend-chart-desc"></p>
    </figure>
    <figure class="card chart">
      <figcaption id="tokens-chart-title">Tokens: uncached input, cached input, output</figcaption>
      <div id="tokens-chart" role="img" aria-labelledby="tokens-chart-title" aria-describedby="tokens-chart-desc"></div>
      <p class="sr-only" id="tokens-chart-desc"></p>
    </figure>
  </div>
</section>

<section aria-labelledby="latency-title">
  <h2 id="latency-title">Latency and errors</h2>
  <div class="charts">
    <figure class="card chart">
      <figcaption id="ttft-chart-title">Time to first token, p50 and p95 (ms), per model · backend</figcaption>
      <div id="ttft-chart" role="img" aria-labelledby="ttft-chart-title" aria-describedby="ttft-chart-desc"></div>
      <p class="sr-only" id="ttft-chart-desc"></p>
    </figure>
    <figure class="card chart">
      <figcaption id="errors-chart-title">Error rate (% of requests failed), per model · backend</figcaption>
      <div id="errors-chart" role="img" aria-labelledby="errors-chart-title" aria-describedby="errors-chart-desc"></div>
      <p class="sr-only" id="errors-chart-desc"></p>
    </figure>
  </div>
</section>

<section aria-labelledby="breakdown-title">
  <h2 id="breakdown-title">Breakdown</h2>
  <div class="tables">
    <div class="card table-wrap"><table id="by-model"><caption>By model</caption></table></div>
    <div class="card table-wrap"><table id="by-key"><caption>By key</caption></table></div>
    <div class="card table-wrap" id="by-org-wrap" hidden><table id="by-org"><caption>By organization</caption></table></div>
  </div>
</section>

<section aria-labelledby="requests-title">
  <h2 id="requests-title">Recent requests</h2>
  <div class="card table-wrap"><table id="requests"><caption class="sr-only">Recent requests, newest first</caption></table></div>
  <nav class="pager" aria-label="Recent requests pages">
    <button type="button" id="newer" class="secondary" disabled>Newer</button>
    <span id="page-label">Page 1</span>
    <button type="button" id="older" class="secondary" disabled>Older</button>
  </nav>
</section>

<section aria-labelledby="keys-title" id="keys">
  <h2 id="keys-title">API keys</h2>
  <div class="card table-wrap"><table id="keys-table"><caption class="sr-only">Keys of the organization</caption></table></div>
  <form id="new-key" class="card new-key" aria-labelledby="new-key-title">
    <h3 id="new-key-title">Create a key</h3>
    <label for="new-key-name">Name</label>
    <input id="new-key-name" name="name" maxlength="200" autocomplete="off">
    <fieldset>
      <legend>Scopes</legend>
      <label><input type="checkbox" name="scopes" value="models:read" checked> models:read</label>
      <label><input type="checkbox" name="scopes" value="chat" checked> chat</label>
      <label><input type="checkbox" name="scopes" value="completions" checked> completions</label>
      <label><input type="checkbox" name="scopes" value="keys:write"> keys:write</label>
      <label><input type="checkbox" name="scopes" value="billing"> billing</label>
    </fieldset>
    <button type="submit">Create key</button>
    <p class="error" id="new-key-error" role="alert"></p>
  </form>
  <form id="key-controls" class="card new-key" hidden aria-labelledby="key-controls-title">
    <h3 id="key-controls-title">Budget and models of <span id="key-controls-name"></span></h3>
    <p class="note">Requests that could take the key past its budget are refused (402) until the period resets. A key cannot change its own limits.</p>
    <label for="budget-usd">Budget in USD (empty: no budget)</label>
    <input id="budget-usd" inputmode="decimal" autocomplete="off" placeholder="e.g. 25.00">
    <label for="budget-period">Period</label>
    <select id="budget-period">
      <option value="daily">Daily</option>
      <option value="weekly">Weekly (from Monday)</option>
      <option value="monthly" selected>Monthly</option>
      <option value="total">Total (never resets)</option>
    </select>
    <label for="budget-tz">Time zone the period resets in</label>
    <input id="budget-tz" autocomplete="off" value="UTC" spellcheck="false">
    <label for="allowed-models">Allowed models, comma-separated (empty: every model)</label>
    <input id="allowed-models" autocomplete="off" spellcheck="false">
    <div class="actions">
      <button type="submit">Save limits</button>
      <button type="button" id="key-controls-cancel" class="secondary">Cancel</button>
    </div>
    <p class="error" id="key-controls-error" role="alert"></p>
  </form>
  <div id="created-key" class="card created" hidden tabindex="-1" aria-labelledby="created-key-title">
    <h3 id="created-key-title">New key: copy it now</h3>
    <p>This is the only time the key is shown. Store it somewhere safe.</p>
    <code id="created-key-value"></code>
    <button type="button" id="copy-key" class="secondary">Copy</button>
  </div>
</section>

<section aria-labelledby="billing-title" id="billing">
  <h2 id="billing-title">Top-ups and receipts</h2>
  <p id="billing-note" class="note" hidden>Choose an organization to see its top-ups.</p>
  <div id="billing-body">
    <p class="status" id="top-up-result" role="status" aria-live="polite"></p>
    <form id="top-up" class="card new-key" aria-labelledby="top-up-title" hidden>
      <h3 id="top-up-title">Top up</h3>
      <label for="top-up-amount">Amount (USD)</label>
      <input id="top-up-amount" name="amount" type="number" inputmode="decimal" step="0.01" min="5" max="10000" value="25" required>
      <button type="submit">Pay with Stripe</button>
      <p class="error" id="top-up-error" role="alert"></p>
    </form>
    <p id="top-up-off" class="note" hidden>Paid top-ups are not enabled on this deployment.</p>
    <div class="card table-wrap"><table id="receipts-table"><caption class="sr-only">Top-ups of the organization, newest first</caption></table></div>
  </div>
</section>

<section aria-labelledby="alerts-title" id="alerts">
  <h2 id="alerts-title">Alerts</h2>
  <p id="alerts-note" class="note" hidden>Choose an organization to see its alerts.</p>
  <div id="alerts-body">
    <form id="alert-settings" class="card new-key" aria-labelledby="alert-settings-title">
      <h3 id="alert-settings-title">Webhook alerts</h3>
      <p class="note">One signed POST per crossing (Standard Webhooks: <code>webhook-id</code>, <code>webhook-timestamp</code>, <code>webhook-signature</code>), retried until answered 2xx.</p>
      <label for="alert-url">Webhook URL</label>
      <input id="alert-url" type="url" autocomplete="off" required placeholder="https://example.com/hooks/edge">
      <label for="alert-balance">Alert when the balance falls below (USD, empty: off)</label>
      <input id="alert-balance" inputmode="decimal" autocomplete="off">
      <label for="alert-key-percent">Alert when a key has spent this % of its budget (empty: off)</label>
      <input id="alert-key-percent" type="number" min="1" max="100" step="1">
      <p>Signing secret: <code id="alert-secret">–</code></p>
      <button type="submit">Save alerts</button>
      <p class="error" id="alert-error" role="alert"></p>
    </form>
    <div class="card table-wrap"><table id="alerts-table"><caption>Recent alerts</caption></table></div>
  </div>
</section>

<section aria-labelledby="downloads-title">
  <h2 id="downloads-title">Downloads</h2>
  <div class="card downloads">
    <a id="usage-csv" class="button" href="#" download>Usage CSV for the period</a>
    <form id="statement-form" class="statement">
      <label for="statement-month">Statement month</label>
      <input id="statement-month" type="month" required>
      <a id="statement-csv" class="button secondary" href="#" download>Statement CSV</a>
      <a id="statement-page" class="button secondary" href="#" target="_blank" rel="noopener">Statement (printable)</a>
    </form>
  </div>
</section>
</div>
</main>
<footer class="foot"><p>Amounts in USD, exact to the micro-dollar. Times in your local time zone. The same data as JSON: <code>/dashboard/api/*</code> with <code>Authorization: Bearer sk-…</code>.</p></footer>
</body>
</html>
`;
