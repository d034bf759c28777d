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

/**
 * Parse a probability option with a clear message: [0, 1], or (0, 1) with `open` (a policy threshold, where
 * 0 and 1 would keep every block or none whatever the policy says).
 */
export function probability(name: string, { open = false }: { open?: boolean } = {}): (value: string) => number {
  const range = open ? 'strictly between 0 and 1' : 'in [0, 1]';
  return (value: string) => {
    const p = Number(value);
    if (!(open ? p > 0 && p < 1 : p >= 0 && p <= 1)) throw new InvalidArgumentError(`${name} must be a number ${range}, got '${value}'`);
    return p;
  };
}

/** A comma-separated list of probabilities (see `probability`). */
export function probabilityList(name: string, options: { open?: boolean } = {}): (value: string) => number[] {
  const one = probability(name, options);
  return (value: string) => value.split(',').map((v) => one(v.trim()));
}

/** One diagnostic line on stderr (stdout stays clean for --json). */
export function logLine(message: string): void {
  process.stderr.write(`${message}\n`);
}
