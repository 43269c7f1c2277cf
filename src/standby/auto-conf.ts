// A data directory made by `pg_basebackup -R` as a standby's: its postgresql.auto.conf (PostgreSQL's
// configuration-file syntax, guc-file.l: `name = value` lines, '#' comments, single-quoted values
// with '' and backslash escapes; the last setting of a name wins), the primary_conninfo there
// (libpq's conninfo_parse: key=value pairs, single-quoted values with \' and \\, libpq's keyword
// list, the password looked up in the passfile as libpq does for a replication connection), and
// standby.signal. adoptBaseBackup() turns such a backup (backup_label + the primary's control file
// "in production") into a standby's directory once: control file "in archive recovery" with
// minRecoveryPoint = the backup's end (the manifest's WAL range end, else just past the checkpoint
// record: the snapshot holds only transactions logged before it), backup_label renamed
// backup_label.old as PostgreSQL does. Synchronous file reads and writes on the opener's thread;
// nothing runs afterwards.

import fs from 'node:fs';
import path from 'node:path';
import { Errors } from '../errors.js';
import { CONTROL_FILE, DbState, readControl, writeControl } from '../storage/control.js';
import { fsyncDir } from '../wal/segfile.js';
import { parseBackupManifest } from '../replication/backup-manifest.js';
import type { PrimaryConninfo, StandbyOptions } from './options.js';
import { splitConninfo } from './options.js';
import { type Env, isUnixSocketHost, libpqTarget, MAX_PASSFILE_BYTES, type WarningSink } from './libpq-env.js';

export const AUTO_CONF_FILE = 'postgresql.auto.conf';
export const STANDBY_SIGNAL_FILE = 'standby.signal';
export const BACKUP_LABEL_FILE = 'backup_label';
export const BACKUP_LABEL_OLD_FILE = 'backup_label.old';
export const BACKUP_MANIFEST_FILE = 'backup_manifest';
/** Largest postgresql.auto.conf read, bytes. */
const MAX_CONF_BYTES = MAX_PASSFILE_BYTES;

const confError = (why: string) => Errors.invalidOption(AUTO_CONF_FILE, why);
const conninfoError = (why: string) => Errors.invalidOption('primary_conninfo', why);

/** ParseConfigFp for one file's text: name → value (names lowercased; the last one wins). */
export function parseAutoConf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const s = raw.replace(/\r$/, '');
    let p = 0;
    const skip = () => {
      while (p < s.length && /[ \t\f\v]/.test(s[p]!)) p++;
    };
    skip();
    if (p >= s.length || s[p] === '#') return;
    const nameMatch = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?/.exec(s.slice(p));
    if (!nameMatch) throw confError(`syntax error in file "${AUTO_CONF_FILE}" line ${line}`);
    const name = nameMatch[0].toLowerCase();
    p += nameMatch[0].length;
    skip();
    if (s[p] === '=') {
      p++;
      skip();
    }
    let value: string;
    if (s[p] === "'") {
      p++;
      value = '';
      let closed = false;
      while (p < s.length) {
        const ch = s[p++]!;
        if (ch === "'") {
          if (s[p] === "'") {
            value += "'";
            p++;
            continue;
          }
          closed = true;
          break;
        }
        if (ch === '\\' && p < s.length) {
          const e = s[p++]!;
          const esc: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
          if (esc[e] !== undefined) value += esc[e];
          else if (/[0-7]/.test(e)) {
            let oct = e;
            while (oct.length < 3 && /[0-7]/.test(s[p] ?? '')) oct += s[p++];
            value += String.fromCharCode(parseInt(oct, 8));
          } else value += e;
          continue;
        }
        value += ch;
      }
      if (!closed) throw confError(`unterminated quoted string in file "${AUTO_CONF_FILE}" line ${line}`);
    } else {
      const m = /^[^\s#']+/.exec(s.slice(p));
      if (!m) throw confError(`syntax error in file "${AUTO_CONF_FILE}" line ${line}`);
      value = m[0];
      p += m[0].length;
    }
    skip();
    if (p < s.length && s[p] !== '#') throw confError(`syntax error in file "${AUTO_CONF_FILE}" line ${line}`);
    out.set(name, value);
  });
  return out;
}

