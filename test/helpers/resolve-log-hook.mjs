// Module resolve hook (node:module register): appends every resolved URL to the file named by
// HERALD_TEST_RESOLVE_LOG, so a test can tell which modules a child process loaded (ESM has no
// require.cache). Runs on the loader thread; appendFileSync keeps each line whole.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (process.env.HERALD_TEST_RESOLVE_LOG) appendFileSync(process.env.HERALD_TEST_RESOLVE_LOG, `${result.url}\n`);
  return result;
}
