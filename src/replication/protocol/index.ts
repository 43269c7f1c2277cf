// Public surface of the sans-I/O replication protocol core (PostgreSQL 15, both sides) and its thin
// TCP client. Importers: the walsender network adapter (ReplicationServerConn), the walreceiver
// (connectReplication / ReplicationClientConn), the deterministic simulator (everything but
// tcp-client). Nothing here starts threads or timers; see each module's header.

export * from './frames.js';
export * from './messages.js';
export * from './commands.js';
export * from './scram.js';
export * from './hba.js';
export * from './server-conn.js';
export * from './client-conn.js';
export * from './tcp-client.js';
