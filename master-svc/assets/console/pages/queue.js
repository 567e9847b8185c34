// A queue: charts of its last hour, its counts and flow-control settings with their controls,
// and its tasks.

import { html, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { usePoll } from '../live.js';
import { Chart } from '../charts.js';
import { Action, Loading, Problem, duration, number } from '../ui.js';
import { QueueBadges } from './common.js';
import { TaskList } from './tasks.js';

const THROUGHPUT = [
  { label: 'succeeded', color: '--ok', field: 'succeeded' },
  { label: 'failed', color: '--bad', field: 'failed' },
  { label: 'retried', color: '--warn', field: 'retried' },
];
const BACKLOG = [
  { label: 'queued', color: '--accent', field: 'queued' },
  { label: 'in flight', color: '--ok', field: 'in_flight' },
];
const EXPIRIES = [{ label: 'lease expiries', color: '--bad', field: 'expired' }];

function Controls({ queue, refresh }) {
  const path = `queues/${encodeURIComponent(queue.name)}`;
  const paused = queue.settings.paused;
  return html`<div class="controls">
    ${paused
      ? html`<${Action} label="Resume" kind="primary" run=${() => api('POST', `${path}/resume`)} onDone=${refresh} />`
      : html`<${Action} label="Pause" run=${() => api('POST', `${path}/pause`)} onDone=${refresh} />`}
    ${queue.sealed
      ? html`<${Action} label="Unseal" run=${() => api('POST', `${path}/unseal`)} onDone=${refresh} />`
      : html`<${Action} label="Seal" run=${() => api('POST', `${path}/seal`)} onDone=${refresh}
          confirm=${`Seal ${queue.name}? It will take no new tasks until unsealed.`} />`}
  </div>`;
}

const blankToNull = (text) => (text.trim() === '' ? null : Number(text));

/** The limits form: a JSON merge patch of the settings (`PATCH /queues/{name}`). */
function Limits({ queue, canAct, refresh }) {
  const s = queue.settings;
  const [form, setForm] = useState({
    max_in_flight: s.max_in_flight ?? '',
    per_sec: s.rate_limit ? s.rate_limit.per_sec : '',
    burst: s.rate_limit ? s.rate_limit.burst : '',
    key_limit: s.key_limit ?? '',
  });
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(false);
  const field = (name, label, step = '1') => html`<label>${label}
    <input type="number" min="0" step=${step} value=${form[name]} disabled=${!canAct} placeholder="none"
      onInput=${(e) => { setForm({ ...form, [name]: e.target.value }); setSaved(false); }} /></label>`;
  const save = async (event) => {
    event.preventDefault();
    setError(null);
    const rate = blankToNull(String(form.per_sec));
    const patch = {
      max_in_flight: blankToNull(String(form.max_in_flight)),
      rate_limit: rate === null ? null : { per_sec: rate, burst: blankToNull(String(form.burst)) ?? 1 },
      key_limit: blankToNull(String(form.key_limit)),
    };
    try {
      await api('PATCH', `queues/${encodeURIComponent(queue.name)}`, patch);
      setSaved(true);
      refresh();
    } catch (e) {
      setError(e);
    }
  };
  return html`<form class="limits" onSubmit=${save} aria-label="Flow control">
    ${field('max_in_flight', 'Max in flight')}
    ${field('per_sec', 'Rate limit (leases / s)', 'any')}
    ${field('burst', 'Burst')}
    ${field('key_limit', 'Per concurrency key')}
    ${canAct ? html`<button type="submit" class="primary" data-action="save-limits">Save limits</button>` : ''}
    ${saved ? html`<span class="muted" role="status">Saved.</span>` : ''}
    <${Problem} error=${error} what="Limits not saved" />
  </form>`;
}

export function Queue({ name, me }) {
  const path = `queues/${encodeURIComponent(name)}`;
  const [queue, error, refresh] = usePoll(() => api('GET', path), [name]);
  const [history] = usePoll(() => api('GET', `${path}/history?window=3600`), [name], 5000);
  if (!queue) return html`<h1>Queue ${name}</h1><${Loading} error=${error} what="the queue" />`;
  const c = queue.counts;
  return html`<h1>Queue ${name} <${QueueBadges} queue=${queue} /></h1>
    <${Problem} error=${error} what="Not updated" />
    ${me.canAct ? html`<${Controls} queue=${queue} refresh=${refresh} />` : ''}
    <dl class="facts">
      <div><dt>Queued</dt><dd data-count="queued">${number(c.queued)}</dd></div>
      <div><dt>In flight</dt><dd data-count="leased">${number(queue.in_flight)}</dd></div>
      <div><dt>Succeeded</dt><dd>${number(c.succeeded)}</dd></div>
      <div><dt>Failed</dt><dd>${number(c.failed)}</dd></div>
      <div><dt>Cancelled</dt><dd>${number(c.cancelled)}</dd></div>
      <div><dt>Oldest ready</dt><dd>${duration(queue.oldest_queued_age_secs)}</dd></div>
      <div><dt>Rate tokens</dt><dd>${queue.tokens === null ? '—' : queue.tokens.toFixed(1)}</dd></div>
      <div><dt>Held back</dt><dd>${Object.entries(queue.held_back).filter(([, n]) => n).map(([k, n]) => `${number(n)} by ${k}`).join(', ') || 'none'}</dd></div>
    </dl>
    <section class="charts" aria-label="Last hour">
      <${Chart} history=${history} series=${THROUGHPUT} title="Throughput per 10 s" />
      <${Chart} history=${history} series=${BACKLOG} title="Backlog" />
      <${Chart} history=${history} series=${EXPIRIES} title="Lease expiries per 10 s" />
    </section>
    <section aria-labelledby="limits-h">
      <h2 id="limits-h">Flow control</h2>
      <${Limits} key=${JSON.stringify(queue.settings)} queue=${queue} canAct=${me.canAct} refresh=${refresh} />
    </section>
    <section aria-labelledby="tasks-h">
      <h2 id="tasks-h">Tasks</h2>
      <${TaskList} filters=${{ queue: name }} me=${me} />
    </section>`;
}
