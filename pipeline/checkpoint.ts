/**
 * Named points of backup, drill and restore where a fault test can step in.
 * With BACKUP_DRILL_PAUSE_AT=<name>[,<name>...] the process announces
 * "backup-drill: paused at <name> (pid N)" on stderr and stops itself
 * (SIGSTOP) when it reaches a listed point; the test then acts — kill -9,
 * fill the disk, stop a server — and sends SIGCONT. Without the variable a
 * checkpoint costs one lookup. Never set in production.
 */
export const PAUSE_ENV = "BACKUP_DRILL_PAUSE_AT";

export function checkpoint(name: string): void {
  const wanted = process.env[PAUSE_ENV];
  if (!wanted) return;
  if (!wanted.split(",").includes(name)) return;
  process.stderr.write(`backup-drill: paused at ${name} (pid ${process.pid})\n`);
  process.kill(process.pid, "SIGSTOP");
}
