// node-gyp-build ships no types: it returns the add-on's exports, typed by the caller.
declare module 'node-gyp-build' {
  export default function load(dir: string): unknown;
}
