// Audit: the operator actions, newest first (`GET /audit`), older pages by cursor.

import { html, useState } from '../vendor/preact-htm.js';
import { api, withQuery } from '../api.js';
import { usePoll } from '../live.js';
import { Loading, Problem, Table, Time } from '../ui.js';

export function Audit() {
  const [cursors, setCursors] = useState([null]);
  const cursor = cursors[cursors.length - 1];
  const [page, error] = usePoll(() => api('GET', withQuery('audit', { limit: 50, cursor })), [cursor], 5000);
  if (!page) return html`<h1>Audit</h1><${Loading} error=${error} what="the audit log" />`;
  return html`<h1>Audit</h1>
    <${Problem} error=${error} what="Not updated" />
    <${Table} label="Audit log" empty=${page.entries.length ? '' : 'No operator action yet.'}
      head=${['When', 'Who', 'Action', 'Target', 'Outcome', 'Status']}>
      ${page.entries.map((e) => html`<tr key=${e.id}>
        <td><${Time} at=${e.at} /></td><td>${e.actor}</td><td>${e.action}</td>
        <td><code>${e.target}</code></td>
        <td><span class=${`badge outcome-${e.outcome}`}>${e.outcome}</span></td><td class="num">${e.status}</td>
      </tr>`)}
    <//>
    <nav class="pages" aria-label="Pages">
      <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
      <button type="button" disabled=${!page.next_cursor} onClick=${() => setCursors([...cursors, page.next_cursor])}>Older</button>
    </nav>`;
}
