// BaseBackupSender: BASE_BACKUP on a walsender (PostgreSQL's basebackup.c, minimal): the control
// file, the version file and the checkpoint snapshot, as one tar stream (src/replication/tar.ts)
// in a CopyOutResponse. Run by the walsender worker that got the command; the primary's thread
// does the checkpoint, pins WAL from its redo point and opens the files (ReplicationServer
// startBackup), answering the worker's `backupStart` port message. Owns the pending answer and the
// backup-running flag. Stops: when the stream is sent, or with an error (the connection closed,
// shutdown, an unsupported option); either way `backupDone` lets the primary close its files.

import fs from 'node:fs';
import { Errors, WalstreamError } from '../errors.js';
import { assert } from '../util/assert.js';
import { lsnToString, type Lsn } from '../wal/lsn.js';
import type { BaseBackupOptions } from './protocol/commands.js';
import { ReplicationColumns } from './protocol/messages.js';
import type { ReplicationServerConn } from './protocol/server-conn.js';
import type { ByteSocket } from './ring-socket.js';
import { tarEntryBytes, tarHeader, tarPadding, tarTrailer } from './tar.js';
import type { BackupFile, FromPrimary, ToPrimary } from './walsender-messages.js';
import { WalSndState, type WalSndStateValue } from './walsndctl.js';

/** Bytes per CopyData of a base backup (PostgreSQL's TAR_SEND_SIZE is 32 kB). */
const BACKUP_CHUNK_BYTES = 64 * 1024;
/** The tar stream's end: two zero blocks of 512 bytes. */
const TAR_TRAILER_BYTES = 2 * 512;
/** CopyData kind byte of a BASE_BACKUP archive chunk ('d'). */
const BACKUP_COPY_DATA = 0x64;

/** What a base backup needs from its walsender. */
export interface BaseBackupHost {
  readonly conn: ReplicationServerConn;
  readonly socket: ByteSocket;
  /** Bytes queued in the socket before the stream waits for 'drain'. */
  readonly maxQueuedBytes: number;
  readonly stopRequested: boolean;
  flushedLsn(): Lsn;
  post(m: ToPrimary): void;
  setState(s: WalSndStateValue): void;
  /** After the command ended (either way): answer a shutdown that came meanwhile. */
  afterBackup(): void;
}

export class BaseBackupSender {
  private _running = false;
  private pendingReply: ((m: FromPrimary) => void) | null = null;

  constructor(private readonly host: BaseBackupHost) {}

  get running(): boolean {
    return this._running;
  }

  /** The primary's answer to `backupStart`; false if no backup waits for one. */
  onPrimaryReply(m: FromPrimary): boolean {
    const r = this.pendingReply;
    if (r === null) return false;
    this.pendingReply = null;
    r(m);
    return true;
  }

  /** Send the backup; resolves after CommandComplete (ReadyForQuery included), rejects on failure. */
  async run(o: BaseBackupOptions): Promise<void> {
    const host = this.host;
    const conn = host.conn;
    if (o.target !== null && o.target !== 'client') throw Errors.featureNotSupported(`backup target "${o.target}" is not supported by walstream`);
    if (o.compression !== 'none') throw Errors.featureNotSupported('compressed base backups are not supported by walstream');
    if (o.manifest !== 'no') throw Errors.featureNotSupported('backup manifests are not supported by walstream');
    if (o.includeWal) throw Errors.featureNotSupported('BASE_BACKUP WAL is not supported by walstream: stream WAL with START_REPLICATION');
    if (host.stopRequested) throw Errors.adminShutdown();
    this._running = true;
    host.setState(WalSndState.BACKUP);
    let files: BackupFile[] = [];
    try {
      const reply = await new Promise<FromPrimary>((resolve) => {
        this.pendingReply = resolve;
        host.post({ type: 'backupStart', fast: o.fastCheckpoint });
      });
      if (reply.type === 'backupFailed') throw new WalstreamError(reply.code, reply.sqlstate, reply.message);
      assert(reply.type === 'backupStarted', 'unexpected reply to backupStart');
      files = reply.files;
      if (conn.closed) return;
      let tarBytes = TAR_TRAILER_BYTES;
      for (const f of files) tarBytes += tarEntryBytes(f.size);
      conn.sendResultSet(ReplicationColumns.baseBackupXlogRecPtr, [[lsnToString(reply.redoLsn), String(reply.tli)]], 'SELECT');
      conn.sendResultSet(ReplicationColumns.baseBackupTablespaces, [[null, null, String(Math.ceil(tarBytes / 1024))]], 'SELECT');
      conn.enterCopyOut();
      conn.sendCopyData(Buffer.from('nbase.tar\0\0', 'latin1'));
      for (const f of files) await this.sendFile(f);
      await this.sendBytes(tarTrailer());
      if (conn.closed) return;
      conn.endCopyOut();
      conn.sendResultSet(ReplicationColumns.baseBackupXlogRecPtr, [[lsnToString(host.flushedLsn()), String(reply.tli)]], 'SELECT');
      conn.sendCommandComplete('BASE_BACKUP');
      host.setState(WalSndState.STARTUP);
      conn.sendReadyForQuery();
    } finally {
      if (files.some((f) => f.fd !== undefined)) host.post({ type: 'backupDone' });
      this._running = false;
      host.afterBackup();
    }
  }

  /** One tar member: header, contents (given, or pread from the primary's fd), padding. */
  private async sendFile(f: BackupFile): Promise<void> {
    await this.sendBytes(tarHeader({ name: f.name, size: f.size, mtimeSec: f.mtimeSec }));
    if (f.data) {
      await this.sendBytes(f.data);
    } else {
      assert(f.fd !== undefined, 'backup file without data or fd');
      let pos = 0;
      while (pos < f.size) {
        const chunk = Buffer.allocUnsafe(Math.min(BACKUP_CHUNK_BYTES, f.size - pos));
        const r = fs.readSync(f.fd, chunk, 0, chunk.length, pos);
        if (r !== chunk.length) throw Errors.internal(`checkpoint snapshot "${f.name}" changed size during the backup`);
        pos += r;
        await this.sendBytes(chunk);
      }
    }
    await this.sendBytes(tarPadding(f.size));
  }

  /** CopyData chunks of at most BACKUP_CHUNK_BYTES; waits for 'drain' above maxQueuedBytes. */
  private async sendBytes(b: Uint8Array): Promise<void> {
    const { conn, socket } = this.host;
    for (let p = 0; p < b.length; p += BACKUP_CHUNK_BYTES) {
      if (conn.closed || conn.state !== 'copyOut') throw Errors.connectionFailure('base backup connection closed');
      const part = b.subarray(p, Math.min(b.length, p + BACKUP_CHUNK_BYTES));
      const payload = Buffer.allocUnsafe(1 + part.length);
      payload[0] = BACKUP_COPY_DATA;
      payload.set(part, 1);
      conn.sendCopyData(payload);
      if (socket.writableLength >= this.host.maxQueuedBytes) {
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
    }
  }
}
