// The message a standby posts on a primary's in-process listener port (ReplicationServer's
// inProcessListener) to open a replication connection over two SharedArrayBuffer rings. Shared by
// both ends: the standby's RingTransport builds it, the replication server accepts it. Types only.

import type { MessagePort } from 'node:worker_threads';
import type { RingPairHandle } from './ring.js';

/** What a standby's thread posts on an in-process listener port to connect. */
export interface InProcessConnectRequest {
  type: 'connect';
  rings: RingPairHandle;
  /** The connection's port (transferred): its 'close' tells either end that the other is gone. */
  peer: MessagePort;
}
