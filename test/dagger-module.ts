import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The module's functions as the SDK's introspector (`scan()` from
 * @dagger.io/dagger's module/introspector) reports them — what the engine
 * registers and `dagger functions` shows. Run as the engine's introspection
 * entrypoint runs it: the files of src/ plus the generated client
 * (client.gen.ts; here the 0.21.9 package's, copied under that name), with
 * the module not loaded. The engine's introspector sees src/ and the SDK,
 * nothing else: the files are copied into an empty module directory that
 * has only node_modules (for @dagger.io/dagger) beside src/ — no pipeline/ —
 * so a default or type taken from outside src/ fails here as it fails there.
 */

export type ScannedArg = { type: string; optional: boolean; default: unknown; description: string };
export type ScannedFunction = { name: string; description: string; args: Record<string, ScannedArg>; returns: string; cache?: string };

type TypeDef = { kind: string; name?: string; typeDef?: TypeDef };
type RawArg = { description: string; type: TypeDef; isOptional: boolean; defaultValue?: unknown };
type RawFn = { name: string; description: string; arguments: Record<string, RawArg>; returnType: TypeDef; cache?: string };

function typeName(t: TypeDef): string {
  if (t.kind === "LIST_KIND") return `[${typeName(t.typeDef!)}]`;
  return t.kind === "OBJECT_KIND" ? t.name! : t.kind;
}

function args(raw: Record<string, RawArg>): Record<string, ScannedArg> {
  return Object.fromEntries(
    Object.entries(raw).map(([k, a]) => [k, { type: typeName(a.type), optional: a.isOptional, default: a.defaultValue, description: a.description }]),
  );
}

/** src/*.ts copied alone into `<dir>/src/`: what the engine's introspector gets to read. */
export function copySrcAlone(dir: string): string[] {
  const srcDir = fileURLToPath(new URL("../src/", import.meta.url));
  mkdirSync(join(dir, "src"));
  symlinkSync(fileURLToPath(new URL("../node_modules", import.meta.url)), join(dir, "node_modules"));
  return readdirSync(srcDir)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => {
      copyFileSync(join(srcDir, f), join(dir, "src", f));
      return join(dir, "src", f);
    });
}

export async function moduleFunctions(): Promise<{ description?: string; functions: Record<string, ScannedFunction>; constructor: ScannedFunction }> {
  const { scan } = await import("../node_modules/@dagger.io/dagger/dist/src/module/introspector/index.js");
  const dir = mkdtempSync(join(tmpdir(), "bd-scan-"));
  try {
    const client = join(dir, "client.gen.ts");
    copyFileSync(fileURLToPath(new URL("../node_modules/@dagger.io/dagger/dist/src/api/client.gen.d.ts", import.meta.url)), client);
    const mod = await scan([...copySrcAlone(dir), client], "backup-drill", false);
    const obj = mod.objects.BackupDrill as unknown as { methods: Record<string, RawFn>; _constructor?: { arguments: Record<string, RawArg> } };
    // toJSON resolves every type reference (Secret, Service, ...) against the client.
    const json = JSON.parse(JSON.stringify(mod)) as { description?: string; objects: { BackupDrill: { methods: Record<string, RawFn> } } };
    const functions: Record<string, ScannedFunction> = {};
    for (const [name, fn] of Object.entries(json.objects.BackupDrill.methods)) {
      functions[name] = { name, description: fn.description, args: args(fn.arguments), returns: typeName(fn.returnType), cache: obj.methods[name]!.cache };
    }
    const ctorArgs = JSON.parse(JSON.stringify(obj._constructor?.arguments ?? {})) as Record<string, RawArg>;
    return { description: json.description, functions, constructor: { name: "constructor", description: "", args: args(ctorArgs), returns: "BackupDrill" } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `dagger call` spells functions and arguments in kebab case. */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
