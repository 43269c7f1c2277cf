// walstream runs no native code. msgpackr (the value codec) loads an optional native accelerator,
// msgpackr-extract (a .node addon that npm installs with it when it can), while its module is being
// evaluated, unless MSGPACKR_NATIVE_ACCELERATION_DISABLED is "true" in that thread's environment.
// This module sets it. It must be evaluated before msgpackr in every thread, so it is the first
// import of the entry points (src/index.ts, src/cli/main.ts) and of every module that imports
// msgpackr (src/util/codec.ts, src/util/msgpackr.ts); worker threads also start with a copy of the
// environment of the thread that created them. Side effect on the embedding process: its own
// msgpackr imports run without the accelerator too (the encoded bytes are the same).

process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED = 'true';

export {};
