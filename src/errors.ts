/**
 * An error meant for the person running blockdrop: its message is one line that says what is wrong
 * and what to do. The CLI prints only the message (no stack) and exits non-zero.
 */
export class BlockdropError extends Error {
  override readonly name = 'BlockdropError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function isBlockdropError(e: unknown): e is BlockdropError {
  return e instanceof BlockdropError;
}
