/**
 * Errors meant for the user. Engines throw these (or wrap lower errors with
 * `{ cause }`); only cli.ts turns them into a message and an exit code.
 */

/** The kinds of failure, each mapped to one documented exit code in cli.ts. */
export type FailureKind =
  | "operation" // a tool failed, a service is unreachable: exit 1
  | "input" // bad config, flags or references: exit 2
  | "integrity" // checksum mismatch, a drill check failed: exit 3
  | "locked"; // another run holds the lock: exit 4

export class BackupDrillError extends Error {
  readonly kind: FailureKind;
  constructor(kind: FailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = "BackupDrillError";
  }
}

/** Bad input: names the field, flag or file at fault. Exit 2. */
export class UserError extends BackupDrillError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("input", message, options);
    this.name = "UserError";
  }
}

/** A tool, server or filesystem operation failed. Exit 1. */
export class OperationError extends BackupDrillError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("operation", message, options);
    this.name = "OperationError";
  }
}

/** A wait ran past its deadline: a stalled tool, a phase over time, a server that did not answer. Exit 1. */
export class TimeoutError extends OperationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TimeoutError";
  }
}

/** The data is not what it claims to be. Exit 3. */
export class IntegrityError extends BackupDrillError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("integrity", message, options);
    this.name = "IntegrityError";
  }
}

/** Another run holds the output root's lock. Exit 4. */
export class LockedError extends BackupDrillError {
  constructor(message: string) {
    super("locked", message);
    this.name = "LockedError";
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