/** libpq's connection keywords (PQconndefaults); any other is `invalid connection option`. */
const LIBPQ_KEYWORDS = new Set([
  'host', 'hostaddr', 'port', 'user', 'password', 'passfile', 'channel_binding', 'connect_timeout', 'dbname', 'options', 'application_name',
  'fallback_application_name', 'keepalives', 'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'sslmode',
  'sslcompression', 'sslcert', 'sslkey', 'sslpassword', 'sslrootcert', 'sslcrl', 'sslcrldir', 'sslsni', 'requirepeer', 'ssl_min_protocol_version',
  'ssl_max_protocol_version', 'gssencmode', 'krbsrvname', 'gsslib', 'replication', 'target_session_attrs', 'client_encoding', 'service',
]);

/** conninfo_parse: key=value pairs separated by white space; values single-quoted with \ escapes, or bare with \ escapes. */
export function parseLibpqConninfo(text: string): Map<string, string> {
  const kv = splitConninfo(text, conninfoError);
  for (const key of kv.keys()) if (!LIBPQ_KEYWORDS.has(key)) throw conninfoError(`invalid connection option "${key}"`);
  return kv;
}

/** primary_conninfo as a PrimaryConninfo: libpq's defaults (environment, port 5432, the OS user, the password sources of libpq-env.ts), TLS and GSS encryption refused where required. */
export function conninfoFromLibpq(text: string, env: Env = process.env, warn?: WarningSink): PrimaryConninfo {
  const kv = parseLibpqConninfo(text);
  const sslmode = kv.get('sslmode');
  if (sslmode !== undefined && !['disable', 'allow', 'prefer'].includes(sslmode)) throw conninfoError(`sslmode "${sslmode}" needs TLS, which walstream does not support`);
  if (kv.get('gssencmode') === 'require') throw conninfoError('gssencmode "require" needs GSSAPI encryption, which walstream does not support');
  const t = libpqTarget(kv, env, warn);
  const host = t.host;
  if (host.includes(',')) throw conninfoError(`multiple hosts ("${host}") are not supported`);
  if (isUnixSocketHost(host)) throw conninfoError(`host "${host}" is a Unix-domain socket; walstream connects over TCP only`);
  const portText = t.port;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw conninfoError(`invalid port number: "${portText}"`);
  const out: PrimaryConninfo = { host, port: Number(portText), user: t.user };
  const password = t.password;
  if (password !== null && password !== '') out.password = password;
  if (t.passfile !== null) out.passfile = t.passfile;
  const app = t.applicationName ?? kv.get('fallback_application_name');
  if (app !== undefined && app !== '') out.applicationName = app;
  return out;
}

/** What a standby takes from its data directory: standby.signal and postgresql.auto.conf's primary_conninfo / primary_slot_name. */
export interface DirectoryStandbySettings {
  standbySignal: boolean;
  primaryConninfo: PrimaryConninfo | null;
  primarySlotName: string | null;
}

