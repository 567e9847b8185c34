// Tasks: every filter of `GET /tasks`, pages by cursor, selection, and bulk actions
// (`POST /tasks/bulk`): a dry run counts the tasks first, then the operation's progress is
// followed at `GET /operations/{id}`.

import { html, useState } from '../vendor/preact-htm.js';
import { api, withQuery } from '../api.js';
import { usePoll } from '../live.js';
import { Loading, Problem, StateBadge, Table, Time, number } from '../ui.js';

const STATES = ['queued', 'leased', 'succeeded', 'failed', 'cancelled'];
const TEXT_FILTERS = [
  ['queue', 'Queue'], ['tag', 'Tag'], ['worker_id', 'Worker'], ['concurrency_key', 'Concurrency key'],
  ['error_contains', 'Error contains'],
];
const TIME_FILTERS = [
  ['created_after', 'Created after'], ['created_before', 'Created before'], ['finished_after', 'Finished after'],
];
const FILTERS = [...TEXT_FILTERS, ['state'], ...TIME_FILTERS].map(([name]) => name);

/** datetime-local's value (local time, no zone) as RFC 3339, and back. */
const toRfc3339 = (local) => (local ? new Date(local).toISOString() : '');
function toLocal(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function Filters({ filters }) {
  const [form, setForm] = useState(filters);
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  const apply = (event) => {
    event.preventDefault();
    location.hash = withQuery('/tasks', form);
  };
  return html`<form class="filters" onSubmit=${apply} aria-label="Filters">
    ${TEXT_FILTERS.map(([name, label]) => html`<label>${label}
      <input name=${name} value=${form[name] || ''} onInput=${set(name)} /></label>`)}
    <label>State
      <select name="state" value=${form.state || ''} onChange=${set('state')}>
        <option value="">any</option>
        ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select></label>
    ${TIME_FILTERS.map(([name, label]) => html`<label>${label}
      <input type="datetime-local" name=${name} value=${toLocal(form[name])}
        onInput=${(e) => setForm({ ...form, [name]: toRfc3339(e.target.value) })} /></label>`)}
    <button type="submit" class="primary">Apply</button>
    <a href="#/tasks" class="button">Clear</a>
  </form>`;
}

/** Follows an operation until it ends; answers its last state. */
async function follow(id, onProgress) {
  for (;;) {
    const operation = await api('GET', `operations/${id}`);
    onProgress(operation);
    if (operation.state !== 'running') return operation;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function Progress({ operation }) {
  if (!operation) return null;
  const o = operation;
  const what = o.dry_run ? `${number(o.matched)} tasks match` : `${o.action}: ${number(o.done)} done, ${number(o.skipped)} skipped, ${number(o.errors)} errors of ${number(o.matched)} matched`;
  return html`<p class="progress" role="status" data-operation=${o.id} data-state=${o.state}>
    Operation ${o.id} ${o.state}: ${what}${o.error ? ` (${o.error})` : ''}</p>`;
}

/** The bulk bar: the selected tasks, or every task matching the filters. */
function Bulk({ filters, selected, onDone }) {
  const [action, setAction] = useState('retry');
  const [preview, setPreview] = useState(null);
  const [running, setRunning] = useState(null);
  const [error, setError] = useState(null);
  const target = selected.length ? { ids: selected } : Object.fromEntries(FILTERS.filter((f) => filters[f]).map((f) => [f, filters[f]]));
  const key = JSON.stringify([action, target]);
  const start = async (dryRun, show) => {
    setError(null);
    try {
      const { operation } = await api('POST', 'tasks/bulk', { filter: target, action, dry_run: dryRun });
      return await follow(operation.id, show);
    } catch (e) {
      setError(e);
      return null;
    }
  };
  const count = () => { setRunning(null); start(true, (o) => setPreview({ key, operation: o })); };
  const run = async () => {
    const done = await start(false, setRunning);
    setPreview(null);
    if (done) onDone();
  };
  const counted = preview && preview.key === key && preview.operation.state === 'done' ? preview.operation.matched : null;
  return html`<div class="bulk" role="group" aria-label="Bulk action">
    <label>Bulk action
      <select value=${action} onChange=${(e) => setAction(e.target.value)}>
        <option value="retry">retry</option><option value="cancel">cancel</option><option value="delete">delete</option>
      </select></label>
    <span>on ${selected.length ? `the ${selected.length} selected tasks` : 'every task matching the filters'}</span>
    <button type="button" onClick=${count} data-action="bulk-count">Count</button>
    ${counted !== null ? html`<button type="button" class="primary" onClick=${run} data-action="bulk-run">
      ${action} ${number(counted)} task${counted === 1 ? '' : 's'}</button>` : ''}
    <${Progress} operation=${preview && preview.key === key ? preview.operation : null} />
    <${Progress} operation=${running} />
    <${Problem} error=${error} what="Bulk action" />
  </div>`;
}

/** A page of tasks under `filters`, with paging, selection and (for operators) bulk actions. */
export function TaskList({ filters, me }) {
  const [cursors, setCursors] = useState([null]);
  const [selected, setSelected] = useState([]);
  const cursor = cursors[cursors.length - 1];
  const query = { ...filters, cursor, limit: 50 };
  const [page, error, refresh] = usePoll(() => api('GET', withQuery('tasks', query)), [JSON.stringify(query)], 3000);
  if (!page) return html`<${Loading} error=${error} what="the tasks" />`;
  const ids = page.tasks.map((t) => t.id);
  const toggle = (id) => setSelected(selected.includes(id) ? selected.filter((x) => x !== id) : [...selected, id]);
  const allOnPage = ids.length > 0 && ids.every((id) => selected.includes(id));
  const selectPage = () => setSelected(allOnPage ? selected.filter((id) => !ids.includes(id)) : [...new Set([...selected, ...ids])]);
  return html`
    ${me.canAct ? html`<${Bulk} filters=${filters} selected=${selected} onDone=${() => { setSelected([]); refresh(); }} />` : ''}
    <${Problem} error=${error} what="Not updated" />
    <${Table} label="Tasks" empty=${page.tasks.length ? '' : 'No task matches.'}
      head=${[
        me.canAct ? html`<input type="checkbox" aria-label="Select every task on this page" checked=${allOnPage} onChange=${selectPage} />` : '',
        'Task', 'Queue', 'State', 'Attempts', 'Created', 'Worker', 'Error', 'Tags']}>
      ${page.tasks.map((t) => html`<tr key=${t.id} data-task=${t.id}>
        <td>${me.canAct ? html`<input type="checkbox" aria-label=${`Select task ${t.id}`}
          checked=${selected.includes(t.id)} onChange=${() => toggle(t.id)} />` : ''}</td>
        <th scope="row"><a href=${`#/tasks/${t.id}`}>#${t.id}</a></th>
        <td><a href=${`#/queues/${encodeURIComponent(t.queue)}`}>${t.queue}</a></td>
        <td><${StateBadge} state=${t.state} />${t.cancel_requested ? html` <span class="badge">cancel requested</span>` : ''}</td>
        <td class="num">${t.attempts} / ${t.max_attempts}</td>
        <td><${Time} at=${t.created_at} /></td>
        <td>${t.lease ? t.lease.worker_id : t.worker_id || ''}</td>
        <td class="error-cell" title=${t.error || ''}>${t.error || ''}</td>
        <td>${t.tags.map((tag) => html`<a class="tag" href=${`#/tasks?tag=${encodeURIComponent(tag)}`}>${tag}</a>`)}</td>
      </tr>`)}
    <//>
    <nav class="pages" aria-label="Pages">
      <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Previous page</button>
      <span>page ${cursors.length}</span>
      <button type="button" disabled=${!page.next_cursor} onClick=${() => setCursors([...cursors, page.next_cursor])}>Next page</button>
    </nav>`;
}

export function Tasks({ params, me }) {
  const filters = Object.fromEntries(FILTERS.filter((f) => params.get(f)).map((f) => [f, params.get(f)]));
  const key = JSON.stringify(filters);
  return html`<h1>Tasks</h1>
    <${Filters} key=${key} filters=${filters} />
    <${TaskList} key=${key} filters=${filters} me=${me} />`;
}
