// What several pages show of a queue: its badges, and its rates from the history.

import { html } from '../vendor/preact-htm.js';

/** paused / sealed / limit badges of a queue (`GET /queues`). */
export function QueueBadges({ queue }) {
  const s = queue.settings;
  const badges = [];
  if (s.paused) badges.push(['paused', 'paused']);
  else if (queue.paused_until) badges.push(['paused', 'paused by a worker']);
  if (queue.sealed) badges.push(['sealed', 'sealed']);
  if (s.max_in_flight) badges.push(['limit', `max ${s.max_in_flight} in flight`]);
  if (s.rate_limit) badges.push(['limit', `${s.rate_limit.per_sec}/s, burst ${s.rate_limit.burst}`]);
  if (s.key_limit) badges.push(['limit', `${s.key_limit} per key`]);
  return html`<span class="badges">${badges.map(([kind, text]) => html`<span class=${`badge ${kind}`}>${text}</span>`)}</span>`;
}

/** Sum of `field` over the history's points of the last `secs` seconds. */
export function lastSecs(history, field, secs = 60) {
  if (!history) return null;
  const since = Date.now() - secs * 1000;
  return history.points
    .filter((p) => Date.parse(p.at) + history.step_secs * 1000 > since)
    .reduce((sum, p) => sum + p[field], 0);
}
