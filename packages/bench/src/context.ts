import type { BenchOptions } from './options.js';

/** What a scenario gets from the runner. */
export interface Context {
  opts: BenchOptions;
  /** Prints a progress line (with the elapsed time of the run). */
  progress(message: string): void;
}
