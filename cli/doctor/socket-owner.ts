import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** TCP state LISTEN in /proc/net/tcp. */
const TCP_LISTEN = '0A'

/** Returns the inodes of the listening TCP sockets on `port`, IPv4 and IPv6, from /proc. */
export function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>()
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      // Fields: sl, local_address, rem_address, st, tx:rx queue, tr:when, retrnsmt, uid,
      // timeout, inode.
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue
      if (fields[1]?.endsWith(`:${hexPort}`)) inodes.add(fields[9]!)
    }
  }
  return inodes
}

/**
 * Tells whether process `pid` holds a listening socket on `port`: 'yes', 'no', or 'unknown'
 * when its file descriptors cannot be read, as for another user's process without root.
 */
export function socketOwnedBy(port: number, pid: number): 'yes' | 'no' | 'unknown' {
  const inodes = listeningInodes(port)
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no' : 'unknown'
  }
  for (const fd of fds) {
    let target: string
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`)
    } catch {
      continue
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
    if (inode !== undefined && inodes.has(inode)) return 'yes'
  }
  return 'no'
}
