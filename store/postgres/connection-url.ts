/**
 * Returns a PostgreSQL URL with its password replaced by `***`, for errors and logs. Text that
 * does not parse as a URL is replaced as a whole, because it may hold a password in a form this
 * function does not know.
 */
export function redactUrl(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return '(unparseable database URL)'
  }
  if (parsed.password !== '') parsed.password = '***'
  for (const name of [...parsed.searchParams.keys()]) {
    if (name.toLowerCase() === 'password') parsed.searchParams.set(name, '***')
  }
  return parsed.toString()
}
