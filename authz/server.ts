import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs'
import { createConnection } from 'node:net'
import { dirname } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import type { Logger } from '../log/logger.js'
import {
  createCheckHandler,
  type CheckHandlerOptions,
  type CheckRequest,
  type CheckResponse,
} from './check.js'
import { MIN_SECRET_BYTES } from './decision-header.js'
import { loadAuthzProtos } from './protos.js'
import { storeAuditor } from './decision-audit.js'
import { watchPolicies } from './policy-watch.js'
import type { Store } from '../store/store.js'
import { restrictSocket } from '../config/socket-access.js'
import { timeAuditWrite } from '../metrics/audit-metrics.js'
import type { DecisionAuditor } from './decision-audit.js'
import type { PolicyEngine } from './policy-engine.js'

export interface AuthzServerOptions {
  /** Unix socket path that Envoy's ext_authz cluster connects to. */
  readonly socketPath: string
  /** Directory of .cedar policy files. */
  readonly policyDir: string
  /** Source of applications and keys, and the audit every decision is written to. */
  readonly store: Pick<Store, 'application' | 'keyVersions' | 'appendAuditBatch' | 'certificate'>
  /** This node's id; authz audits as `<nodeId>/authz`. */
  readonly nodeId: string
  readonly decisionSecret: Buffer
  readonly trustDomain: string
  readonly logger: Logger
  /** How often the policy directory is checked for changes, in milliseconds. */
  readonly policyPollIntervalMs?: number
  /** Enrollment listener, trusted proxies and clone detection; each is off when absent. */
  readonly certificateChecks?: Pick<
    CheckHandlerOptions,
    'enrollPort' | 'trustedProxies' | 'cloneDetection'
  >
  /** Group whose members may also connect to the socket (mode 0660); owner only when absent. */
  readonly socketGroupId?: number
  /** Quotas, anomaly rules, alerts and dual control; off when absent. */
  readonly controls?: CheckHandlerOptions['controls']
}

export interface AuthzServer {
  /** Stops accepting calls, waits up to 5 seconds for calls in progress, removes the socket. */
  close(): Promise<void>
  /** Returns the policy set in force. */
  policies(): PolicyEngine
}

/** A socket path that is in use by a running server or is not a socket. */
export class SocketInUseError extends Error {
  readonly code = 'socket_in_use'

  constructor(message: string) {
    super(message)
    this.name = 'SocketInUseError'
  }
}

/** Service name that grpc.health.v1 reports for the authorization service. */
export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization'

/**
 * Maximum gRPC message size in bytes. A CheckRequest carries the buffered request body, which the
 * configuration allows up to 16 MiB (envoy.max_request_bytes), plus headers and the certificate.
 */
const MAX_RECEIVE_MESSAGE_BYTES = 20 * 1024 * 1024

/**
 * Only the socket's owner may connect, as with the backend's socket: a process that can ask authz
 * for decisions can mint decision headers for any public client certificate.
 */
const SOCKET_MODE = 0o600
const SHUTDOWN_GRACE_MS = 5_000
const SOCKET_PROBE_TIMEOUT_MS = 500

/** grpc.health.v1.HealthCheckResponse.ServingStatus values. */
const SERVING = 1
const NOT_SERVING = 2

/**
 * Starts the ext_authz gRPC server (envoy.service.auth.v3.Authorization/Check and
 * grpc.health.v1.Health/Check) on a Unix socket. A stale socket file left by a previous process
 * is removed first, but a socket that still accepts connections raises SocketInUseError. Throws
 * PolicyError when the policy directory is invalid.
 */
