/**
 * Where each service serves the OpenAPI document of its public routes (internal: the
 * gateway fetches it with the internal token and merges them into its `/docs`).
 */
export const OPENAPI_DOCUMENT_PATH = '/internal/openapi.json'
