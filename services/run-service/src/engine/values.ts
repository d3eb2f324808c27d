import type { Message } from '@session-runtime/schemas'
import { markdownTable } from './markdown-table.js'
import { plainMessage } from './messages.js'

export type Row = Readonly<Record<string, unknown>>

/**
 * A value travelling along an edge or read from a node field. Component outputs are
 * Messages, Data or DataFrames; a node field (stored value or tweak) is `raw`.
 */
export type FlowValue =
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'data'; readonly data: Row }
  | { readonly kind: 'dataframe'; readonly rows: readonly Row[] }
  | { readonly kind: 'raw'; readonly value: unknown }

export const messageValue = (message: Message): FlowValue => ({ kind: 'message', message })
export const dataValue = (data: Row): FlowValue => ({ kind: 'data', data })
export const dataFrameValue = (rows: readonly Row[]): FlowValue => ({ kind: 'dataframe', rows })
export const rawValue = (value: unknown): FlowValue => ({ kind: 'raw', value })

/**
 * Any value as text: a Message's text; Data through `dataTemplate` (`{text}` by default; JSON
 * when the template names a missing key); a DataFrame as a Markdown table; a raw value as a string.
 */
export function toText(value: FlowValue | undefined, dataTemplate = '{text}'): string {
  if (value === undefined) return ''
  switch (value.kind) {
    case 'message':
      return value.message.text
    case 'data':
      return dataText(value.data, dataTemplate)
    case 'dataframe':
      return markdownTable(value.rows)
    case 'raw':
      return rawText(value.value)
  }
}

/** `true`/`false` (booleans or their text); anything else is the fallback. */
export function toBool(value: FlowValue | undefined, fallback: boolean): boolean {
  if (value?.kind === 'raw' && typeof value.value === 'boolean') return value.value
  const text = toText(value).trim().toLowerCase()
  return text === 'true' ? true : text === 'false' ? false : fallback
}

/** A finite number (or its text); anything else is the fallback. */
export function toNumber(value: FlowValue | undefined, fallback: number): number {
  if (value?.kind === 'raw' && typeof value.value === 'number')
    return Number.isFinite(value.value) ? value.value : fallback
  const text = toText(value).trim()
  const parsed = Number(text)
  return text !== '' && Number.isFinite(parsed) ? parsed : fallback
}

/** A list field (e.g. `files`): the non-empty strings of an array, or one non-empty string. */
export function toStringList(value: FlowValue | undefined): string[] {
  if (value?.kind !== 'raw') return []
  const items = Array.isArray(value.value) ? value.value : [value.value]
  return items.filter((item): item is string => typeof item === 'string' && item !== '')
}

/** The columns a message has as a record (Data, DataFrame row). */
export function messageRecord(message: Message): Row {
  return {
    text: message.text,
    sender: message.sender,
    sender_name: message.sender_name,
    session_id: message.session_id,
    timestamp: message.timestamp,
    id: message.id,
    flow_id: message.flow_id,
  }
}

/** Message → itself; anything else → an unstored Message of its text (carrying no session). */
export function toMessage(value: FlowValue | undefined, flowId: string): Message {
  if (value?.kind === 'message') return value.message
  return plainMessage({ flowId, text: toText(value) })
}

/** Message → its record; DataFrame → `{ records }`; text → `{ text }`. */
export function toData(value: FlowValue | undefined): Row {
  switch (value?.kind) {
    case 'message':
      return messageRecord(value.message)
    case 'data':
      return value.data
    case 'dataframe':
      return { records: value.rows }
    default:
      return { text: toText(value) }
  }
}

/** Message → one row; Data → one row; text → one `{ text }` row. */
export function toDataFrame(value: FlowValue | undefined): readonly Row[] {
  switch (value?.kind) {
    case 'message':
      return [messageRecord(value.message)]
    case 'data':
      return [value.data]
    case 'dataframe':
      return value.rows
    default:
      return [{ text: toText(value) }]
  }
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/** `{key}` placeholders replaced by the record's values; placeholders of missing keys stay as they are. */
export function formatTemplate(template: string, record: Row): string {
  return template.replace(PLACEHOLDER, (whole, key: string) => (key in record ? rawText(record[key]) : whole))
}

function dataText(data: Row, template: string): string {
  const keys = [...template.matchAll(PLACEHOLDER)].map((match) => match[1] as string)
  if (template !== '' && keys.every((key) => key in data)) return formatTemplate(template, data)
  return JSON.stringify(data, null, 2)
}

function rawText(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  return JSON.stringify(value)
}
