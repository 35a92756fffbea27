/**
 * The charts of BENCHMARKS.md, written as plain SVG: lines of deliveries per
 * second, CPU per delivery and publish→receive latency against the number of
 * subscribers (the fan-out), and bars of the same figures for one setting
 * (the cluster), broker and baseline side by side. Pure: figures in, SVG
 * text out.
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

/** One series of a bar panel: a bar in each group, and the runs it is the median of. */
export interface BarSeries {
  readonly name: string;
  /** One value per group (the median of its runs). */
  readonly values: readonly number[];
  /** Each group's runs, drawn as dots on its bar. */
  readonly runs?: readonly (readonly number[])[];
  /** Fill colour. */
  readonly color: string;
}

/** One bar panel: groups along the x axis, a bar per series in each. */
export interface BarPanel {
  readonly title: string;
  readonly unit: string;
  readonly groups: readonly string[];
  readonly series: readonly BarSeries[];
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

/** A panel's y axis: where a value goes, and the ticks to draw. */
interface Axis {
  readonly y: (v: number) => number;
  readonly ticks: readonly number[];
}

function axis(values: readonly number[], log: boolean | undefined): Axis {
  const plotH = H - M.top - M.bottom;
  const all = values.filter((v) => Number.isFinite(v) && v > 0);
  const ticks: number[] = [];
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(Math.min(...all, 1)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, 1)));
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    return { y: (v) => M.top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * plotH, ticks };
  }
  const hi = niceMax(Math.max(...all, 0));
  for (let i = 0; i <= 5; i++) ticks.push((hi * i) / 5);
  return { y: (v) => M.top + plotH - (v / hi) * plotH, ticks };
}

/** A panel's frame at `dx`: its title, grid lines, axes, y label and x axis label. */
function frame(title: string, unit: string, log: boolean | undefined, xTitle: string, { y, ticks }: Axis, dx: number): string[] {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const parts: string[] = [];
  parts.push(`<text x="${dx + W / 2}" y="20" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    parts.push(`<line x1="${dx + M.left}" x2="${dx + W - M.right}" y1="${ty}" y2="${ty}" stroke="#ddd"/>`);
    parts.push(`<text x="${dx + M.left - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  parts.push(`<line x1="${dx + M.left}" x2="${dx + M.left}" y1="${M.top}" y2="${M.top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${dx + M.left}" x2="${dx + W - M.right}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#333"/>`);
  if (xTitle) parts.push(`<text x="${dx + M.left + plotW / 2}" y="${M.top + plotH + 32}" text-anchor="middle">${esc(xTitle)}</text>`);
  parts.push(`<text transform="translate(${dx + 14},${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(unit)}${log ? ' (log)' : ''}</text>`);
  return parts;
}

/** The legend entry of the `k`th series of a panel at `dx`. */
function legend(name: string, color: string, dash: string, k: number, dx: number, swatch: 'line' | 'box'): string[] {
  const plotW = W - M.left - M.right;
  const lx = dx + M.left + (k % 2) * (plotW / 2);
  const ly = H - 2 + (k >= 2 ? 14 : 0);
  const mark =
    swatch === 'line'
      ? `<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`
      : `<rect x="${lx}" y="${ly - 9}" width="18" height="10" fill="${color}"/>`;
  return [mark, `<text x="${lx + 22}" y="${ly}">${esc(name)}</text>`];
}

function panel(p: Panel, xLabels: readonly string[], dx: number): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (i: number): number => dx + M.left + (xLabels.length === 1 ? plotW / 2 : (i * plotW) / (xLabels.length - 1));
  const scale = axis(p.series.flatMap((s) => s.values), p.log);
  const { y } = scale;
  const parts = frame(p.title, p.unit, p.log, 'subscribers', scale, dx);
  xLabels.forEach((label, i) => {
    parts.push(`<text x="${x(i).toFixed(1)}" y="${M.top + plotH + 16}" text-anchor="middle">${esc(label)}</text>`);
  });
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
    parts.push(...legend(s.name, s.color, dash, k, dx, 'line'));
  });
  return parts.join('\n');
}

function barPanel(p: BarPanel, dx: number): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const scale = axis(p.series.flatMap((s) => [...s.values, ...(s.runs ?? []).flat()]), false);
  const { y } = scale;
  const parts = frame(p.title, p.unit, false, '', scale, dx);
  const groupW = plotW / p.groups.length;
  const barW = Math.min(48, (groupW * 0.7) / p.series.length);
  p.groups.forEach((label, g) => {
    const center = dx + M.left + groupW * (g + 0.5);
    parts.push(`<text x="${center.toFixed(1)}" y="${M.top + plotH + 16}" text-anchor="middle">${esc(label)}</text>`);
    p.series.forEach((s, k) => {
      const left = center + (k - p.series.length / 2) * barW;
      const mid = (left + barW / 2).toFixed(1);
      const v = s.values[g] ?? Number.NaN;
      const runs = (s.runs?.[g] ?? []).filter((run) => Number.isFinite(run) && run > 0);
      if (Number.isFinite(v) && v > 0) {
        const top = y(v);
        parts.push(`<rect x="${(left + 1).toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(M.top + plotH - top).toFixed(1)}" fill="${s.color}" fill-opacity="0.8"/>`);
        // The value at the foot of the bar, clear of the runs' dots near its top; above them when the bar is too short.
        const inside = M.top + plotH - top >= 32;
        const above = Math.min(top, ...runs.map((run) => y(run) - 3)) - 4;
        parts.push(`<text x="${mid}" y="${(inside ? M.top + plotH - 6 : above).toFixed(1)}" text-anchor="middle"${inside ? ' fill="white"' : ''}>${fmt(v)}</text>`);
      }
      for (const run of runs) parts.push(`<circle cx="${mid}" cy="${y(run).toFixed(1)}" r="2.5" fill="white" stroke="#333"/>`);
    });
  });
  p.series.forEach((s, k) => parts.push(...legend(s.name, s.color, '', k, dx, 'box')));
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
  return svg(panels.map((p, i) => panel(p, xLabels, i * W)), caption);
}

/**
 * An SVG of bar `panels` side by side: each bar is a median, each dot on it
 * one of the runs it is the median of.
 *
 * @example
 * renderBars([{ title: 'Latency', unit: 'ms', groups: ['p50', 'p99'],
 *   series: [{ name: 'broker', values: [15, 34], runs: [[14, 15, 16], [30, 34, 40]], color: '#c0392b' }] }], 'cluster');
 */
export function renderBars(panels: readonly BarPanel[], caption: string): string {
  return svg(panels.map((p, i) => barPanel(p, i * W)), caption);
}

/** The SVG document of drawn panels side by side, with the caption under them. */
function svg(panels: readonly string[], caption: string): string {
  const width = W * panels.length;
  const height = H + 36;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels,
    `<text x="${width / 2}" y="${height - 4}" text-anchor="middle" fill="#555">${esc(caption)}</text>`,
    `</svg>`,
    '',
  ].join('\n');
}
