import { Hono } from 'hono'
import { auditRecorder } from './audit/audit-recorder.js'
import type { BackendDeps, BackendEnv } from './context.js'
import { decisionGuard } from './decision-guard.js'
import { requestMetrics } from '../metrics/backend-metrics.js'
import { errorHandler, errorResponse } from './error-handler.js'
import { registerDataKeyRoute } from './routes/data-key.js'
import { registerDescribeRoute } from './routes/describe.js'
import { registerCrlRoute } from './routes/crl.js'
import { registerEnrollRoute } from './routes/enroll.js'
import { registerRenewRoute } from './routes/renew.js'
import { registerApprovalRoutes } from './routes/approvals.js'
import { registerEncryptRoutes } from './routes/encrypt.js'
import { registerLifecycleRoutes } from './routes/lifecycle.js'
import { registerMacAndWrapRoutes } from './routes/mac-and-wrap.js'
import { registerServiceRoutes } from './routes/service.js'
import { registerSignRoutes } from './routes/sign.js'

/** Builds the backend's Hono app: decision guard, then audit, then the operation routes. */
export function createApp(deps: BackendDeps): Hono<BackendEnv> {
  const app = new Hono<BackendEnv>()
  app.onError(errorHandler(deps.logger))
  app.use('*', requestMetrics())
  app.use('*', decisionGuard(deps))
  app.use('*', auditRecorder(deps))

  registerServiceRoutes(app, deps)
  registerDescribeRoute(app, deps)
  registerSignRoutes(app, deps)
  registerEncryptRoutes(app, deps)
  registerDataKeyRoute(app, deps)
  registerMacAndWrapRoutes(app, deps)
  registerLifecycleRoutes(app, deps)
  registerEnrollRoute(app, deps)
  registerCrlRoute(app, deps)
  registerRenewRoute(app, deps)
  registerApprovalRoutes(app, deps.approvals)

  app.notFound((c) =>
    errorResponse(c, 404, 'not_found', 'no such operation', c.get('decisionId') ?? null),
  )
  return app
}
