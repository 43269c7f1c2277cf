// `walstream rejoin --data DIR --primary CONNINFO [--rebuild-if-diverged]`: make an old primary's
// (or a standby's) data directory a standby of the new primary after a failover, then stop. Opens
// it as a standby (src/standby/rejoin.ts checks its WAL against the new primary's timeline
// history), waits until it is consistent, prints one JSON line with what was found and done, and
// closes it cleanly ("shut down in recovery"): `walstream standby --data DIR` then runs it. A
// directory that wrote past the fork point is refused (one error line naming the fork point and
// its end of WAL) unless --rebuild-if-diverged, which moves it aside (the path is printed) and
// takes a base backup of the new primary. Runs in its own short-lived process; owns the Standby.

import { Standby } from '../standby/standby.js';
import { lsnToString } from '../wal/lsn.js';

export interface RejoinCliOptions {
  data: string;
  primary: string;
  rebuildIfDiverged?: boolean;
}

export async function runRejoin(o: RejoinCliOptions): Promise<void> {
  const s = await Standby.open({ dataDir: o.data, primaryConninfo: o.primary, readerThreads: 0, rebuildIfDiverged: o.rebuildIfDiverged === true });
  try {
    const r = s.rejoin;
    if (r?.movedAside) console.error(`LOG: moved the diverged data directory aside to "${r.movedAside}"; rebuilt from a base backup of the new primary`);
    console.log(JSON.stringify({
      rejoined: {
        dataDir: s.dataDir,
        wasPrimary: r?.wasPrimary ?? false,
        endOfWal: r ? lsnToString(r.endOfWal) : null,
        forkLsn: r?.forkLsn != null ? lsnToString(r.forkLsn) : null,
        diverged: r?.diverged ?? false,
        movedAside: r?.movedAside ?? null,
        rebuilt: s.baseBackup !== null,
        timeline: s.timeline,
        replayLsn: lsnToString(s.replayLsn),
      },
    }));
  } finally {
    await s.close();
  }
}
