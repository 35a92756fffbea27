/**
 * The chart of BENCHMARKS.md, written as plain SVG: deliveries per second
 * (flat out) and publish→receive latency (p50, p99, at the fixed rate)
 * against the number of subscribers, broker and baseline side by side.
 * Pure: figures in, SVG text out.
 */

/** One line of a panel: a name and a value per subscriber count. */
export interface Series {
  readonly name: string;
  readonly values: readonly number[];
  /** Stroke colour. */
  readonly color: string;
  readonly dashed?: boolean;
}

/** One panel: a title, a y axis label, and its series. */
export interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly Series[];
  /** Logarithmic y axis (for latency, which spans decades). */
  readonly log?: boolean;
}

const W = 420;
const H = 300;
const M = { left: 64, right: 16, top: 36, bottom: 64 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 1_000_000) return `${+(v / 1_000_000).toFixed(1)}M`;
  if (v >= 1_000) return `${+(v / 1_000).toFixed(1)}k`;
  return `${+v.toPrecision(3)}`;
}

function panel(p: Panel, xLabels: readonly string[], dx: number): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const all = p.series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const x = (i: number): number => dx + M.left + (xLabels.length === 1 ? plotW / 2 : (i * plotW) / (xLabels.length - 1));
  let y: (v: number) => number;
  const ticks: number[] = [];
  if (p.log) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...all, 1)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 1)));
    y = (v) => M.top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * plotH;
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const hi = niceMax(Math.max(...all, 0));
    y = (v) => M.top + plotH - (v / hi) * plotH;
    for (let i = 0; i <= 5; i++) ticks.push((hi * i) / 5);
  }
  const parts: string[] = [];
  parts.push(`<text x="${dx + W / 2}" y="20" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    parts.push(`<line x1="${dx + M.left}" x2="${dx + W - M.right}" y1="${ty}" y2="${ty}" stroke="#ddd"/>`);
    parts.push(`<text x="${dx + M.left - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  parts.push(`<line x1="${dx + M.left}" x2="${dx + M.left}" y1="${M.top}" y2="${M.top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${dx + M.left}" x2="${dx + W - M.right}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#333"/>`);
  xLabels.forEach((label, i) => {
    parts.push(`<text x="${x(i).toFixed(1)}" y="${M.top + plotH + 16}" text-anchor="middle">${esc(label)}</text>`);
  });
  parts.push(`<text x="${dx + M.left + plotW / 2}" y="${M.top + plotH + 32}" text-anchor="middle">subscribers</text>`);
  parts.push(
    `<text transform="translate(${dx + 14},${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(p.unit)}${p.log ? ' (log)' : ''}</text>`,
  );
  p.series.forEach((s, k) => {
    const points = s.values
      .map((v, i) => (Number.isFinite(v) && v > 0 ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : undefined))
      .filter((pt): pt is string => pt !== undefined);
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${dash} points="${points.join(' ')}"/>`);
    for (const pt of points) {
      const [cx, cy] = pt.split(',');
      parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${s.color}"/>`);
    }
    const lx = dx + M.left + (k % 2) * (plotW / 2);
    const ly = H - 2 + (k >= 2 ? 14 : 0);
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${lx + 22}" y="${ly}">${esc(s.name)}</text>`);
  });
  return parts.join('\n');
}

/**
 * An SVG of `panels` side by side, sharing the x axis labels.
 *
 * @example
 * renderChart(['1', '100', '1,000'], [{ title: 'Deliveries/s', unit: 'deliveries/s',
 *   series: [{ name: 'broker', values: [2e4, 1e5, 9e4], color: '#c0392b' }] }], 'fan-out');
 */
export function renderChart(xLabels: readonly string[], panels: readonly Panel[], caption: string): string {
  const width = W * panels.length;
  const height = H + 36;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels.map((p, i) => panel(p, xLabels, i * W)),
    `<text x="${width / 2}" y="${height - 4}" text-anchor="middle" fill="#555">${esc(caption)}</text>`,
    `</svg>`,
    '',
  ].join('\n');
}
