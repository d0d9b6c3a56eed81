import { join, resolve } from 'node:path'

/** Where `hsmgate init` puts each file of an embedded setup, relative to its directory. */
export function stateLayout(dir: string) {
  const root = resolve(dir)
  const at = (...parts: string[]): string => join(root, ...parts)
  return {
    root,
    config: at('hsmgate.yaml'),
    policies: at('policies'),
    softhsmConf: at('hsm', 'softhsm2.conf'),
    tokens: at('hsm', 'tokens'),
    secrets: at('secrets'),
    pinFile: (member: string) => at('secrets', `${member}.pin`),
    soPinFile: (member: string) => at('secrets', `${member}.so-pin`),
    decisionSecret: at('secrets', 'decision.key'),
    caCert: at('pki', 'ca.crt'),
    trustBundle: at('pki', 'trust-bundle.pem'),
    probeCert: at('pki', 'probe.crt'),
    probeKey: at('pki', 'probe.key'),
    appDir: (app: string) => at('apps', app),
    store: at('store', 'hsmgate.db'),
    runtime: at('run'),
    logs: at('logs'),
  }
}

export type StateLayout = ReturnType<typeof stateLayout>
