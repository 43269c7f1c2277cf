// Server sub-commands (`walstream primary`, `walstream standby`) run until SIGINT or SIGTERM, then
// close what they opened once. Used on the main thread of the CLI process; owns the two signal
// handlers until the first signal.

/** Resolves after the first SIGINT/SIGTERM once `close()` finished (exit code 1 if it failed). */
export function untilSignal(close: () => Promise<void>, onSignal: (sig: string) => void = () => undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      onSignal(sig);
      console.error(`received ${sig}: shutting down`);
      close().then(resolve, (e: unknown) => {
        console.error(`shutdown failed: ${(e as Error).message}`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
