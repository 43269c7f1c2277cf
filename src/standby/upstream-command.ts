// One connection to a standby's upstream outside streaming (walrcv_exec-style commands: the
// base backup an empty directory gets, the timeline check of a rejoining directory). Used by
// Standby.open on the main thread before any worker starts; the connection (TCP, or the rings
// of an in-process primary) is closed when the callback settles.

import type { ResolvedStandbyOptions } from './options.js';
import type { UpstreamRunner } from './rejoin.js';
import { RingTransport, TcpTransport, type WalRcvConnection, type WalRcvTransport } from './transport.js';

/** A runner of `fn` on a fresh connection to the standby's upstream. */
export function upstreamRunner(options: ResolvedStandbyOptions): UpstreamRunner {
  return async <T>(fn: (conn: WalRcvConnection) => Promise<T>): Promise<T> => {
    const topts = {
      connectTimeoutMs: options.connectTimeoutMs,
      commandTimeoutMs: options.walReceiverTimeoutMs > 0 ? options.walReceiverTimeoutMs : options.connectTimeoutMs,
      maxMessageBytes: options.maxMessageBytes,
      maxBufferedBytes: options.walReceiverMaxBufferedBytes,
    };
    const listener = options.inProcess?.inProcessListener() ?? null;
    const transport: WalRcvTransport = listener !== null
      ? new RingTransport(listener, options.primaryConninfo, { ...topts, ringBytes: options.walReceiverRingBytes, spinIterations: 0 })
      : new TcpTransport(options.primaryConninfo, topts);
    try {
      const conn = await transport.connect();
      try {
        return await fn(conn);
      } finally {
        conn.disconnect();
      }
    } finally {
      listener?.close();
    }
  };
}
