// Child process of `walstream bench stream`: a replication client that starts streaming at
// argv[4] and discards everything until argv[5] bytes of stream have arrived, then prints the
// elapsed seconds (from connect) and exits. Measures a walsender without pg_receivewal's disk work.
// Usage: node stream-discard.js <port> <user> <startLsn> <bytes>

import net from 'node:net';
import { encodeQuery, encodeStartupMessage } from '../src/replication/protocol/messages.js';

const [port, user, start, bytesText] = process.argv.slice(2);
const need = Number(bytesText);
const t0 = performance.now();
const s = net.connect(Number(port), '127.0.0.1', () => {
  s.write(encodeStartupMessage({ user: user!, database: 'replication', replication: 'true', application_name: 'discard' }));
});
let phase: 'startup' | 'stream' = 'startup';
let got = 0;
let pending = Buffer.alloc(0);
s.on('data', (d: Buffer) => {
  if (phase === 'startup') {
    // Wait for ReadyForQuery ('Z' + len 5 + 'I') after authentication (trust), then start streaming.
    pending = Buffer.concat([pending, d]);
    const z = pending.indexOf(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]));
    if (z < 0) return;
    phase = 'stream';
    got = pending.length - (z + 6);
    s.write(encodeQuery(`START_REPLICATION ${start} TIMELINE 1`));
    return;
  }
  got += d.length;
  if (got >= need) {
    process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(6)}\n`);
    s.destroy();
    process.exit(0);
  }
});
s.on('error', (e) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
