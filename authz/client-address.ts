import { BlockList, isIP } from 'node:net'

/** Upper bound on x-forwarded-for entries read; a longer header counts as untrusted. */
const MAX_FORWARDED_ENTRIES = 32

/** Networks of proxies whose x-forwarded-for entries authz believes. */
export type TrustedProxies = BlockList

/** Builds the trusted proxy set from CIDRs such as '10.0.0.0/8' or '2001:db8::/32'. */
export function trustedProxies(cidrs: readonly string[]): TrustedProxies {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const [network = '', prefix = ''] = cidr.split('/')
    const family = isIP(network)
    if (family === 0 || !/^\d{1,3}$/.test(prefix)) {
      throw new TypeError(`'${cidr}' is not an IP network in CIDR notation`)
    }
    list.addSubnet(network, Number(prefix), family === 4 ? 'ipv4' : 'ipv6')
  }
  return list
}

function isTrusted(proxies: TrustedProxies, address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  return proxies.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/**
 * Returns the address of the client that sent the request. When the TCP peer is not a trusted
 * proxy, that is the peer itself and x-forwarded-for is ignored, so a client cannot claim
 * another address. When the peer is trusted, the x-forwarded-for entries are read from the right
 * (Envoy appends the peer it saw) and the first one outside the trusted networks is the client.
 * An entry that is not an IP address ends the walk with that entry, which then matches no host.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  proxies: TrustedProxies,
): string {
  if (!isTrusted(proxies, peer)) return peer
  const entries = (forwardedFor ?? '').split(',').map((entry) => entry.trim())
  if (entries.length > MAX_FORWARDED_ENTRIES) return ''
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as string
    if (entry === '') continue
    if (!isTrusted(proxies, entry)) return entry
  }
  return peer
}
