// fd parking: closing a stale socket handle whose file descriptor another thread already closed,
// without ever closing a descriptor that belongs to someone else.
//
// Why: the primary's thread accepts a replication connection and hands its fd to a walsender
// worker (src/replication/server.ts). Node 20 has no dup(), so the accepting thread's handle and
// the worker's socket share one descriptor; the worker closes it when the connection ends. The
// accepting thread's handle must still be released (each one holds a libuv handle and ~1 KB of
// heap: a reconnect flood would grow memory without bound), but releasing a handle closes its fd
// number, which by then may belong to another file of this process.
//
// How: the kernel gives every new descriptor the lowest free number. Open placeholders
// (/dev/null) until one gets the stale handle's number: that number is then ours, so closing the
// handle closes only the placeholder. If a placeholder gets a higher number first, the number is
// in use elsewhere: nothing is closed, and the caller retries later (after the next descriptor
// is freed). The other placeholders are closed on the way out. Runs in one thread; other
// threads may open and close descriptors concurrently: a number we hold cannot be taken.

import fs from 'node:fs';

/** Placeholders opened at most per attempt (a stale number is normally the lowest free one). */
const FD_PARK_MAX_OPENS = 64;
const PLACEHOLDER_PATH = '/dev/null';

/**
 * Calls `closeHandle` (which must synchronously close descriptor `fd` and nothing else) while
 * `fd` is a placeholder opened here. Returns true if it did; false (nothing closed) if the number
 * is in use elsewhere or no placeholder could be opened.
 */
export function closeHandleOnParkedFd(fd: number, closeHandle: () => void, maxOpens = FD_PARK_MAX_OPENS): boolean {
  if (!Number.isInteger(fd) || fd < 0) return false;
  const held: number[] = [];
  try {
    for (let i = 0; i < maxOpens; i++) {
      const p = fs.openSync(PLACEHOLDER_PATH, 'r');
      if (p === fd) {
        closeHandle(); // closes the placeholder
        return true;
      }
      held.push(p);
      if (p > fd) return false;
    }
    return false;
  } catch {
    return false; // EMFILE and the like: retry later
  } finally {
    for (const p of held) fs.closeSync(p);
  }
}
