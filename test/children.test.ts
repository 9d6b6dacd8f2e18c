import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { retireWatchdog, spawnSupervised } from "../pipeline/runners/children.js";
import { childrenOf, commandLine } from "./procs.js";

const watchdogs = () => childrenOf(process.pid).filter((pid) => commandLine(pid).endsWith("runners/watchdog.cjs"));

describe("supervised children", () => {
  it("retireWatchdog returns only once the watchdog has exited, and it takes a child still registered with it", async () => {
    const before = new Set(watchdogs());
    const child = spawnSupervised("sleep", ["60"], { stdio: "ignore" });
    const killed = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    const started = Date.now();
    let watchdog: number | undefined;
    while (watchdog === undefined && Date.now() - started < 5000) {
      watchdog = watchdogs().find((pid) => !before.has(pid));
      if (watchdog === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect(watchdog, "the first supervised spawn starts a watchdog").toBeGreaterThan(0);

    await retireWatchdog();
    // Gone (and reaped) at the moment retireWatchdog resolves: a CLI that exits right after leaves nothing behind.
    expect(existsSync(`/proc/${watchdog}`)).toBe(false);
    expect(await killed).toBe("SIGKILL");
    await retireWatchdog(); // a second call has nothing to wait for
  });
});
