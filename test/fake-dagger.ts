import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Kind, parse, valueFromASTUntyped, type FieldNode, type SelectionSetNode } from "graphql";

/**
 * A stand-in for a Dagger engine session: the SDK's GraphQL client talks to
 * http://127.0.0.1:<port>/query (DAGGER_SESSION_PORT, DAGGER_SESSION_TOKEN as
 * basic auth). Every query is recorded with its field chain; IDs are made up
 * and remembered, so a test can follow an ID argument back to the chain that
 * produced it. Leaf answers (stdout, endpoint, ...) come from the test's
 * script; `id`, `sync`, `start` and `stop` answer with IDs.
 */

export type Field = { name: string; args: Record<string, unknown> };
export type Recorded = { query: string; chain: Field[]; at: number };
export type Answer = (chain: Field[], leaf: Field) => unknown;

const ID_LEAVES = new Set(["id", "sync", "start", "stop"]);

function fieldChain(sel: SelectionSetNode | undefined, out: Field[] = []): Field[] {
  if (!sel) return out;
  if (sel.selections.length !== 1) throw new Error(`fake engine: expected one selection, got ${sel.selections.length}`);
  const node = sel.selections[0]!;
  if (node.kind === Kind.INLINE_FRAGMENT) return fieldChain(node.selectionSet, out);
  if (node.kind !== Kind.FIELD) throw new Error(`fake engine: unexpected ${node.kind}`);
  const f = node as FieldNode;
  const args: Record<string, unknown> = {};
  for (const a of f.arguments ?? []) args[a.name.value] = a.value.kind === Kind.ENUM ? a.value.value : valueFromASTUntyped(a.value);
  out.push({ name: f.name.value, args });
  return fieldChain(f.selectionSet, out);
}

export class FakeEngine {
  readonly token = "fake-session-token";
  readonly queries: Recorded[] = [];
  /** id -> the expanded chain that produced it (without the trailing id/sync leaf). */
  readonly ids = new Map<string, Field[]>();
  #server?: Server;
  #next = 0;
  #answer: Answer;

  constructor(answer: Answer) {
    this.#answer = answer;
  }

  async start(): Promise<number> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((r) => this.#server!.listen(0, "127.0.0.1", r));
    return (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.#server?.close(() => r()) ?? r());
  }

  /** Replace the `node(id:)` / `loadXFromID(id:)` head of a chain by the chain that made that id. */
  expand(chain: Field[]): Field[] {
    const [head, ...rest] = chain;
    if (head && (head.name === "node" || /^load.+FromID$/.test(head.name))) {
      const made = this.ids.get(String(head.args.id));
      if (made) return [...made, ...rest];
    }
    return chain;
  }

  /** The chain that produced an id (expanded), or undefined for an id it never issued. */
  origin(id: unknown): Field[] | undefined {
    return this.ids.get(String(id));
  }

  /** Register an id for something the test holds (e.g. a host service), with a chain describing it. */
  seed(id: string, chain: Field[]): void {
    this.ids.set(id, chain);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const auth = req.headers.authorization ?? "";
    if (auth !== `Basic ${Buffer.from(`${this.token}:`).toString("base64")}`) {
      res.writeHead(401).end();
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { query: string };
    let payload: unknown;
    try {
      const doc = parse(body.query);
      const op = doc.definitions[0];
      if (!op || op.kind !== Kind.OPERATION_DEFINITION) throw new Error("fake engine: no operation");
      const raw = fieldChain(op.selectionSet);
      const chain = this.expand(raw);
      this.queries.push({ query: body.query, chain, at: this.queries.length });
      const leaf = chain[chain.length - 1]!;
      let value: unknown;
      if (ID_LEAVES.has(leaf.name)) {
        const base = chain.slice(0, -1);
        const head = raw[0]!;
        // Loading an object by its id gives that same id back.
        if ((head.name === "node" || /^load.+FromID$/.test(head.name)) && raw.length === 2 && leaf.name === "id") value = head.args.id;
        else {
          value = `fake-id-${++this.#next}`;
          this.ids.set(value as string, base);
        }
      } else {
        value = this.#answer(chain, leaf);
      }
      // Nest the answer along the raw chain (inline fragments add no level).
      let data: unknown = value;
      for (let i = raw.length - 1; i >= 0; i--) data = { [raw[i]!.name]: data };
      payload = { data };
    } catch (err) {
      payload = { errors: [{ message: (err as Error).message }] };
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(payload));
  }
}

/** The args of the last withExec in a chain. */
export function lastExec(chain: Field[]): string[] | undefined {
  for (let i = chain.length - 1; i >= 0; i--) if (chain[i]!.name === "withExec") return chain[i]!.args.args as string[];
  return undefined;
}

/** Every field of a chain with this name. */
export function fieldsNamed(chain: Field[], name: string): Field[] {
  return chain.filter((f) => f.name === name);
}
