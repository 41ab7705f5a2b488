// The dashboard's JSON API (/dashboard/api/*), called with the session cookie.
import { DAY_MS } from './format.js';
import { state } from './state.js';

export const API = '/dashboard/api';

/** The session is gone (401): the caller shows the sign-in form. */
export class SignedOut extends Error {}

export async function api(path, init = {}) {
  const res = await fetch(API + path, { credentials: 'same-origin', ...init });
  if (res.status === 401) throw new SignedOut();
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : `HTTP ${res.status}`);
  return body;
}

/** The range (and org) being shown, as query parameters, plus `extra`. */
export function query(extra = {}) {
  const to = Date.now();
  const params = new URLSearchParams({ from: String(to - state.rangeDays * DAY_MS), to: String(to), ...extra });
  if (state.org) params.set('org', state.org);
  return params;
}
