// Progress of a bench run on stderr. Runners announce their plan (how many steps) and each step as
// it starts; the command picks how that is shown: a cli-progress bar on a TTY, plain lines (one per
// step, and one every PLAIN_HEARTBEAT_MS while a step runs) otherwise, nothing with --json.

import cliProgress from 'cli-progress';

/** What a runner calls. Every method is optional to call; the default hook does nothing. */
export interface BenchProgress {
  /** Total number of steps the run will announce. */
  plan(steps: number): void;
  /** A step starts (label: what it measures). */
  step(label: string): void;
}

export const noProgress: BenchProgress = { plan: () => undefined, step: () => undefined };

/** While a step runs without a TTY, a "still running" line this often, ms. */
const PLAIN_HEARTBEAT_MS = 15_000;

export interface ProgressReporter extends BenchProgress {
  /** The run finished (or failed): stop the bar or the heartbeat. */
  done(): void;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A reporter for `walstream bench <name>` writing to `stream`. */
export function progressReporter(name: string, opts: { quiet: boolean; stream?: NodeJS.WriteStream }): ProgressReporter {
  if (opts.quiet) return { ...noProgress, done: () => undefined };
  const stream = opts.stream ?? process.stderr;
  const t0 = performance.now();
  let total = 0;
  let done = 0;
  let label = 'starting';
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream,
      format: `bench ${name} [{bar}] {value}/{total} steps | {elapsed} | {step}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 4,
      fps: 4,
    }, cliProgress.Presets.shades_classic);
    let started = false;
    const elapsed = () => secs(performance.now() - t0);
    const timer = setInterval(() => started && bar.update(done, { step: label, elapsed: elapsed() }), 500);
    timer.unref();
    return {
      plan(n) {
        total = n;
        if (!started) bar.start(n, 0, { step: label, elapsed: elapsed() });
        else bar.setTotal(n);
        started = true;
      },
      step(l) {
        if (!started) this.plan(Math.max(total, 1));
        if (label !== 'starting') done++;
        label = l;
        bar.update(Math.min(done, total), { step: l, elapsed: elapsed() });
      },
      done() {
        clearInterval(timer);
        if (started) {
          bar.update(total, { step: 'done', elapsed: elapsed() });
          bar.stop();
        }
      },
    };
  }
  let stepAt = t0;
  const line = (s: string) => stream.write(`walstream bench ${name}: ${s}\n`);
  const timer = setInterval(() => line(`still running step ${done}/${total}: ${label} (${secs(performance.now() - stepAt)} in this step, ${secs(performance.now() - t0)} in all)`), PLAIN_HEARTBEAT_MS);
  timer.unref();
  return {
    plan(n) {
      total = n;
    },
    step(l) {
      done++;
      label = l;
      stepAt = performance.now();
      line(`step ${done}/${total}: ${l} (${secs(stepAt - t0)} elapsed)`);
    },
    done() {
      clearInterval(timer);
      line(`finished in ${secs(performance.now() - t0)}`);
    },
  };
}
