// `walstream status`: ask a running primary (its metrics endpoint, `walstream primary
// --metrics-port`) for GET /status and print pg_stat_replication-like tables, or the JSON with
// --json. The table's first line says when it was taken (ISO 8601); pg_stat_replication has byte
// lag beside time lag for each level. One HTTP request, then exit; nothing to stop.

import { Errors } from '../errors.js';

export interface StatusCliOptions {
  url: string;
  json?: boolean;
}

/** A row of /status's `replication`: its LSNs are already X/X text (src/cli/http-endpoint.ts formats them). */
interface StatusRow {
  pid: number;
  application_name: string;
  client_addr: string | null;
  state: string;
  sent_lsn: string | null;
  write_lsn: string | null;
  flush_lsn: string | null;
  replay_lsn: string | null;
  write_lag_ms: number | null;
  flush_lag_ms: number | null;
  replay_lag_ms: number | null;
  write_lag_bytes: number | null;
  flush_lag_bytes: number | null;
  replay_lag_bytes: number | null;
  sync_priority: number;
  sync_state: string;
  reply_time: string | null;
}

/** A row of /status's `slots` (restart_lsn as X/X text). */
interface SlotRow {
  slot_name: string;
  temporary: boolean;
  active: boolean;
  active_pid: number | null;
  restart_lsn: string | null;
  wal_status: string | null;
  safe_wal_size: number | null;
}

/** Fixed-width table, psql style. */
function formatTable(headers: string[], rows: Array<Array<string | number | boolean | null>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null ? '' : String(c))));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => ' ' + r.map((c, i) => c.padEnd(w[i]!)).join(' | ');
  return [line(headers), '-' + w.map((n) => '-'.repeat(n)).join('-+-') + '-', ...cells.map(line), `(${rows.length} row${rows.length === 1 ? '' : 's'})`].join('\n');
}

const ms = (v: number | null) => (v === null ? null : v.toFixed(3));

/** The report: when it was taken, the primary's positions, pg_stat_replication (byte lag beside time lag per level), pg_replication_slots. */
export function formatStatus(s: Record<string, unknown>, now: Date): string {
  const repl = (s.replication as StatusRow[]) ?? [];
  const slots = (s.slots as SlotRow[]) ?? [];
  const out: string[] = [];
  out.push(`time ${now.toISOString()}  system ${String(s.systemIdentifier)}  timeline ${String(s.timeline)}  insert ${String(s.insertLsn)}  flush ${String(s.flushLsn)}`);
  out.push(`synchronous_standby_names = '${String(s.synchronousStandbyNames ?? '')}'${s.syncDegraded ? '  (DEGRADED: commits are local only)' : ''}`);
  out.push('');
  out.push(
    formatTable(
      ['pid', 'application_name', 'client_addr', 'state', 'sent_lsn', 'write_lsn', 'flush_lsn', 'replay_lsn', 'write_lag_bytes', 'write_lag_ms', 'flush_lag_bytes', 'flush_lag_ms', 'replay_lag_bytes', 'replay_lag_ms', 'sync_priority', 'sync_state'],
      repl.map((r) => [r.pid, r.application_name, r.client_addr, r.state, r.sent_lsn, r.write_lsn, r.flush_lsn, r.replay_lsn, r.write_lag_bytes, ms(r.write_lag_ms), r.flush_lag_bytes, ms(r.flush_lag_ms), r.replay_lag_bytes, ms(r.replay_lag_ms), r.sync_priority, r.sync_state]),
    ),
  );
  out.push('');
  out.push(
    formatTable(
      ['slot_name', 'temporary', 'active', 'active_pid', 'restart_lsn', 'wal_status', 'safe_wal_size'],
      slots.map((r) => [r.slot_name, r.temporary ? 't' : 'f', r.active ? 't' : 'f', r.active_pid, r.restart_lsn, r.wal_status, r.safe_wal_size]),
    ),
  );
  return out.join('\n');
}

export async function runStatus(o: StatusCliOptions): Promise<void> {
  const base = o.url.replace(/\/+$/, '').replace(/\/(metrics|status)$/, '');
  let res: Response;
  try {
    res = await fetch(`${base}/status`);
  } catch (e) {
    throw Errors.connectionFailure(`could not reach ${base}/status: ${(e as Error).message}`);
  }
  if (res.status !== 200) throw Errors.connectionFailure(`${base}/status answered HTTP ${res.status}`);
  const s = (await res.json()) as Record<string, unknown>;
  console.log(o.json ? JSON.stringify(s, null, 2) : formatStatus(s, new Date()));
}
