// The replication I/O thread: one worker that terminates every replication TCP connection of a
// primary (PostgreSQL's postmaster accepts and the backend owns the socket; here one thread owns
// all of them, so no descriptor is ever shared between threads). Started by ReplicationServer
// (src/replication/server.ts). Owns the listening socket and every accepted socket; each
// accepted socket is bridged to the two SharedArrayBuffer rings of a new connection
// (ring.ts, ring-socket.ts), which the primary's thread hands to a walsender worker exactly like
// an in-process standby's. Stops: {type:'stopListening'} closes the listener; {type:'stop'} (after
// the walsenders exited) ends the remaining bridges once their bytes went out, or destroys them
// after BRIDGE_DRAIN_TIMEOUT_MS; then the thread ends (no handles left).
//
// DEV DOCS — one bridge (threads: this one, the walsender worker; the rings are SPSC):
//   walsender → client: the walsender builds each message in a record of the toClient ring and
//     publishes HEAD. This thread reads the record (RingSocket, zero-copy) and passes a view of
//     the ring memory straight to socket.write(); the records read in one wake-up are corked
//     until the next tick, so they leave in one writev. A record is released (TAIL) only in its
//     write's callback, i.e. once the kernel has the bytes. So the ring is the walsender's whole
//     send buffer: its writableLength counts what the kernel has not taken yet, and its 'drain'
//     (backpressure) follows the TCP connection. Nothing is copied on this path.
//   client → walsender: socket 'data' is copied into records of the toServer ring (replies and
//     commands are small); a full ring pauses the socket until the walsender releases records.
//   End and errors: either side's end ends the other (no half-open connections); a socket error
//     or the walsender thread's end (the connection's MessagePort closes) destroys both.

import net from 'node:net';
import { isMainThread, MessageChannel, type MessagePort, workerData } from 'node:worker_threads';
import { createRingPair, type RingPairHandle } from './ring.js';
import { RingSocket } from './ring-socket.js';

/** What the I/O thread is started with. */
export interface TcpBridgeConfig {
  kind: 'replication-tcp';
  host: string;
  /** 0 = an ephemeral port. */
  port: number;
  /** Capacity of each connection's walsender → client ring (bytes, a power of two). */
  toClientRingBytes: number;
  control: MessagePort;
}

/** I/O thread → primary's thread. */
export type FromTcpBridge =
  | { type: 'listening'; port: number }
  | { type: 'listenFailed'; code: string | undefined; message: string }
  | { type: 'serverError'; message: string }
  /** A new connection: hand rings and peer (transferred) to a walsender, or close them to refuse it. */
  | { type: 'accepted'; rings: RingPairHandle; peer: MessagePort; remoteAddress: string; remotePort: number };

/** Primary's thread → I/O thread. */
export type ToTcpBridge = { type: 'stopListening' } | { type: 'stop' };

/** After {type:'stop'}: how long bridges still holding bytes get to send them before they are destroyed. */
export const BRIDGE_DRAIN_TIMEOUT_MS = 2_000;

/** Smallest ring capacity whose high-water mark holds `maxQueuedBytes` besides two frames of `maxFrameBytes`. */
export function toClientRingBytesFor(maxQueuedBytes: number, maxFrameBytes: number): number {
  const need = Math.max(maxQueuedBytes + 2 * (maxFrameBytes + 64), 4 * (maxFrameBytes + 64));
  let cap = 64 * 1024;
  while (cap < need) cap *= 2;
  return cap;
}

class TcpBridgeThread {
  private readonly server: net.Server;
  private readonly bridges = new Set<() => void>();
  private stopping = false;

  constructor(private readonly cfg: TcpBridgeConfig) {
    const control = cfg.control;
    this.server = net.createServer({ noDelay: true }, (s) => this.onConnection(s));
    this.server.once('error', (e: NodeJS.ErrnoException) => {
      this.post({ type: 'listenFailed', code: e.code, message: e.message });
      control.close();
    });
    this.server.listen(cfg.port, cfg.host, () => {
      this.server.removeAllListeners('error');
      this.server.on('error', (e) => this.post({ type: 'serverError', message: e.message }));
      const a = this.server.address();
      this.post({ type: 'listening', port: typeof a === 'object' && a !== null ? a.port : cfg.port });
    });
    control.on('message', (m: ToTcpBridge) => {
      if (m.type === 'stopListening') this.server.close();
      else this.stop();
    });
  }

  private post(m: FromTcpBridge, transfer: MessagePort[] = []): void {
    try {
      this.cfg.control.postMessage(m, transfer);
    } catch {
      /* the primary's thread is gone */
    }
  }

  private onConnection(sock: net.Socket): void {
    if (this.stopping) {
      sock.destroy();
      return;
    }
    const rings = createRingPair(this.cfg.toClientRingBytes);
    const { port1, port2 } = new MessageChannel();
    const ring = new RingSocket({ side: 'client', rings, peer: port1, zeroCopy: true, keepAlive: false });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.bridges.delete(destroy);
      if (this.stopping && this.bridges.size === 0) this.cfg.control.close();
    };
    const destroy = () => {
      sock.destroy();
      ring.destroy();
    };
    this.bridges.add(destroy);
    // walsender → client, zero-copy: the record goes back to the walsender when the kernel has it.
    // The records one wake-up finds (a keepalive and XLogData, the messages of a reply) are
    // corked into one writev: one syscall and one segment for the standby to wake up for.
    let corked = false;
    const uncork = () => {
      corked = false;
      sock.uncork();
    };
    ring.on('data', (view: Uint8Array) => {
      const end = ring.readPosition;
      if (!corked) {
        corked = true;
        sock.cork();
        process.nextTick(uncork);
      }
      sock.write(view, () => ring.release(end));
    });
    ring.on('end', () => sock.end());
    ring.on('error', () => sock.destroy());
    ring.on('close', () => {
      if (!sock.destroyed && !sock.writableEnded) sock.end();
    });
    // client → walsender (copied into the ring; a full ring pauses the socket).
    sock.on('data', (chunk: Buffer) => {
      if (!ring.write(chunk) && !ring.destroyed) {
        sock.pause();
        ring.once('drain', () => sock.resume());
      }
    });
    sock.on('end', () => ring.end());
    sock.on('error', () => ring.destroy());
    sock.on('close', () => {
      ring.destroy();
      finish();
    });
    this.post({ type: 'accepted', rings, peer: port2, remoteAddress: sock.remoteAddress ?? '', remotePort: sock.remotePort ?? 0 }, [port2]);
  }

  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.server.close();
    if (this.bridges.size === 0) {
      this.cfg.control.close();
      return;
    }
    setTimeout(() => {
      for (const d of [...this.bridges]) d();
    }, BRIDGE_DRAIN_TIMEOUT_MS).unref();
  }
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === 'replication-tcp') {
  new TcpBridgeThread(workerData as TcpBridgeConfig);
}
