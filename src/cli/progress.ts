/** Progress bars on stderr (never stdout, so `--json` output stays clean). */
import cliProgress from 'cli-progress';

export interface ProgressBar {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

/** A bar when stderr is a terminal; silent otherwise (CI logs, pipes). */
export function progressBar(label: string, total: number, fieldsFormat = ''): ProgressBar {
  if (!process.stderr.isTTY || process.env.CI) {
    return { update() {}, stop() {} };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} eta {eta_formatted}${fieldsFormat ? ' ' + fieldsFormat : ''}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    update(done, fields) {
      bar.update(done, fields);
    },
    stop() {
      bar.stop();
    },
  };
}
