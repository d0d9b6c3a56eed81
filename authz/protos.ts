import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

/** Proto files relative to the proto root, with the import paths Envoy uses. */
const PROTO_FILES = ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto']

/** Options for protoLoader: snake_case field names, int64 as strings, defaults for unset fields. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  defaults: true,
  oneofs: true,
}

/** Maximum number of parent directories searched for package.json. */
const MAX_PARENT_DIRECTORIES = 16

/**
 * Finds the project root, the nearest directory at or above `start` that contains package.json.
 * It returns the same directory from authz/ in the source tree and from dist/authz/ after tsc.
 */
export function findProjectRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start
  for (let i = 0; i < MAX_PARENT_DIRECTORIES; i++) {
    if (existsSync(join(dir, 'package.json'))) {
      return dir
    }
    const parent = dirname(dir)
    if (parent === dir) {
      break
    }
    dir = parent
  }
  throw new Error(`no package.json found in ${start} or its parent directories`)
}

/** Directory of the .proto files, `<project root>/authz/proto`. */
export function protoRoot(): string {
  return join(findProjectRoot(), 'authz', 'proto')
}

/** Service definitions built from authz/proto for servers and test clients. */
export interface AuthzProtos {
  readonly authorization: grpc.ServiceClientConstructor
  readonly health: grpc.ServiceClientConstructor
}

let cached: AuthzProtos | undefined

/** Loads authz/proto once per process and returns the Authorization and Health services. */
export function loadAuthzProtos(): AuthzProtos {
  if (cached !== undefined) {
    return cached
  }
  const definition = protoLoader.loadSync(PROTO_FILES, {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [protoRoot()],
  })
  const root = grpc.loadPackageDefinition(definition)
  cached = {
    authorization: lookupService(root, 'envoy.service.auth.v3.Authorization'),
    health: lookupService(root, 'grpc.health.v1.Health'),
  }
  return cached
}

function lookupService(root: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: unknown = root
  for (const part of name.split('.')) {
    node = (node as Record<string, unknown>)[part]
  }
  if (typeof node !== 'function' || !('service' in node)) {
    throw new Error(`service ${name} is missing from ${protoRoot()}`)
  }
  return node as grpc.ServiceClientConstructor
}
