// Terminal rendering of a bench report: a heading, the units line once, then one table per
// section (cli-table3). Missing figures print as "—".

import Table from 'cli-table3';
import { UNITS_LINE, type Cell, type Report } from './model.js';

function cell(c: Cell): string {
  if (c === null) return '—';
  if (typeof c === 'number') return Number.isInteger(c) ? String(c) : String(+c.toFixed(3));
  return c;
}

/** The report as text, for stdout. `color`: cli-table3's header colours (a TTY only). */
export function renderText(r: Report, color = false): string {
  const out: string[] = [`${r.heading ?? `walstream bench ${r.bench}`}: ${r.title}`, r.units ?? UNITS_LINE, ''];
  for (const t of r.tables) {
    out.push(`== ${t.title}`);
    const table = new Table({
      head: t.columns,
      style: color ? { head: ['cyan'], border: ['grey'] } : { head: [], border: [] },
      // no rule between body rows
      chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
      // text columns to the left, figures to the right
      colAligns: t.columns.map((_, i) => (i === 0 || t.rows.some((row) => typeof row[i] === 'string') ? 'left' : 'right')),
    });
    for (const row of t.rows) table.push(row.map(cell));
    out.push(table.toString());
    if (t.note) out.push(t.note);
    out.push('');
  }
  return out.join('\n');
}

/** The lines of a text report that do not hold measured figures: the heading, units, section titles and column headers. */
export function headingLines(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith('walstream bench ') || l.startsWith('walstream profile ') || l.startsWith('Units: ') || l.startsWith('== ')) out.push(l);
    // the column header row: the first row after a section title's top border
    if (l.startsWith('== ') && lines[i + 2] !== undefined) out.push(lines[i + 2]!.replace(/\s+/g, ' ').trim());
  }
  return out;
}
