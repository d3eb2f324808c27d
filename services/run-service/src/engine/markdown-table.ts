/** A DataFrame as a Markdown table: one row per record, one column per field (first-seen order). */
export function markdownTable(rows: readonly Readonly<Record<string, unknown>>[]): string {
  if (rows.length === 0) return ''
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))]
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [
    line(columns.map(cell)),
    line(columns.map(() => '---')),
    ...rows.map((row) => line(columns.map((column) => cell(row[column])))),
  ].join('\n')
}

function cell(value: unknown): string {
  const text = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value)
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>')
}
