import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Database } from '@session-runtime/db'
import { type ComponentRegistry, parseFlow, runnableGraph } from '../engine/index.js'
import { isUuid } from './flow-repository.js'

/** The built-in examples: Langflow exports, one per file (services/run-service/examples/*.json). */
export const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url))

/** One example as shipped: the file's own `id` is the template every tenant's copy derives its ID from. */
export interface ExampleFlow {
  file: string
  id: string
  name: string
  description: string | null
  endpoint_name: string | null
  data: unknown
}

/**
 * Reads and validates (against the components of `registry`) every example of `dir` (file-name order); a
 * broken example fails the start-up.
 */
export function loadExampleFlows(registry: ComponentRegistry, dir: string = EXAMPLES_DIR): ExampleFlow[] {
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .sort()
  return files.map((file) => {
    const json = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>
    const { id, name, description, endpoint_name: endpointName, data } = json
    if (typeof id !== 'string' || !isUuid(id)) throw new Error(`example flow ${file}: id must be a UUID`)
    if (typeof name !== 'string' || name === '') throw new Error(`example flow ${file}: name is missing`)
    runnableGraph(parseFlow(json, registry))
    return {
      file,
      id: id.toLowerCase(),
      name,
      description: typeof description === 'string' ? description : null,
      endpoint_name: typeof endpointName === 'string' && endpointName !== '' ? endpointName : null,
      data,
    }
  })
}

/**
 * The ID of a tenant's copy of an example: a name-based UUID (version 5, RFC 9562) of the tenant in the
 * example's own ID as namespace. Flow IDs are global, so every tenant's copy needs its own; this one is the
 * same on every installation (tenant `default`'s Memory Echo always has the same ID).
 */
export function exampleFlowId(exampleId: string, tenant: string): string {
  const namespace = Buffer.from(exampleId.replace(/-/g, ''), 'hex')
  const hash = createHash('sha1').update(namespace).update(tenant, 'utf8').digest()
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80
  const hex = hash.subarray(0, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * Gives the tenant its copies of the examples unless it has had them already; returns how many flows it
 * stored. One transaction: the tenant's "seeded" row first (concurrent callers, in this process or in
 * another replica, wait on it and then find it there), then the flows. A copy whose ID or endpoint name
 * is already taken is skipped, never an error.
 */
export async function seedExampleFlows(
  db: Database,
  tenant: string,
  examples: readonly ExampleFlow[],
): Promise<number> {
  return db.transaction(async (tx) => {
    const marked = await tx.query(
      'INSERT INTO example_flows_seeded (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING tenant_id',
      [tenant],
    )
    if (marked.rows.length === 0) return 0
    let stored = 0
    for (const example of examples) {
      const { rows } = await tx.query(
        `INSERT INTO flows (id, tenant_id, name, description, endpoint_name, data)
         SELECT $1::uuid, $2, $3, $4, $5, $6::jsonb
         WHERE NOT EXISTS (SELECT 1 FROM flows WHERE id = $1::uuid)
         ON CONFLICT DO NOTHING
         RETURNING id`,
        [
          exampleFlowId(example.id, tenant),
          tenant,
          example.name,
          example.description,
          example.endpoint_name,
          JSON.stringify(example.data),
        ],
      )
      stored += rows.length
    }
    return stored
  })
}

/**
 * Seeds each tenant once, the first time it is seen: after that a tenant costs one Set lookup. Concurrent
 * first requests of a tenant share one seeding; a failed one is tried again by the next request.
 */
export class ExampleFlowSeeder {
  private readonly seeded = new Set<string>()
  private readonly pending = new Map<string, Promise<void>>()

  constructor(
    private readonly db: Database,
    private readonly examples: readonly ExampleFlow[],
  ) {}

  /** Resolves once the tenant has had its examples (now or earlier). */
  ensureSeeded(tenant: string): Promise<void> | undefined {
    if (this.seeded.has(tenant)) return undefined
    let seeding = this.pending.get(tenant)
    if (!seeding) {
      seeding = seedExampleFlows(this.db, tenant, this.examples)
        .then(() => {
          this.seeded.add(tenant)
        })
        .finally(() => this.pending.delete(tenant))
      this.pending.set(tenant, seeding)
    }
    return seeding
  }
}
