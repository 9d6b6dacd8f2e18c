import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Paths of files under `root` whose bytes contain any of `needles`. */
export function filesContaining(root: string, needles: string[]): string[] {
  const hits: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const bytes = readFileSync(p);
        if (needles.some((n) => bytes.includes(Buffer.from(n)))) hits.push(p);
      }
    }
  };
  walk(root);
  return hits;
}
