/**
 * Preloaded (`node --expose-gc --import gc-hook.js`) into every server the bench starts, so
 * the `conns` scenario can ask any of them — Herald, bare ws, Socket.IO — to collect garbage
 * and report its memory over the IPC channel, without a bench hook in the server itself.
 */
const gc = (globalThis as { gc?: () => void }).gc;

process.on('message', (msg: unknown) => {
  if (typeof msg !== 'object' || msg === null || (msg as { type?: string }).type !== 'bench:gc') return;
  // Two passes: the first may only schedule weak callbacks and finalizers.
  gc?.();
  gc?.();
  process.send?.({ type: 'bench:mem', gc: gc !== undefined, ...process.memoryUsage() });
});
// The listener must not keep a server alive after it closed its sockets.
process.channel?.unref();
