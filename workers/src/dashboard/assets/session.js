// Sign-in form, status line, and the one error path: a lost session returns to the sign-in form.
import { SignedOut } from './api.js';
import { $ } from './state.js';

export function showSignIn(message = '') {
  $('sign-in').hidden = false;
  $('app').hidden = true;
  $('who').hidden = true;
  $('sign-in-error').textContent = message;
  $('token').focus();
}

export function setStatus(text) {
  $('status').textContent = text;
}

/** Runs `fn`; a lost session shows the sign-in form, any other error goes to the status line. */
export async function guarded(fn) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof SignedOut) return showSignIn('Your session ended. Sign in again.');
    setStatus(`Could not load: ${err.message}`);
    throw err;
  }
}
