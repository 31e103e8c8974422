/**
 * The deepest nesting of arrays and objects a frame may have by default: a frame object is
 * depth 1, so a `publish` may carry `data` nested 63 levels deep. Deep enough for any real
 * document, shallow enough that no recursive walk over a decoded frame (JSON.stringify,
 * a validator, an app's own code) can run out of stack.
 * @default 64
 */
export const DEFAULT_MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Whether the JSON text `text` nests arrays/objects deeper than `maxDepth`. A linear scan of
 * the text (brackets inside strings do not count), done before `JSON.parse` so a hostile frame
 * costs no object tree. Text shorter than `maxDepth + 1` characters cannot be too deep and is
 * not scanned. Invalid JSON is not judged here (JSON.parse refuses it).
 */
export function exceedsJsonDepth(text: string, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): boolean {
  if (text.length <= maxDepth) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
  }
  return false;
}
