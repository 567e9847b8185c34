// A task: its fields, payload and result, error, and the attempt timeline
// (`GET /tasks/{id}/attempts`): each lease as a bar from its grant to its end, its last
// heartbeat, how it ended, and every request fencing refused for it, with the reason.

import { html, useEffect, useRef, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { usePoll } from '../live.js';
import { Action, Json, Loading, Problem, StateBadge, Time, number } from '../ui.js';

const FINISHED = ['succeeded', 'failed', 'cancelled'];
const ROW = 26;
const LEFT = 90;

/** The timeline's time span: from the first lease to the last end (or now, for a live lease). */
function span(attempts) {
  const times = attempts.flatMap((a) => [a.leased_at, a.ended_at, a.expires_at, ...a.refused.map((r) => r.at)])
    .filter(Boolean).map(Date.parse);
  const live = attempts.some((a) => !a.end);
  const start = Math.min(...times);
  const end = Math.max(...times, live ? Date.now() : 0);
  return [start, Math.max(end, start + 1)];
}

/** The width of the element `ref` is on, followed as the window resizes. */
function useWidth(initial) {
  const ref = useRef(null);
  const [width, setWidth] = useState(initial);
  useEffect(() => {
    const observer = new ResizeObserver(([entry]) => setWidth(Math.max(240, Math.floor(entry.contentRect.width))));
    observer.observe(ref.current);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

function Timeline({ attempts }) {
  const [ref, width] = useWidth(800);
  if (!attempts.length) return html`<p class="muted" ref=${ref}>Not leased yet.</p>`;
  const [start, end] = span(attempts);
  const x = (at) => LEFT + ((Date.parse(at) - start) / (end - start)) * (width - LEFT - 10);
  const height = attempts.length * ROW + 22;
  return html`<div ref=${ref}><svg class="timeline" width=${width} height=${height} role="img"
      aria-label=${`Timeline of ${attempts.length} lease(s)`}>
    ${attempts.map((a, i) => {
      const y = i * ROW + 4;
      const to = a.ended_at || new Date().toISOString();
      return html`<g class=${`lease end-${a.end || 'live'}`}>
        <text x="4" y=${y + 14}>#${a.attempt} ${a.worker_id.slice(0, 10)}</text>
        <rect x=${x(a.leased_at)} y=${y} width=${Math.max(3, x(to) - x(a.leased_at))} height="18" rx="3">
          <title>${a.worker_id}: ${a.end || 'live'} (${a.leased_at} → ${a.ended_at || 'now'})</title></rect>
        ${a.last_heartbeat_at ? html`<line class="beat" x1=${x(a.last_heartbeat_at)} x2=${x(a.last_heartbeat_at)} y1=${y} y2=${y + 18}>
          <title>${a.heartbeats} heartbeat(s), last ${a.last_heartbeat_at}</title></line>` : ''}
        ${a.refused.map((r) => html`<path class="refused" d=${`M${x(r.at)},${y - 2} l5,9 l-5,9 l-5,-9 z`}>
          <title>${r.request} refused: ${r.reason} (${r.worker_id || ''} at ${r.at})</title></path>`)}
      </g>`;
    })}
    <text class="axis" x=${LEFT} y=${height - 4}>${new Date(start).toLocaleTimeString()}</text>
    <text class="axis" x=${width - 10} y=${height - 4} text-anchor="end">${new Date(end).toLocaleTimeString()}</text>
  </svg></div>`;
}

function Refused({ refused }) {
  if (!refused.length) return '';
  return html`<ul class="refused-list">${refused.map((r) => html`<li data-refused=${r.reason}>
    <strong>${r.request} refused: ${r.reason}</strong> from ${r.worker_id || 'an unknown worker'} <${Time} at=${r.at} />
  </li>`)}</ul>`;
}

function Attempts({ history }) {
  const e = history.earlier;
  return html`
    ${e ? html`<p class="muted">${number(e.attempts)} earlier attempts summarised:
      ${Object.entries(e.ends).map(([k, n]) => `${n} ${k}`).join(', ')}; ${number(e.refused)} refused requests.</p>` : ''}
    <${Timeline} attempts=${history.attempts} />
    <ol class="attempts">${history.attempts.map((a) => html`<li data-attempt=${a.attempt}>
      <strong>Attempt ${a.attempt}</strong>${' · '}${a.worker_id}${' · leased '}<${Time} at=${a.leased_at} />${' · '}
      ${a.end ? html`<span class=${`badge end-${a.end}`}>${a.end}</span>${' '}<${Time} at=${a.ended_at} />`
               : html`<span class="badge end-live">live</span>${', expires '}<${Time} at=${a.expires_at} />`}
      ${' · '}${a.heartbeats} heartbeat${a.heartbeats === 1 ? '' : 's'}${a.last_heartbeat_at ? html`${', last '}<${Time} at=${a.last_heartbeat_at} />` : ''}
      ${a.error ? html`<div class="error">${a.error}</div>` : ''}
      <${Refused} refused=${a.refused} />
    </li>`)}</ol>
    ${history.refused.length ? html`<h3>Refused for leases not listed</h3><${Refused} refused=${history.refused} />` : ''}`;
}

export function TaskPage({ id, me }) {
  const [task, error, refresh] = usePoll(() => api('GET', `tasks/${encodeURIComponent(id)}`), [id]);
  const [history, historyError] = usePoll(() => api('GET', `tasks/${encodeURIComponent(id)}/attempts`), [id]);
  if (!task) return html`<h1>Task #${id}</h1><${Loading} error=${error} what="the task" />`;
  const path = `tasks/${task.id}`;
  return html`<h1>Task #${task.id} <${StateBadge} state=${task.state} /></h1>
    <${Problem} error=${error} what="Not updated" />
    ${me.canAct ? html`<div class="controls">
      ${['failed', 'cancelled'].includes(task.state) ? html`<${Action} label="Retry" kind="primary" run=${() => api('POST', `${path}/retry`)} onDone=${refresh} />` : ''}
      ${!FINISHED.includes(task.state) ? html`<${Action} label="Cancel" run=${() => api('DELETE', path)} onDone=${refresh}
        confirm=${`Cancel task ${task.id}?`} />` : ''}
    </div>` : ''}
    <dl class="facts">
      <div><dt>Queue</dt><dd><a href=${`#/queues/${encodeURIComponent(task.queue)}`}>${task.queue}</a></dd></div>
      <div><dt>Attempts</dt><dd>${task.attempts} / ${task.max_attempts}</dd></div>
      <div><dt>Priority</dt><dd>${task.priority}</dd></div>
      <div><dt>Created</dt><dd><${Time} at=${task.created_at} /></dd></div>
      <div><dt>Runs at</dt><dd><${Time} at=${task.run_at} /></dd></div>
      <div><dt>Lease</dt><dd>${task.lease ? html`${task.lease.worker_id}, expires <${Time} at=${task.lease.expires_at} />` : '—'}</dd></div>
      <div><dt>Finished by</dt><dd>${task.worker_id || '—'}</dd></div>
      <div><dt>Idempotency key</dt><dd>${task.idempotency_key || '—'}</dd></div>
      <div><dt>Concurrency key</dt><dd>${task.concurrency_key || '—'}</dd></div>
      <div><dt>Tags</dt><dd>${task.tags.length ? task.tags.map((t) => html`<a class="tag" href=${`#/tasks?tag=${encodeURIComponent(t)}`}>${t}</a>`) : '—'}</dd></div>
      ${task.cancel_requested ? html`<div><dt>Cancel</dt><dd>requested</dd></div>` : ''}
    </dl>
    ${task.error ? html`<h3>Error</h3><pre class="error">${task.error}</pre>` : ''}
    <div class="values">
      <div><${Json} value=${task.payload} label="Payload" /></div>
      <div><${Json} value=${task.result} label="Result" /></div>
    </div>
    <section aria-labelledby="attempts-h">
      <h2 id="attempts-h">Attempts</h2>
      ${history ? html`<${Attempts} history=${history} />` : html`<${Loading} error=${historyError} what="the attempts" />`}
    </section>`;
}
