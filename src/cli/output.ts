import { InvalidArgumentError } from 'commander';

/** Output helpers shared by commands: JSON on stdout, human text on stdout, diagnostics on stderr. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function formatPercent(fraction: number, digits = 2): string {
  return `${(100 * fraction).toFixed(digits)}%`;
}

/** Parse a positive integer option with a clear message. */
export function positiveInt(name: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got '${value}'`);
    }
    return n;
  };
}

/** One diagnostic line on stderr (stdout stays clean for --json). */
export function logLine(message: string): void {
  process.stderr.write(`${message}\n`);
}
