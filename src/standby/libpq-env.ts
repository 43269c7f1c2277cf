// libpq's defaults for a replication connection string, as a walreceiver, pg_basebackup or psql
// completes one (PostgreSQL 15 src/interfaces/libpq/fe-connect.c: conninfo_add_defaults,
// connectOptions2, passwordFromFile): a keyword absent from the string takes its environment
// variable (PGHOST, PGHOSTADDR, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGAPPNAME), then libpq's
// built-in default (localhost — walstream has no Unix sockets —, 5432, the OS user). A password
// comes from, in this order: the `password` keyword, PGPASSWORD, the password file (`passfile`
// keyword, else PGPASSFILE, else .pgpass in the OS user's home directory), whose first line matching host, port, database
// "replication" and user gives it. A password file that is not a plain file, or that its group or
// others may access, is ignored with libpq's warning on stderr. libpq reads the password file at
// each connection attempt: the target names the file (`passfile`) so that a walreceiver looks the
// password up again at each reconnect (src/standby/transport.ts). Synchronous reads on the
// caller's thread; nothing runs afterwards.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** libpq's DEF_PGPORT. */
export const DEFAULT_PGPORT = 5432;
/** libpq's DefaultHost (walstream connects over TCP only, so never a Unix socket directory). */
export const DEFAULT_PGHOST = 'localhost';
/** The database a physical replication connection names (libpqwalreceiver.c, streamutil.c), matched in the password file. */
export const REPLICATION_DBNAME = 'replication';
/** Largest password file read, bytes (a bigger one is ignored like an unreadable one). */
export const MAX_PASSFILE_BYTES = 1024 * 1024;

/** The environment variable libpq reads for each keyword it completes (conninfo_add_defaults). */
const ENV_OF: Record<string, string> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  passfile: 'PGPASSFILE',
  application_name: 'PGAPPNAME',
};

export type Env = Record<string, string | undefined>;
/** Where a libpq warning goes (libpq prints it on stderr). */
export type WarningSink = (message: string) => void;

const stderrWarning: WarningSink = (m) => {
  process.stderr.write(`WARNING: ${m}\n`);
};

/** What a connection string resolves to for a replication connection. */
export interface LibpqTarget {
  host: string;
  port: string;
  user: string;
  /** null: none given, none in the environment, none in the password file. */
  password: string | null;
  /** The password file consulted (no password given, no PGPASSWORD), looked up again at each connection; else null. */
  passfile: string | null;
  applicationName: string | null;
}

/**
 * A keyword's value as libpq settles it: the string's, else its environment variable's (an
 * empty string given in either counts as unset, as connectOptions2 treats it).
 */
function setting(kv: ReadonlyMap<string, string>, key: string, env: Env): string | null {
  const given = kv.get(key);
  if (given !== undefined && given !== '') return given;
  const ev = ENV_OF[key];
  const fromEnv = ev === undefined ? undefined : env[ev];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : null;
}

/** A host libpq would reach through a Unix-domain socket (a directory path, or an abstract name with '@'). */
export function isUnixSocketHost(host: string): boolean {
  return host.startsWith('/') || host.startsWith('@');
}

/** The OS user libpq defaults to (pg_fe_getauthname). */
function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'postgres';
  }
}

/** The OS user's home directory from the password database: libpq 15's pqGetHomeDirectory (getpwuid; $HOME is not read). */
function osHome(): string {
  try {
    return os.userInfo().homedir;
  } catch {
    return os.homedir();
  }
}

/**
 * Complete libpq keyword/value pairs (already tokenized and checked by the caller) with the
 * environment and libpq's defaults, and find the password.
 */
export function libpqTarget(kv: ReadonlyMap<string, string>, env: Env = process.env, warn: WarningSink = stderrWarning, home: string = osHome()): LibpqTarget {
  const hostaddr = setting(kv, 'hostaddr', env);
  const hostName = setting(kv, 'host', env);
  const host = hostaddr ?? hostName ?? DEFAULT_PGHOST;
  const port = setting(kv, 'port', env) ?? String(DEFAULT_PGPORT);
  const user = setting(kv, 'user', env) ?? osUser();
  let password = setting(kv, 'password', env);
  let passfile: string | null = null;
  if (password === null) {
    passfile = setting(kv, 'passfile', env) ?? path.join(home, '.pgpass');
    // connectOptions2: the host name is the search key if given, else hostaddr.
    password = passwordFromPassFile(passfile, { host: hostName ?? hostaddr ?? '', port, dbname: REPLICATION_DBNAME, user }, warn);
  }
  return { host, port, user, password, passfile, applicationName: setting(kv, 'application_name', env) };
}

/** One field of a password file line: its de-escaped text and whether it was a bare `*`. */
interface PassField {
  text: string;
  wildcard: boolean;
}

/**
 * A password file line split at unescaped ':' into hostname, port, database, username and the
 * password (which ends at the next unescaped ':' as in libpq); `\` escapes the next character.
 * null when the line has fewer than five fields.
 */
function splitPassLine(line: string): PassField[] | null {
  const fields: PassField[] = [];
  let k = 0;
  while (fields.length < 5) {
    const start = k;
    let text = '';
    while (k < line.length && line[k] !== ':') {
      if (line[k] === '\\' && k + 1 < line.length) k++;
      text += line[k++];
    }
    // pwdfMatchesString: only an unescaped lone '*' is the wildcard.
    fields.push({ text, wildcard: line.slice(start, k) === '*' });
    if (k >= line.length) break;
    k++; // the ':'
  }
  return fields.length === 5 ? fields : null;
}

/**
 * libpq's passwordFromFile: the password of the first line of `file` whose first four fields match
 * host, port, database and user (`*` matches anything). A missing file is no password; a file that
 * is not a plain file, or is group/world accessible, is ignored with libpq's warning.
 */
export function passwordFromPassFile(file: string, want: { host: string; port: string; dbname: string; user: string }, warn: WarningSink = stderrWarning): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return null;
  }
  if (!st.isFile()) {
    warn(`password file "${file}" is not a plain file`);
    return null;
  }
  if ((st.mode & 0o077) !== 0) {
    warn(`password file "${file}" has group or world access; permissions should be u=rw (0600) or less`);
    return null;
  }
  if (st.size > MAX_PASSFILE_BYTES) return null;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  // passwordFromFile: an empty or socket-directory host is DefaultHost; an empty port DEF_PGPORT.
  const host = want.host === '' || want.host.startsWith('/') ? DEFAULT_PGHOST : want.host;
  const port = want.port === '' ? String(DEFAULT_PGPORT) : want.port;
  const keys = [host, port, want.dbname, want.user];
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#')) continue;
    const line = raw.replace(/\r+$/, '');
    if (line === '') continue;
    const fields = splitPassLine(line);
    if (fields === null) continue;
    if (keys.every((key, i) => fields[i]!.wildcard || fields[i]!.text === key)) return fields[4]!.text;
  }
  return null;
}
