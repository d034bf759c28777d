/**
 * Untrusted text in error messages. BlockdropError messages are one line; names and library
 * messages taken from a hostile file may hold line breaks, control characters or megabytes of text.
 */

/** Line breaks, other C0/C1 controls, and the Unicode line/paragraph separators. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function escapeChar(c: string): string {
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    default: return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  }
}

/** `text` with control characters escaped, cut to `max` characters (with '…') if longer. */
export function printable(text: string, max = 120): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return cut.replace(UNPRINTABLE, escapeChar);
}

/**
 * A whole message made safe to print on one line: control characters escaped, and if it is longer
 * than `max`, its middle elided (the start says what is wrong, the end what to do).
 */
export function oneLine(message: string, max = 600): string {
  const flat = message.replace(UNPRINTABLE, escapeChar);
  if (flat.length <= max) return flat;
  const half = Math.floor((max - 5) / 2);
  return `${flat.slice(0, half)} […] ${flat.slice(flat.length - half)}`;
}
