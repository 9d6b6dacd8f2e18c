import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("..", import.meta.url));
export const BIN = fileURLToPath(new URL("../bin/backup-drill.js", import.meta.url));

export type CliResult = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; pid: number };

export type RunOptions = { env?: Record<string, string>; cwd?: string; onSpawn?: (pid: number) => void };

/** Run the real CLI as a child process. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return runProgram(process.execPath, [BIN, ...args], opts);
}

/** Run any program from the repository root, collecting its output. */
export function runProgram(file: string, args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd ?? REPO,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, pid: child.pid! }));
  });
}
