/** The outcome of one doctor check. */
export interface CheckResult {
  /** Short name of what was checked, such as 'pin file hsm-a'. */
  name: string
  status: 'ok' | 'warn' | 'fail'
  /** Finding of the check. */
  detail: string
  /** Action that fixes a warning or failure. */
  fix?: string
}

export const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail })

export const fail = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'fail',
  detail,
  fix,
})

export const warn = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'warn',
  detail,
  fix,
})
