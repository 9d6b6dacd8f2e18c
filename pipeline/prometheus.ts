import { resolve } from "node:path";
import { errorMessage, OperationError } from "./errors.js";
import { NAGIOS_EXIT, type FreshnessReport } from "./freshness.js";
import { writeFileAtomic } from "./store/fsync.js";

/** The freshness report as a node_exporter textfile (Prometheus text exposition format 0.0.4). */

type Sample = { labels?: Record<string, string>; value: number };
type Metric = { name: string; help: string; samples: Sample[] };

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function sampleLine(name: string, s: Sample): string {
  const labels = s.labels ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
  return `${name}${labels} ${Number.isFinite(s.value) ? String(s.value) : "NaN"}`;
}

const seconds = (d: Date) => d.getTime() / 1000;

export function freshnessMetrics(r: FreshnessReport): Metric[] {
  const per = (value: (s: FreshnessReport["services"][number]) => number): Sample[] =>
    r.services.map((s) => ({ labels: { service: s.service }, value: value(s) }));
  return [
    {
      name: "backup_drill_last_success_timestamp_seconds",
      help: "Time the newest good backup set of the service was taken (0: none).",
      samples: per((s) => (s.lastGood ? seconds(s.lastGood.time) : 0)),
    },
    {
      name: "backup_drill_last_drill_success_timestamp_seconds",
      help: "Time the newest passing restore drill finished (0: none).",
      samples: [{ value: r.lastDrillSuccess ? seconds(r.lastDrillSuccess.finishedAt) : 0 }],
    },
    {
      name: "backup_drill_set_size_bytes",
      help: "Bytes of the service's dump in its newest good set (0: none).",
      samples: per((s) => s.lastGood?.bytes ?? 0),
    },
    {
      name: "backup_drill_freshness_status",
      help: "Freshness of the service: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios codes).",
      samples: per((s) => NAGIOS_EXIT[s.status]),
    },
    {
      name: "backup_drill_freshness_overall_status",
      help: "Overall freshness: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the exit code of backup-drill freshness).",
      samples: [{ value: NAGIOS_EXIT[r.status] }],
    },
    {
      name: "backup_drill_freshness_age_seconds",
      help: "Age of the service's newest good backup set at check time (NaN: none).",
      samples: per((s) => (s.lastGood ? s.lastGood.ageMs / 1000 : Number.NaN)),
    },
    {
      name: "backup_drill_freshness_checked_timestamp_seconds",
      help: "When backup-drill freshness wrote this file.",
      samples: [{ value: seconds(r.now) }],
    },
    {
      name: "backup_drill_sets",
      help: "Complete backup sets under the output root, by whether their manifest checks out.",
      samples: [
        { labels: { state: "valid" }, value: r.sets.valid },
        { labels: { state: "rejected" }, value: r.sets.rejected.length },
      ],
    },
  ];
}

export function prometheusText(r: FreshnessReport): string {
  const lines: string[] = [];
  for (const m of freshnessMetrics(r)) {
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} gauge`, ...m.samples.map((s) => sampleLine(m.name, s)));
  }
  return `${lines.join("\n")}\n`;
}

/** Temp file + rename in the same directory: the textfile collector never reads half a file. */
export async function writePrometheusFile(path: string, r: FreshnessReport, extra = ""): Promise<string> {
  const abs = resolve(path);
  try {
    await writeFileAtomic(abs, prometheusText(r) + extra);
  } catch (err) {
    throw new OperationError(`--prometheus: cannot write ${abs}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
  return abs;
}
