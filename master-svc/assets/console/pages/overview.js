// Overview: every queue with its counts, rates of the last minute, oldest ready task, badges
// and a sparkline of the last hour; the masters, the store, version and uptime.

import { html } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { usePoll } from '../live.js';
import { Chart } from '../charts.js';
import { Loading, Problem, Table, Time, duration, number } from '../ui.js';
import { QueueBadges, lastSecs } from './common.js';

const SPARK = [
  { label: 'done per 10 s', color: '--ok', field: (p) => p.succeeded + p.failed },
  { label: 'backlog', color: '--accent', field: 'queued', scale: 'backlog' },
];

/** Every queue's last hour, by name, in one request. */
async function loadHistories() {
  const activity = await api('GET', 'activity?window=3600');
  return Object.fromEntries(activity.queues.map((h) => [h.queue, h]));
}

function QueueRow({ queue, history }) {
  const c = queue.counts;
  const link = (state, n) => html`<a href=${`#/tasks?queue=${encodeURIComponent(queue.name)}&state=${state}`}>${number(n)}</a>`;
  return html`<tr data-queue=${queue.name}>
    <th scope="row"><a href=${`#/queues/${encodeURIComponent(queue.name)}`}>${queue.name}</a></th>
    <td class="num" data-count="queued">${link('queued', c.queued)}</td>
    <td class="num" data-count="leased">${link('leased', c.leased)}</td>
    <td class="num" data-count="succeeded">${link('succeeded', c.succeeded)}</td>
    <td class="num" data-count="failed">${link('failed', c.failed)}</td>
    <td class="num" data-count="cancelled">${link('cancelled', c.cancelled)}</td>
    <td class="num">${number(lastSecs(history, 'succeeded'))} / ${number(lastSecs(history, 'failed'))}</td>
    <td class="num">${duration(queue.oldest_queued_age_secs)}</td>
    <td><${QueueBadges} queue=${queue} /></td>
    <td><${Chart} history=${history} series=${SPARK} spark title=${`${queue.name}: done and backlog`} /></td>
  </tr>`;
}

function Masters() {
  const [cluster, error] = usePoll(() => api('GET', 'masters'), [], 5000);
  if (!cluster) return html`<${Loading} error=${error} what="the masters" />`;
  return html`<p>Store: <strong data-store>${cluster.store}</strong> · ${cluster.masters.length} master${cluster.masters.length === 1 ? '' : 's'}</p>
    <${Table} label="Masters" head=${['Master', 'Version', 'Up', 'Started', 'Last seen']}>
      ${cluster.masters.map((m) => html`<tr>
        <th scope="row">${m.id}${m.this ? html` <span class="badge">this one</span>` : ''}</th>
        <td>${m.version}</td><td>${duration((Date.now() - Date.parse(m.started_at)) / 1000)}</td>
        <td><${Time} at=${m.started_at} /></td><td><${Time} at=${m.seen_at} /></td>
      </tr>`)}
    <//>`;
}

export function Overview() {
  const [list, error] = usePoll(() => api('GET', 'queues'), []);
  // Again at once when a queue appears or goes, so that its chart follows its row.
  const names = list ? list.queues.map((q) => q.name).join(',') : '';
  const [histories] = usePoll(loadHistories, [names], 10000);
  return html`<h1>Overview</h1>
    <section aria-labelledby="queues-h">
      <h2 id="queues-h">Queues</h2>
      ${list === undefined ? html`<${Loading} error=${error} what="the queues" />` : html`
        <${Problem} error=${error} what="Not updated" />
        <${Table} label="Queues" empty=${list.queues.length ? '' : 'No queues yet: submit a task.'}
          head=${['Queue', 'Queued', 'In flight', 'Succeeded', 'Failed', 'Cancelled', 'Done / min (ok / failed)', 'Oldest ready', 'State', 'Last hour']}>
          ${list.queues.map((q) => html`<${QueueRow} key=${q.name} queue=${q} history=${histories && histories[q.name]} />`)}
        <//>`}
    </section>
    <section aria-labelledby="masters-h">
      <h2 id="masters-h">Masters</h2>
      <${Masters} />
    </section>`;
}
