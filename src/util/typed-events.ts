// A typed view of node:events' EventEmitter: an event map (event name → listener arguments) fixes
// which names `on`/`once`/`off`/`emit` accept and what their listeners receive, so a misspelt
// event or payload field is a compile error (`primary.on('checkpoint', (e) => e.lsnn)` does not
// compile). At run time it is EventEmitter itself: no wrapper, nothing to stop. Primary's map is
// src/primary/primary-events.ts, Standby's src/standby/standby-events.ts.

import { EventEmitter } from 'node:events';

/** An event map: each event's listener arguments, as a tuple. */
export type EventMap<E> = { [K in keyof E]: unknown[] };

type Listener<A extends unknown[]> = (...args: A) => void;

type NamingEvents = 'on' | 'addListener' | 'prependListener' | 'once' | 'prependOnceListener' | 'off' | 'removeListener' | 'removeAllListeners' | 'emit' | 'listenerCount' | 'listeners' | 'rawListeners';

/** EventEmitter with the methods that name events typed by the map `E` (still an EventEmitter: `events.once(x, 'close')` takes it). */
export interface TypedEventEmitter<E extends EventMap<E>> extends Omit<EventEmitter, NamingEvents> {
  on<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  addListener<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  prependListener<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  once<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  prependOnceListener<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  off<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  removeListener<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this;
  removeAllListeners(event?: keyof E & string): this;
  emit<K extends keyof E & string>(event: K, ...args: E[K]): boolean;
  listenerCount(event: keyof E & string): number;
  listeners<K extends keyof E & string>(event: K): Array<Listener<E[K]>>;
  rawListeners<K extends keyof E & string>(event: K): Array<Listener<E[K]>>;
}

/**
 * EventEmitter as a generic base class: `class Primary extends TypedEventEmitter<PrimaryEvents>`.
 * The cast only narrows the types; every call goes to EventEmitter unchanged.
 */
export const TypedEventEmitter = EventEmitter as unknown as new <E extends EventMap<E>>() => TypedEventEmitter<E>;
