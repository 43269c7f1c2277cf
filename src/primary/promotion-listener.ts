// A promotion's replication listener, started before its Primary exists: Standby.promote starts
// it first, so the replication I/O thread (and its prestarted walsenders) boot while the standby's
// workers stop, the rest of pg_wal is replayed and the new timeline is written — as PostgreSQL's
// postmaster is already listening when its startup process promotes. Runs on the standby's main
// thread. It owns the ReplicationServer until Primary.fromPromotion adopts it (the Primary then
// owns and stops it) or abort() stops it (the promotion failed first). Every connection is held
// (ReplicationServer holdConnections) until the adopting Primary has made the switch and
// releases them, so no walsender serves anything before the control file says "in production".

import type { Lsn } from '../wal/lsn.js';
import { assert } from '../util/assert.js';
import { ReplicationServer, type ReplicationHost, type ReplicationServerOptions } from '../replication/server.js';
import type { WalSourceHandle } from '../replication/wal-source.js';
import type { ResolvedPrimaryOptions } from './options.js';

/** The replication server options of a primary with these options (`hold`: connections wait for releaseConnections). */
export function replicationServerOptions(options: ResolvedPrimaryOptions, hold: boolean): ReplicationServerOptions {
  return {
    holdConnections: hold,
    host: options.host,
    port: options.port!,
    hba: options.hba,
    users: options.users,
    maxWalSenders: options.maxWalSenders,
    walSenderTimeoutMs: options.walSenderTimeoutMs,
    maxSendBytes: options.maxSendBytes,
    authenticationTimeoutMs: options.authenticationTimeoutMs,
    maxClientMessageBytes: options.maxClientMessageBytes,
    walSenderMaxQueuedBytes: options.walSenderMaxQueuedBytes,
    walSenderSpinMicros: options.walSenderSpinMicros,
    walSenderAsyncDelayMs: options.walSenderAsyncDelayMs,
    stageTrace: options.stageTrace,
    maxStartupConnections: Math.max(4, options.maxWalSenders),
    walSenderPrestart: Math.min(2, options.maxWalSenders),
  };
}

/**
 * The ReplicationHost of a listener whose Primary does not exist yet: WAL pins are kept until
 * attach() hands them to the Primary, events before it are dropped (no connection is served
 * before it), and everything else is the Primary's.
 */
class DeferredHost implements ReplicationHost {
  private target: ReplicationHost | null = null;
  private readonly early = new Map<() => Lsn | null, (() => void) | null>();

  constructor(readonly dataDir: string, readonly walDir: string) {}

  attach(p: ReplicationHost): void {
    assert(this.target === null, 'promotion listener: attached twice');
    this.target = p;
    for (const fn of this.early.keys()) this.early.set(fn, p.pinWal(fn));
  }

  private get t(): ReplicationHost {
    assert(this.target !== null, 'promotion listener: used before its primary exists');
    return this.target;
  }

  get walSource(): WalSourceHandle { return this.t.walSource; }
  get systemIdentifier(): string { return this.t.systemIdentifier; }
  get flushLsn(): Lsn { return this.t.flushLsn; }
  get slots() { return this.target?.slots ?? null; }
  get syncRep() { return this.target?.syncRep ?? null; }
  checkpoint(): Promise<void> { return this.t.checkpoint(); }
  checkpointInfo() { return this.t.checkpointInfo(); }

  pinWal(fn: () => Lsn | null): () => void {
    if (this.target !== null) return this.target.pinWal(fn);
    this.early.set(fn, null);
    return () => {
      this.early.get(fn)?.();
      this.early.delete(fn);
    };
  }

  readonly emit: ReplicationHost['emit'] = (event, ...args) => this.target?.emit(event, ...args) ?? false;
}

export class PromotionListener {
  private readonly host: DeferredHost;
  /** The listening server (rejects as ReplicationServer.listen does). */
  readonly server: Promise<ReplicationServer>;
  private adopted = false;

  constructor(options: ResolvedPrimaryOptions, walDir: string) {
    assert(options.port !== null, 'promotion listener without a port');
    this.host = new DeferredHost(options.dataDir, walDir);
    this.server = ReplicationServer.listen(this.host, replicationServerOptions(options, true));
    this.server.catch(() => undefined); // awaited by the adopter (or abort)
  }

  /** The Primary takes the listener over (before it writes END_OF_RECOVERY); it awaits `server` and releases the connections after its switch. */
  adopt(p: ReplicationHost): Promise<ReplicationServer> {
    this.adopted = true;
    this.host.attach(p);
    return this.server;
  }

  /** The promotion failed before a Primary adopted the listener: stop it. Idempotent. */
  async abort(): Promise<void> {
    if (this.adopted) return;
    this.adopted = true;
    const rs = await this.server.catch(() => null);
    await rs?.shutdownWalSenders(0);
  }
}
