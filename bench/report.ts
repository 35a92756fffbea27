/**
 * Tables of the bench: one per scenario, printed on the console and written
 * into BENCHMARKS.md. Pure formatting: figures in, text out.
 */

/** A table as the report shows it. */
export interface Table {
  readonly title: string;
  /** What the scenario does, one paragraph. */
  readonly intro: string;
  /** A chart of the table's figures, shown under the intro in Markdown. */
  readonly image?: { readonly alt: string; readonly path: string };
  readonly headers: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** Lines under the table: what bound the rate, what was skipped. */
  readonly notes?: readonly string[];
}

/**
 * A number for a table: thousands separated, `digits` decimals, `n/a` when missing.
 *
 * @example
 * num(12345.678); // '12,346'
 * num(1.234, 2); // '1.23'
 */
export function num(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * A broker/baseline ratio for a table: `0.98×`.
 *
 * @example
 * times(0.981); // '0.98×'
 */
export function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : 'n/a';
}

/** The table as GitHub Markdown. */
export function markdownTable(table: Table): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [
    `### ${table.title}`,
    '',
    table.intro,
    '',
    ...(table.image ? [`![${table.image.alt}](${table.image.path})`, ''] : []),
    line(table.headers),
    line(table.headers.map(() => '---')),
    ...table.rows.map(line),
    ...(table.notes?.length ? ['', ...table.notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}

/** The table as aligned plain text for the console. */
export function consoleTable(table: Table): string {
  const widths = table.headers.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `== ${table.title}`,
    line(table.headers),
    ...table.rows.map(line),
    ...(table.notes ?? []).map((n) => `  * ${n}`),
    '',
  ].join('\n');
}
