// A reader thread of the read-your-writes example (service.ts starts READER_THREADS of them). It
// opens the standby's store with openReader(workerData.handle) and answers read requests posted by
// the HTTP thread: { id, table, key, lsn, timeoutMs } → wait until the standby has replayed `lsn`
// (the client's last commit), then read → { id, found, value, replayLsn } or { id, error }. Reads
// are done in this thread, in the shared store itself: no copy, no round trip to the standby.
// Stops when the service terminates it.

import { parentPort, workerData } from 'node:worker_threads';
import { openReader, type ReaderHandle, WalstreamError } from 'walstream';

export interface ReadRequest {
  id: number;
  table: string;
  key: string;
  /** wait until replay has passed this LSN first (0: read at once) */
  lsn: number;
  timeoutMs: number;
}

export type ReadReply =
  | { id: number; found: boolean; value: unknown; replayLsn: number }
  | { id: number; error: { code: string; message: string } };

const reader = openReader((workerData as { handle: ReaderHandle }).handle);
const port = parentPort!;

port.on('message', (req: ReadRequest) => {
  const read = (replayLsn: number): ReadReply => {
    const value = reader.get(req.table, req.key);
    return { id: req.id, found: value !== undefined, value, replayLsn };
  };
  const fail = (e: unknown): ReadReply => {
    const code = e instanceof WalstreamError ? e.code : 'WS_INTERNAL';
    return { id: req.id, error: { code, message: (e as Error)?.message ?? String(e) } };
  };
  try {
    if (req.lsn <= reader.replayLsn) {
      port.postMessage(read(reader.replayLsn));
      return;
    }
    reader.waitForReplay(req.lsn, req.timeoutMs).then(
      (lsn) => {
        try {
          port.postMessage(read(lsn));
        } catch (e) {
          port.postMessage(fail(e));
        }
      },
      (e: unknown) => port.postMessage(fail(e)),
    );
  } catch (e) {
    port.postMessage(fail(e));
  }
});
