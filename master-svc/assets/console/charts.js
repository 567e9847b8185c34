// Charts of a queue's last hour (`GET /queues/{name}/history`), drawn by uPlot (vendored; a
// global from vendor/uPlot.min.js). Colours come from the page's CSS variables, so charts
// follow the light or dark theme.

import { html, useEffect, useRef } from './vendor/preact-htm.js';

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/** The history's points as uPlot's columns: times in seconds, then one column per field. */
export function columns(history, fields) {
  const points = history ? history.points : [];
  return [
    points.map((p) => Date.parse(p.at) / 1000),
    ...fields.map((field) => points.map((p) => (typeof field === 'function' ? field(p) : p[field]))),
  ];
}

/**
 * A time-series chart. `series`: [{ label, color (a CSS variable), field }]. `spark`: a small
 * chart without axes, legend or cursor, for a table row.
 */
export function Chart({ history, series, title, spark = false, height = 180 }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = columns(history, series.map((s) => s.field));
  useEffect(() => {
    if (!window.uPlot || !box.current) return undefined;
    const width = spark ? 140 : Math.max(260, box.current.clientWidth);
    const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--rule'), width: 1 }, ticks: { show: false } };
    plot.current = new window.uPlot({
      width,
      height: spark ? 32 : height,
      legend: { show: !spark },
      cursor: { show: !spark },
      scales: { x: { time: true } },
      axes: spark ? [{ show: false }, { show: false }] : [axis, { ...axis, size: 50 }],
      series: [{}, ...series.map((s) => ({
        label: s.label,
        stroke: cssVar(s.color),
        width: spark ? 1.5 : 2,
        points: { show: false },
        ...(s.scale ? { scale: s.scale } : {}),
      }))],
    }, data, box.current);
    const resize = () => {
      if (!spark && plot.current && box.current) plot.current.setSize({ width: Math.max(260, box.current.clientWidth), height });
    };
    window.addEventListener('resize', resize);
    return () => { window.removeEventListener('resize', resize); plot.current.destroy(); plot.current = null; };
  }, [spark, series.length]);
  useEffect(() => { plot.current && plot.current.setData(data); }, [history]);
  const label = title || series.map((s) => s.label).join(', ');
  return html`<figure class=${spark ? 'spark' : 'chart'}>
    ${title && !spark ? html`<figcaption>${title}</figcaption>` : ''}
    <div ref=${box} role="img" aria-label=${`${label}, last hour`}></div>
  </figure>`;
}
