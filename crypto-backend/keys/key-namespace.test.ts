import { describe, expect, it } from 'vitest'
import { mayCreateInNamespace, namespaceOwner } from './key-namespace.js'

const registered =
  (...apps: string[]) =>
  (name: string) =>
    apps.includes(name)

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

  it('lets an application create only its own names', () => {
    const apps = registered('payments', 'reporting', 'card', 'card-vault')
    expect(mayCreateInNamespace('payments-x', 'payments', apps)).toBe(true)
    expect(mayCreateInNamespace('payments-x', 'reporting', apps)).toBe(false)
    expect(mayCreateInNamespace('reporting', 'reporting', apps)).toBe(false)
    expect(mayCreateInNamespace('card-vault-x', 'card', apps)).toBe(false)
    expect(mayCreateInNamespace('card-x', 'card', apps)).toBe(true)
    // An application not in the registry still gets its own prefix.
    expect(mayCreateInNamespace('new-app-x', 'new-app', registered())).toBe(true)
  })
})
