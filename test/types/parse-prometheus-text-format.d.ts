declare module "parse-prometheus-text-format" {
  export type PrometheusSample = { value: string; labels?: Record<string, string>; timestamp_ms?: string };
  export type PrometheusFamily = { name: string; help: string; type: string; metrics: PrometheusSample[] };
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
