type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Every `$ref` of the document that does not point inside it (an empty list for a sound document). */
export function unresolvedRefs(document: unknown): string[] {
  const bad: string[] = []
  const visit = (value: unknown) => {
    if (Array.isArray(value)) return value.forEach(visit)
    if (!isObject(value)) return
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string') {
        if (resolvePointer(document, item) === undefined) bad.push(item)
      } else visit(item)
    }
  }
  visit(document)
  return bad
}

/** The value a local `#/...` JSON pointer names, or undefined. */
export function resolvePointer(document: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined
  let at: unknown = document
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')
    if (!isObject(at) && !Array.isArray(at)) return undefined
    at = (at as Json)[key]
    if (at === undefined) return undefined
  }
  return at
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

/**
 * What makes `doc` an unsound OpenAPI 3 document, by the rules a client generator
 * trips on: unresolved `$ref`s, undeclared path parameters, responses without a
 * description, unknown security schemes, bad component names. Empty if sound.
 */
export function openApiProblems(doc: unknown): string[] {
  const problems: string[] = []
  if (!isObject(doc)) return ['not an object']
  if (typeof doc.openapi !== 'string' || !/^3\.\d+\.\d+$/.test(doc.openapi)) problems.push('openapi is not 3.x.y')
  const info = doc.info
  if (!isObject(info) || typeof info.title !== 'string' || typeof info.version !== 'string') {
    problems.push('info needs title and version')
  }
  const components = isObject(doc.components) ? doc.components : {}
  for (const [kind, entries] of Object.entries(components)) {
    for (const name of Object.keys(isObject(entries) ? entries : {})) {
      if (!/^[a-zA-Z0-9._-]+$/.test(name)) problems.push(`bad component name ${kind}/${name}`)
    }
  }
  const schemes = isObject(components.securitySchemes) ? components.securitySchemes : {}
  if (!isObject(doc.paths)) return [...problems, 'no paths']
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`path ${path} does not start with /`)
    if (!isObject(item)) continue
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue
      const where = `${method} ${path}`
      if (!isObject(op)) {
        problems.push(`${where} is not an object`)
        continue
      }
      const params = [
        ...(Array.isArray(item.parameters) ? item.parameters : []),
        ...(Array.isArray(op.parameters) ? op.parameters : []),
      ] as Json[]
      const seen = new Set<string>()
      for (const p of params) {
        if (!['query', 'header', 'path', 'cookie'].includes(p.in as string))
          problems.push(`${where}: parameter in ${p.in}`)
        const key = `${p.in}:${p.name}`
        if (seen.has(key)) problems.push(`${where}: parameter ${key} twice`)
        seen.add(key)
        if (p.in === 'path' && (p.required !== true || !templated.includes(p.name as string))) {
          problems.push(`${where}: path parameter ${p.name} not required or not in the path`)
        }
      }
      for (const name of templated) if (!seen.has(`path:${name}`)) problems.push(`${where}: {${name}} is not declared`)
      if (!isObject(op.responses) || Object.keys(op.responses).length === 0) problems.push(`${where}: no responses`)
      for (const [status, response] of Object.entries(isObject(op.responses) ? op.responses : {})) {
        if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status)) problems.push(`${where}: status ${status}`)
        if (!isObject(response) || typeof response.description !== 'string') {
          problems.push(`${where} ${status}: no description`)
        }
      }
      for (const requirement of Array.isArray(op.security) ? op.security : []) {
        for (const name of Object.keys(requirement as Json)) {
          if (!isObject(schemes[name])) problems.push(`${where}: unknown security scheme ${name}`)
        }
      }
    }
  }
  return [...problems, ...unresolvedRefs(doc).map((ref) => `unresolved $ref ${ref}`)]
}
