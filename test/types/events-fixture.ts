// Type-level checks of Primary's and Standby's event maps, compiled by test/typed-events.test.ts
// (and by the build). Every `@ts-expect-error` line is a use that must not compile; the test also
// compiles this file with those directives removed and expects an error on each such line.

import type { Primary, Standby } from '../../src/index.js';

export function primaryListeners(p: Primary): void {
  p.on('checkpoint', (e) => {
    const redo: number = e.redo;
    const shutdown: boolean = e.shutdown;
    void [redo, shutdown];
  });
  p.on('syncStateChanged', (e) => void e.previousSyncState);
  p.once('close', () => undefined);
  // @ts-expect-error a misspelt payload field
  p.on('checkpoint', (e) => e.lsnn);
  // @ts-expect-error a misspelt event name
  p.on('checkpont', () => undefined);
  // @ts-expect-error a payload field of the wrong type
  p.on('checkpoint', (e) => e.shutdown.toFixed());
  // @ts-expect-error an emit without the payload's fields
  p.emit('checkpoint', { lsn: 1 });
  // @ts-expect-error a listener expecting arguments the event does not have
  p.on('close', (reason: string) => void reason);
  // @ts-expect-error a standby's event on a primary
  p.on('walreceiverConnected', () => undefined);
}

export function standbyListeners(s: Standby): void {
  s.on('walreceiverDisconnected', (e) => void (e.message ?? e.flushedLsn));
  s.on('walreceiverStateChanged', (e) => void [e.state, e.previousState]);
  s.on('timeline', (e) => void [e.tli, e.prevTli, e.switchpoint]);
  // @ts-expect-error a misspelt payload field
  s.on('timeline', (e) => e.prevTLI);
  // @ts-expect-error a state PostgreSQL's pg_stat_wal_receiver does not have
  s.on('walreceiverStateChanged', (e) => e.state === 'connected');
  // @ts-expect-error a misspelt event name
  s.off('restartpoints', () => undefined);
  // @ts-expect-error a primary's event on a standby
  s.on('checkpoint', () => undefined);
}
