import { describe, expect, it } from 'vitest'
import { lookUpNamespaceOwner, mayCreateInNamespace, namespaceOwner } from './key-namespace.js'

const registered =
  (...apps: string[]) =>
  (name: string) =>
    apps.includes(name)

/** A registry lookup that answers later, as the store does, and records what it was asked. */
const lookup = (asked: string[], ...apps: string[]) => {
  return async (name: string) => {
    asked.push(name)
    await new Promise((resolve) => setImmediate(resolve))
    return apps.includes(name)
  }
}

describe('key namespace', () => {
  it('assigns a name to the application it starts with', () => {
    expect(namespaceOwner('payments-signing', registered('payments', 'reporting'))).toBe('payments')
    expect(namespaceOwner('payments-eu-data', registered('payments'))).toBe('payments')
  })

  it('prefers the longest application name', () => {
    const apps = registered('card', 'card-vault')
    expect(namespaceOwner('card-vault-signing', apps)).toBe('card-vault')
    expect(namespaceOwner('card-signing', apps)).toBe('card')
  })

  it('leaves names without an owner empty', () => {
    expect(namespaceOwner('signing', registered('payments'))).toBe('')
    expect(namespaceOwner('payments-', registered('payments'))).toBe('')
    expect(namespaceOwner('paymentsx-signing', registered('payments'))).toBe('')
    expect(namespaceOwner('-payments', registered('payments'))).toBe('')
  })

  it('lets an application create only its own names', async () => {
    const apps = lookup([], 'payments', 'reporting', 'card', 'card-vault')
    expect(await mayCreateInNamespace('payments-x', 'payments', apps)).toBe(true)
    expect(await mayCreateInNamespace('payments-x', 'reporting', apps)).toBe(false)
    expect(await mayCreateInNamespace('reporting', 'reporting', apps)).toBe(false)
    expect(await mayCreateInNamespace('card-vault-x', 'card', apps)).toBe(false)
    expect(await mayCreateInNamespace('card-x', 'card', apps)).toBe(true)
    // An application not in the registry still gets its own prefix.
    expect(await mayCreateInNamespace('new-app-x', 'new-app', lookup([]))).toBe(true)
  })

  it('looks up candidates longest first and stops at the owner', async () => {
    const asked: string[] = []
    const owner = await lookUpNamespaceOwner('card-vault-eu-signing', lookup(asked, 'card-vault'))
    expect(owner).toBe('card-vault')
    expect(asked).toEqual(['card-vault-eu', 'card-vault'])
    expect(await lookUpNamespaceOwner('signing', lookup([], 'signing'))).toBe('')
  })
})
