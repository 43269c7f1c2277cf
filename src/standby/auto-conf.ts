// primary_conninfo from the data directory's postgresql.auto.conf: what a running standby re-reads
// on reload (`walstream standby` on SIGHUP), as PostgreSQL 15 re-reads primary_conninfo. The file
// is the one `pg_basebackup -R` and ALTER SYSTEM write: lines `name = 'value'` (the `=` optional),
// values single-quoted with '' or \' for a quote and backslash escapes, `#` comments; a later
// setting overrides an earlier one (PostgreSQL's guc-file.l rules, for the lines we read). Read
// only; owns no state.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';

/** PostgreSQL's name for the file (PG_AUTOCONF_FILENAME). */
export const AUTO_CONF_FILE = 'postgresql.auto.conf';

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** The value of a quoted GUC string (GUC_scanstr): '' and \x escapes undone. */
function unquote(q: string): string {
  let out = '';
  for (let i = 1; i < q.length - 1; i++) {
    const c = q[i]!;
    if (c === "'" && q[i + 1] === "'") {
      out += "'";
      i++;
    } else if (c === '\\' && i + 1 < q.length - 1) {
      const n = q[++i]!;
      out += ESCAPES[n] ?? n;
    } else {
      out += c;
    }
  }
  return out;
}

/** Every `name = value` setting of a configuration file's text, in order (names lower-cased). */
export function parseConfigLines(text: string, file: string): Array<{ name: string; value: string }> {
  const out: Array<{ name: string; value: string }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    const m = /^\s*([A-Za-z_][\w.-]*)\s*=?\s*('(?:[^'\\]|''|\\.)*'|[^\s#']+)\s*(?:#.*)?$/.exec(line);
    if (m === null) {
      if (/^\s*(#.*)?$/.test(line)) continue;
      throw Errors.syntaxError(`syntax error in file "${file}" line ${i + 1}, near token "${line.trim().split(/\s+/)[0] ?? ''}"`);
    }
    const raw = m[2]!;
    out.push({ name: m[1]!.toLowerCase(), value: raw.startsWith("'") ? unquote(raw) : raw });
  }
  return out;
}

/** primary_conninfo as postgresql.auto.conf in `dataDir` sets it (the last setting); null if the file or the setting is absent. */
export function readPrimaryConninfo(dataDir: string): string | null {
  const file = path.join(dataDir, AUTO_CONF_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let value: string | null = null;
  for (const s of parseConfigLines(text, file)) if (s.name === 'primary_conninfo') value = s.value;
  return value;
}
