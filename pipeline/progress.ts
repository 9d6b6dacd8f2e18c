/**
 * Human progress on stderr. Silent when quiet (tests) — stdout is reserved
 * for results (and, with --json, for exactly one JSON document).
 */
export type Progress = {
  info(message: string): void;
  warn(message: string): void;
};

export const silentProgress: Progress = { info() {}, warn() {} };

export function stderrProgress(): Progress {
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`;
  return {
    info: (m) => process.stderr.write(`${stamp()} ${m}\n`),
    warn: (m) => process.stderr.write(`${stamp()} warning: ${m}\n`),
  };
}
