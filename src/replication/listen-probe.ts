// Can this process listen on host:port? A probe for Primary.open and `walstream primary`, run
// before anything touches a data directory: it binds the address exclusively and releases it at
// once, turning EADDRINUSE and friends into one error naming the option. Another process could
// still take the port between the probe and the listener's own bind; Primary.open undoes an
// initialisation when that bind fails.

import net from 'node:net';
import { Errors } from '../errors.js';

/** Why a bind failed, for people. */
function whyNot(e: NodeJS.ErrnoException): string {
  if (e.code === 'EADDRINUSE') return 'is already in use';
  if (e.code === 'EACCES') return 'needs privileges this process lacks';
  if (e.code === 'EADDRNOTAVAIL') return 'is not an address of this machine';
  return `cannot be listened on (${e.code ?? e.message})`;
}

/** Reject with WS_INVALID_OPTION naming `option` when host:port cannot be listened on; port 0 always can. */
export async function assertCanListen(option: string, host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => reject(Errors.invalidOption(option, `${host}:${port} ${whyNot(e)}`)));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}
