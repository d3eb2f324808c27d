import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { EXAMPLES_DIR, ExampleFlowSeeder, loadExampleFlows } from '../../domain/example-flows.js'
import type { ComponentRegistry } from '../../engine/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * onRequest hook, after `requireInternalCaller`: the first request of a tenant stores the built-in
     * example flows for it (once per tenant, ever). A no-op with EXAMPLE_FLOWS=false.
     */
    seedExampleFlows(request: FastifyRequest): Promise<void>
  }
}

export interface ExampleFlowsOptions {
  enabled: boolean
  /** The component types an example may use. */
  registry: ComponentRegistry
  /** Where the examples are; default services/run-service/examples. */
  dir?: string | undefined
}

/** Langflow's starter projects, per tenant: the examples are read (and validated) once, at start-up. */
async function exampleFlows(app: FastifyInstance, opts: ExampleFlowsOptions) {
  const seeder = opts.enabled
    ? new ExampleFlowSeeder(app.db, loadExampleFlows(opts.registry, opts.dir ?? EXAMPLES_DIR))
    : undefined
  app.decorate('seedExampleFlows', async (request: FastifyRequest) => {
    await seeder?.ensureSeeded(request.tenant)
  })
}

export default fp(exampleFlows, { name: 'example-flows', dependencies: ['database'] })
