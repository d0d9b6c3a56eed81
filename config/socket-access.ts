import { chmodSync, chownSync, readFileSync } from 'node:fs'
import { ConfigError } from './load.js'

/**
 * Returns the numeric id of `socket_group`: a number as is, a name looked up in /etc/group.
 * Returns undefined when no group is configured. Throws ConfigError for an unknown name.
 * NOTE: only /etc/group is read, so groups that exist only in LDAP or another NSS source must
 * be given by number.
 */
export function socketGroupId(
  group: string | undefined,
  groupFile = '/etc/group',
): number | undefined {
  if (group === undefined) return undefined
  if (/^\d+$/.test(group)) return Number(group)
  let text = ''
  try {
    text = readFileSync(groupFile, 'utf8')
  } catch {
    // Reported below as an unknown group, with the file named.
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':')
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid)
  }
  throw new ConfigError(
    `socket_group: group '${group}' not found in ${groupFile}; create it ('groupadd ${group}') ` +
      'or give its numeric id',
  )
}

/**
 * Limits who may connect to a Unix socket: only its owner (mode 0600), or with `groupId` also
 * the members of that group (mode 0660). A process that can connect to the authz socket can
 * obtain decision headers, and one that can connect to the backend socket can present them.
 */
export function restrictSocket(path: string, groupId: number | undefined): void {
  if (groupId === undefined) {
    chmodSync(path, 0o600)
    return
  }
  chownSync(path, -1, groupId)
  chmodSync(path, 0o660)
}
