// The session settings a server connection reports after authentication (PostgreSQL's
// BeginReportingGUCOptions: one ParameterStatus per GUC_REPORT setting, in its order), and the
// client_encoding spelling PostgreSQL reports back. Pure functions, used by ReplicationServerConn
// (server-conn.ts) once per connection; nothing runs or stops here.

export const WALSTREAM_SERVER_VERSION = '15.0 (walstream 0.1.0)';

export interface SessionFacts {
  applicationName: string;
  /** The client_encoding the client asked for (startup parameter), if any. */
  clientEncoding: string | undefined;
  inHotStandby: boolean;
  superuser: boolean;
  serverVersion: string;
  user: string;
  timeZone: string;
}

/** name → value of every ParameterStatus sent at the start of a session. */
export function sessionParameterStatus(f: SessionFacts): [string, string][] {
  return [
    ['application_name', f.applicationName],
    ['client_encoding', canonicalEncoding(f.clientEncoding)],
    ['DateStyle', 'ISO, MDY'],
    ['default_transaction_read_only', 'off'],
    ['in_hot_standby', f.inHotStandby ? 'on' : 'off'],
    ['integer_datetimes', 'on'],
    ['IntervalStyle', 'postgres'],
    ['is_superuser', f.superuser ? 'on' : 'off'],
    ['server_encoding', 'SQL_ASCII'],
    ['server_version', f.serverVersion],
    ['session_authorization', f.user],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', f.timeZone],
  ];
}

/** client_encoding as PostgreSQL names it (pg_char_to_encoding, then its canonical name). */
export function canonicalEncoding(v: string | undefined): string {
  if (v === undefined || v === '') return 'SQL_ASCII';
  const k = v.toLowerCase().replace(/[-_]/g, '');
  if (k === 'utf8' || k === 'unicode') return 'UTF8';
  if (k === 'sqlascii') return 'SQL_ASCII';
  if (k === 'latin1' || k === 'iso88591') return 'LATIN1';
  return v.toUpperCase();
}