export async function startAuthzServer(options: AuthzServerOptions): Promise<AuthzServer> {
  const { socketPath, logger } = options
  if (options.decisionSecret.length < MIN_SECRET_BYTES) {
    throw new TypeError(`decision secret must be at least ${MIN_SECRET_BYTES} bytes`)
  }

  const policies = watchPolicies(options.policyDir, {
    logger,
    intervalMs: options.policyPollIntervalMs,
  })
  logger.info(
    {
      dir: options.policyDir,
      policies: policies.current().policies.size,
      policy_version: policies.current().version,
    },
    'policies loaded',
  )

  const check = createCheckHandler({
    policies: policies.current,
    directory: options.store,
    revocations: options.store,
    audit: timedAuditor(storeAuditor(options.store, options.nodeId)),
    decisionSecret: options.decisionSecret,
    trustDomain: options.trustDomain,
    logger,
    ...options.certificateChecks,
    ...(options.controls === undefined ? {} : { controls: options.controls }),
  })
  let serving = true

  const protos = loadAuthzProtos()
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES,
    // Channelz records every call for introspection that nothing here reads.
    'grpc.enable_channelz': 0,
  })
  server.addService(protos.authorization.service, {
    Check: (
      call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
      callback: grpc.sendUnaryData<CheckResponse>,
    ) => {
      void check(call.request).then((response) => callback(null, response))
    },
  })
  server.addService(protos.health.service, {
    Check: (
      call: grpc.ServerUnaryCall<{ service: string }, { status: number }>,
      callback: grpc.sendUnaryData<{ status: number }>,
    ) => {
      const service = call.request.service
      if (service !== '' && service !== AUTHORIZATION_SERVICE_NAME) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${service}` })
        return
      }
      callback(null, { status: serving ? SERVING : NOT_SERVING })
    },
  })

  try {
    await prepareSocketPath(socketPath)
    await bind(server, `unix:${socketPath}`)
    chmodSync(socketPath, SOCKET_MODE)
    if (options.socketGroupId !== undefined) restrictSocket(socketPath, options.socketGroupId)
  } catch (error) {
    policies.close()
    server.forceShutdown()
    throw error
  }
  logger.info({ socket: socketPath }, 'authz gRPC server listening')

  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    serving = false
    policies.close()
    await shutdown(server, logger)
    removeSocket(socketPath, logger)
    logger.info({ socket: socketPath }, 'authz gRPC server stopped')
  }
  return {
    close: () => (closing ??= close()),
    policies: () => policies.current(),
  }
}

/**
 * Creates the socket's directory if needed and removes a stale socket file. Throws
 * SocketInUseError when the path is not a socket or another process still accepts connections.
 */
async function prepareSocketPath(socketPath: string): Promise<void> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o750 })
  let stats
  try {
    stats = lstatSync(socketPath)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return
    }
    throw error
  }
  if (!stats.isSocket()) {
    throw new SocketInUseError(
      `${socketPath} exists and is not a socket; remove it or change runtime_dir`,
    )
  }
  if (await acceptsConnections(socketPath)) {
    throw new SocketInUseError(
      `${socketPath} is in use by a running process; stop that authz server first`,
    )
  }
  unlinkSync(socketPath)
}

function acceptsConnections(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath)
    const finish = (result: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => finish(false), SOCKET_PROBE_TIMEOUT_MS)
    socket.once('connect', () => finish(true))
    socket.once('error', () => finish(false))
  })
}

function bind(server: grpc.Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) {
        reject(error)
      } else {
        resolve()
      }
    })
  })
}

function shutdown(server: grpc.Server, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      logger.warn(
        { grace_ms: SHUTDOWN_GRACE_MS },
        'authz gRPC calls still running after the grace period; cancelling them',
      )
      server.forceShutdown()
      resolve()
    }, SHUTDOWN_GRACE_MS)
    timer.unref()
    server.tryShutdown(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

function removeSocket(socketPath: string, logger: Logger): void {
  try {
    unlinkSync(socketPath)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warn({ socket: socketPath, err: error }, 'cannot remove the authz socket file')
    }
  }
}

/** Wraps an auditor so that its write latency and failures are measured. */
function timedAuditor(auditor: DecisionAuditor): DecisionAuditor {
  return (record) => timeAuditWrite('authz', () => auditor(record))
}
