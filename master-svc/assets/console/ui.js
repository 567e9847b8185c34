// Small pieces every page uses: times and ages, state badges, JSON, errors, action buttons.

import { html, useState } from './vendor/preact-htm.js';

/** "3 s", "4 min", "2 h 5 min", "3 d" from seconds. */
export function duration(secs) {
  if (secs === null || secs === undefined) return '—';
  if (secs < 1) return `${Math.round(secs * 1000)} ms`;
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d`;
}

/** A time as "12 s ago" (or "in 5 s"), the exact time on hover. */
export function Time({ at }) {
  if (!at) return html`<span class="muted">—</span>`;
  const secs = (Date.now() - Date.parse(at)) / 1000;
  const text = secs >= 0 ? `${duration(secs)} ago` : `in ${duration(-secs)}`;
  return html`<time datetime=${at} title=${at}>${text}</time>`;
}

export const number = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en'));

export function StateBadge({ state }) {
  return html`<span class="badge state-${state}">${state}</span>`;
}

/** A problem from the API, as the operator can act on it: title and detail. */
export function Problem({ error, what }) {
  if (!error) return null;
  const problem = error.problem || {};
  return html`<div class="problem" role="alert">
    <strong>${what ? `${what}: ` : ''}${problem.title || 'Request failed'}</strong>
    ${problem.detail && problem.detail !== problem.title ? html` — ${problem.detail}` : ''}
    ${error.status ? html` <span class="muted">(HTTP ${error.status})</span>` : ''}
  </div>`;
}

const FOLD_CHARS = 2000;

/** A JSON value pretty-printed; a large one folded until asked for. */
export function Json({ value, label }) {
  if (value === null || value === undefined) return html`<p class="muted">${label}: none</p>`;
  const text = JSON.stringify(value, null, 2);
  const pre = html`<pre class="json" tabindex="0" aria-label=${label}>${text}</pre>`;
  if (text.length <= FOLD_CHARS) return html`<h3>${label}</h3>${pre}`;
  return html`<details class="fold">
    <summary><h3>${label}</h3> <span class="muted">${number(text.length)} characters: show</span></summary>
    ${pre}
  </details>`;
}

/**
 * A button that calls the API and reports how it went: disabled while the call runs, its
 * problem shown beside it. `confirm` asks first.
 */
export function Action({ label, run, confirm, kind = 'secondary', onDone, testid }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const click = async () => {
    if (confirm && !window.confirm(confirm)) return;
    setBusy(true);
    setError(null);
    try {
      const result = await run();
      onDone && onDone(result);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="action">
    <button type="button" class=${kind} disabled=${busy} onClick=${click} data-action=${testid || label}>
      ${busy ? `${label}…` : label}
    </button>
    <${Problem} error=${error} />
  </span>`;
}

/** A page's heading and, while its data is loading or failed, what to say instead. */
export function Loading({ error, what }) {
  if (error) return html`<${Problem} error=${error} what=${`Could not load ${what}`} />`;
  return html`<p class="loading" aria-live="polite">Loading ${what}…</p>`;
}

/** A table that scrolls sideways on a narrow screen rather than squeezing its columns. */
export function Table({ label, head, children, empty }) {
  return html`<div class="table-wrap" role="region" aria-label=${label} tabindex="0">
    <table>
      <thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>${children}</tbody>
    </table>
    ${empty ? html`<p class="muted empty">${empty}</p>` : ''}
  </div>`;
}
