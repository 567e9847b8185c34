// Workers: pull workers seen recently and push workers, as `GET /workers` lists them; a push
// worker can be taken out of rotation (`DELETE /workers/{id}`).

import { html } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { usePoll } from '../live.js';
import { Action, Loading, Problem, Table, Time, number } from '../ui.js';

export function Workers({ me }) {
  const [list, error, refresh] = usePoll(() => api('GET', 'workers'), [], 3000);
  if (!list) return html`<h1>Workers</h1><${Loading} error=${error} what="the workers" />`;
  const pull = list.pull_workers || [];
  return html`<h1>Workers</h1>
    <${Problem} error=${error} what="Not updated" />
    <section aria-labelledby="pull-h">
      <h2 id="pull-h">Pull workers seen recently</h2>
      <${Table} label="Pull workers" empty=${pull.length ? '' : 'No pull worker seen recently.'}
        head=${['Worker', 'Queues', 'In flight', 'Last seen', 'Last request']}>
        ${pull.map((w) => html`<tr key=${w.id} data-worker=${w.id}>
          <th scope="row"><a href=${`#/tasks?worker_id=${encodeURIComponent(w.id)}`}>${w.id}</a></th>
          <td>${(w.queues || []).join(', ')}</td>
          <td class="num">${number(w.in_flight)}</td>
          <td><${Time} at=${w.last_seen_at} /></td>
          <td>${w.last_seen || '—'}</td>
        </tr>`)}
      <//>
    </section>
    <section aria-labelledby="push-h">
      <h2 id="push-h">Push workers</h2>
      <${Table} label="Push workers" empty=${list.workers.length ? '' : 'No push worker.'}
        head=${['Worker', 'URL', 'Source', 'Health', 'In flight', 'Queues', '']}>
        ${list.workers.map((w) => html`<tr key=${w.id} data-worker=${w.id}>
          <th scope="row">${w.id}</th>
          <td><code>${w.url}</code></td>
          <td>${w.source}</td>
          <td><span class=${`badge ${w.healthy ? 'state-succeeded' : 'state-failed'}`}>${w.healthy ? 'healthy' : 'out of rotation'}</span></td>
          <td class="num">${number(w.in_flight)} / ${number(w.capacity)}</td>
          <td>${w.queues.join(', ')}</td>
          <td>${me.canAct ? html`<${Action} label="Remove" run=${() => api('DELETE', `workers/${encodeURIComponent(w.id)}`)}
            onDone=${refresh} confirm=${`Take ${w.id} out of rotation?`} />` : ''}</td>
        </tr>`)}
      <//>
    </section>`;
}
