import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { restrictSocket, socketGroupId } from './socket-access.js'

let dir: string
let server: Server
let socket: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsmgate-socket-'))
  socket = join(dir, 's.sock')
  server = createServer()
  await new Promise<void>((resolve) => server.listen(socket, resolve))
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})

describe('socket access', () => {
  it('allows the owner only without a group', () => {
    restrictSocket(socket, undefined)
    expect(statSync(socket).mode & 0o777).toBe(0o600)
  })

  it('adds the group with mode 0660', () => {
    const gid = 4242
    restrictSocket(socket, gid)
    const stats = statSync(socket)
    expect(stats.mode & 0o777).toBe(0o660)
    expect(stats.gid).toBe(gid)
    // Others never get access, whatever the group.
    expect(stats.mode & 0o007).toBe(0)
  })
})

describe('socket group lookup', () => {
  it('resolves names from the group file', () => {
    const file = join(dir, 'group')
    writeFileSync(file, 'root:x:0:\nhsmgate-envoy:x:998:alice\n')
    expect(socketGroupId('hsmgate-envoy', file)).toBe(998)
    expect(socketGroupId('1234', file)).toBe(1234)
    expect(socketGroupId(undefined, file)).toBeUndefined()
  })

  it('rejects an unknown group by name', () => {
    const file = join(dir, 'group')
    expect(() => socketGroupId('nobody-here', file)).toThrow(/group 'nobody-here' not found/)
  })
})