/** postgresql.auto.conf in `dataDir`, parsed (empty when the file is absent). */
function readAutoConf(dataDir: string): Map<string, string> {
  const file = path.join(dataDir, AUTO_CONF_FILE);
  let text: string;
  try {
    if (fs.statSync(file).size > MAX_CONF_BYTES) throw confError(`file is larger than ${MAX_CONF_BYTES} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && (e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw e;
    return new Map();
  }
  return parseAutoConf(text);
}

/**
 * primary_conninfo as postgresql.auto.conf in `dataDir` sets it now (the last setting; null when
 * the file or the setting is absent): what `walstream standby` re-reads on SIGHUP, as PostgreSQL 15
 * re-reads primary_conninfo on reload.
 */
export function readPrimaryConninfo(dataDir: string): string | null {
  return readAutoConf(dataDir).get('primary_conninfo') ?? null;
}

export function readStandbySettings(dataDir: string): DirectoryStandbySettings {
  const standbySignal = fs.existsSync(path.join(dataDir, STANDBY_SIGNAL_FILE));
  const conf = readAutoConf(dataDir);
  const ci = conf.get('primary_conninfo');
  const slot = conf.get('primary_slot_name');
  return {
    standbySignal,
    primaryConninfo: ci === undefined || ci === '' ? null : conninfoFromLibpq(ci),
    primarySlotName: slot === undefined || slot === '' ? null : slot,
  };
}

/**
 * A pg_basebackup'd directory (backup_label, the control file of the primary or of the standby it
 * was taken from) becomes a standby's, once (backup_label → backup_label.old); returns whether it
 * did. Directories without backup_label are left alone. A backup of a standby ("BACKUP FROM:
 * standby") has a control file in recovery already; its minRecoveryPoint is raised to the backup's
 * end all the same.
 */
export function adoptBaseBackup(dataDir: string): boolean {
  const labelPath = path.join(dataDir, BACKUP_LABEL_FILE);
  if (!fs.existsSync(labelPath) || !fs.existsSync(path.join(dataDir, CONTROL_FILE))) return false;
  const control = readControl(dataDir);
  if (control === null) return false;
  const label = fs.readFileSync(labelPath, 'utf8');
  const m = /^CHECKPOINT LOCATION: ([0-9A-F]+)\/([0-9A-F]+)$/m.exec(label);
  const labelCheckpoint = m ? parseInt(m[1]!, 16) * 0x1_0000_0000 + parseInt(m[2]!, 16) : -1;
  if (control.state === DbState.InArchiveRecovery || control.state === DbState.ShutDownInRecovery) {
    // A standby's directory already (a base backup our walreceiver took keeps its label), unless
    // this is a backup of a standby that was never opened: its label names the control's checkpoint.
    if (!/^BACKUP FROM: standby$/m.test(label) || labelCheckpoint !== control.checkpointLsn) return false;
  }
  if (!m) throw Errors.notADataDir(dataDir, `invalid data in file "${BACKUP_LABEL_FILE}"`);
  if (labelCheckpoint !== control.checkpointLsn) throw Errors.notADataDir(dataDir, `${BACKUP_LABEL_FILE} names checkpoint ${m[1]}/${m[2]}, the control file another`);
  let end = control.checkpointLsn + 1;
  const manifestPath = path.join(dataDir, BACKUP_MANIFEST_FILE);
  if (fs.existsSync(manifestPath)) {
    const ranges = parseBackupManifest(fs.readFileSync(manifestPath)).walRanges;
    for (const r of ranges) if (r.endLsn > end) end = r.endLsn;
  }
  writeControl(dataDir, { ...control, state: DbState.InArchiveRecovery, minRecoveryPoint: Math.max(control.minRecoveryPoint, end), timeMs: Date.now() });
  fs.renameSync(labelPath, path.join(dataDir, BACKUP_LABEL_OLD_FILE));
  fs.mkdirSync(path.join(dataDir, 'pg_wal'), { recursive: true });
  fsyncDir(dataDir);
  return true;
}

/**
 * Standby options completed from the data directory (as PostgreSQL reads postgresql.auto.conf):
 * primary_conninfo when neither primaryConninfo nor primary is given, primary_slot_name when
 * primarySlotName is not. Options given win.
 */
export function withDirectorySettings(opts: StandbyOptions): StandbyOptions {
  if (opts === null || typeof opts !== 'object' || typeof opts.dataDir !== 'string' || opts.dataDir === '') return opts;
  const needConninfo = opts.primaryConninfo === undefined && opts.primary === undefined;
  if (!needConninfo && opts.primarySlotName !== undefined) return opts;
  const dir = readStandbySettings(path.resolve(opts.dataDir));
  const out: StandbyOptions = { ...opts };
  if (needConninfo && dir.primaryConninfo !== null) out.primaryConninfo = dir.primaryConninfo;
  if (opts.primarySlotName === undefined && dir.primarySlotName !== null) out.primarySlotName = dir.primarySlotName;
  return out;
}
