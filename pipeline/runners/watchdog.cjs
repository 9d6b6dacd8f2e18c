// The watchdog of one backup-drill process (see children.ts). It reads lines
// "+<pgid> <starttime>" and "-<pgid>" on stdin; when stdin ends — the parent
// exited or was killed, even with SIGKILL — it kills every process group
// still registered, after checking that the group's leader (if it still
// exists) is the process that was registered, so a reused pid is never hit.
"use strict";
const { readFileSync } = require("node:fs");

const groups = new Map();

function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

let buffered = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  let i;
  while ((i = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    const m = /^([+-])(\d+)(?: (\d+))?$/.exec(line);
    if (!m) continue;
    if (m[1] === "+") groups.set(Number(m[2]), m[3]);
    else groups.delete(Number(m[2]));
  }
});
process.stdin.on("end", () => {
  for (const [pgid, start] of groups) {
    const now = startTime(pgid);
    // A leader that is gone leaves its group's id reserved while members live: still ours.
    if (now !== undefined && start !== undefined && now !== start) continue;
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // the group is gone already
    }
  }
  process.exit(0);
});
// Signals meant for the parent's terminal group must not stop the watchdog before it has done its job.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => {});
