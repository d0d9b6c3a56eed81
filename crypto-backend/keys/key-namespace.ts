/**
 * Key names belong to applications. A key's name starts with the name of the application that
 * owns it and a hyphen: `payments-signing` is in the namespace of `payments`. When several
 * applications prefix a name (`card` and `card-vault` for `card-vault-signing`), the longest
 * application name owns it, so `card` cannot take names meant for `card-vault`.
 */

/**
 * Returns the application name of an application principal (`spiffe://<domain>/app/<name>`),
 * or undefined for the gateway's own service principals.
 */
export function applicationOf(principal: string): string | undefined {
  return /^spiffe:\/\/[^/]+\/app\/([a-z0-9-]+)$/.exec(principal)?.[1]
}

/** Returns the prefix a key name needs to be in the namespace of application `app`. */
export function namespacePrefix(app: string): string {
  return `${app}-`
}

/**
 * Returns the application whose namespace contains `keyName`: the longest name accepted by
 * `isApplication` that, followed by a hyphen and at least one more character, starts the key
 * name. Returns '' when no application does.
 */
export function namespaceOwner(keyName: string, isApplication: (app: string) => boolean): string {
  return ownerCandidates(keyName).find(isApplication) ?? ''
}

/**
 * Returns the namespace owner like `namespaceOwner`, for an `isApplication` that reads the
 * store. It asks about one candidate at a time, longest first, and stops at the first match.
 */
export async function lookUpNamespaceOwner(
  keyName: string,
  isApplication: (app: string) => Promise<boolean>,
): Promise<string> {
  for (const candidate of ownerCandidates(keyName)) {
    if (await isApplication(candidate)) return candidate
  }
  return ''
}

/** Returns the prefixes of a key name that end just before a hyphen, longest first. */
function ownerCandidates(keyName: string): string[] {
  const candidates: string[] = []
  let hyphen = keyName.lastIndexOf('-', keyName.length - 2)
  while (hyphen > 0) {
    candidates.push(keyName.slice(0, hyphen))
    hyphen = keyName.lastIndexOf('-', hyphen - 1)
  }
  return candidates
}

/**
 * Returns true when application `app` may create a key named `keyName`: the name starts with
 * `<app>-` and no other application with a longer name claims it. `isRegistered` returns
 * whether another application exists.
 */
export async function mayCreateInNamespace(
  keyName: string,
  app: string,
  isRegistered: (name: string) => Promise<boolean>,
): Promise<boolean> {
  const owner = await lookUpNamespaceOwner(
    keyName,
    async (name) => name === app || (await isRegistered(name)),
  )
  return owner === app
}
