// Regenerate schemas/*.json from the zod schemas (npm run schemas).
import { writeFileSync } from "node:fs";
import { jsonSchemas } from "../pipeline/schemas.js";

for (const [name, schema] of Object.entries(jsonSchemas())) {
  writeFileSync(new URL(`../schemas/${name}`, import.meta.url), `${JSON.stringify(schema, null, 2)}\n`);
  process.stderr.write(`wrote schemas/${name}\n`);
}
