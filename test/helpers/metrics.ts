/** Reading the Prometheus text exposition of `/metrics` in tests. */

/** One sample: metric name, labels, value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parsed exposition text: samples, and the TYPE and HELP of each metric. */
export interface Metrics {
  readonly samples: readonly Sample[];
  readonly types: ReadonlyMap<string, string>;
  readonly help: ReadonlyMap<string, string>;
  /** The value of the sample of `name` whose labels include `labels`; summed when several match, 0 when none. */
  value(name: string, labels?: Record<string, string>): number;
  /** Samples of `name`. */
  all(name: string): Sample[];
}

const unescape = (s: string): string => s.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));

/**
 * Parses Prometheus text format 0.0.4, strictly enough that a malformed line fails the test.
 *
 * @example
 * parseMetrics(text).value('spicy_action_refused_total', { reason: 'unauthorized' });
 */
export function parseMetrics(text: string): Metrics {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (TYPE|HELP) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'TYPE' ? types : help).set(m[2]!, m[3]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
      let l: RegExpExecArray | null;
      let end = 0;
      while ((l = re.exec(m[2])) !== null) {
        labels[l[1]!] = unescape(l[2]!);
        end = re.lastIndex;
      }
      if (end !== m[2].length) throw new Error(`bad labels in: ${line}`);
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3]!.toLowerCase() !== 'nan') throw new Error(`bad value in: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  const all = (name: string): Sample[] => samples.filter((s) => s.name === name);
  return {
    samples,
    types,
    help,
    all,
    value(name, want = {}) {
      return all(name)
        .filter((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0);
    },
  };
}
