import pkcs11js from 'pkcs11js'
import type { MemberConfig } from '../../config/schema.js'
import type { Logger } from '../../log/logger.js'
import { provisionClusterKek } from './cluster-kek.js'
import { ClusterMember, type MemberStatus } from './cluster-member.js'
import {
  anyMemberHoldsKey,
  runOnAnyMember,
  runOnKeyHolder,
  type KeySelector,
  type MemberAction,
} from './dispatch.js'
import { HsmError } from './errors.js'
import * as checks from './input-checks.js'
import { KEY_KINDS } from './key-kinds.js'
import { generateReplicated } from './key-replication.js'
import { keySpec } from './key-specs.js'
import type { KeyRef } from './key-templates.js'
import * as crypto from './member-crypto.js'
import { readPublicKeySpki } from './public-key.js'
import type { KeyType } from '../../store/index.js'

export interface HsmClusterOptions {
  logger: Logger
  /** Set in process.env before any module loads, e.g. SOFTHSM2_CONF. */
  environment?: Record<string, string>
  /** How often every member gets its health check (failed ones a full re-check); default 5000 ms. */
  recheckIntervalMs?: number
}

const DEFAULT_RECHECK_INTERVAL_MS = 5_000

/**
 * A set of HSMs with the same keys. Operations go round-robin over the healthy members that have
 * the key. A member fault marks the member failed, and the operation is retried once on the
 * next member. A background re-check returns failed members to service.
 */
export class HsmCluster {
  private next = 0
  private closed = false
  private readonly timer: NodeJS.Timeout
  private rechecking = false

  private constructor(
    private readonly members: ClusterMember[],
    private readonly logger: Logger,
    recheckIntervalMs: number,
  ) {
    this.timer = setInterval(() => void this.recheckFailed(), recheckIntervalMs)
    this.timer.unref()
  }

  /**
   * Opens every member: loads its module, finds its token and logs in. A missing token, PIN or
   * a wrong PIN stops start-up with an HsmError that names the member and the fix.
   */
  static async open(members: MemberConfig[], options: HsmClusterOptions): Promise<HsmCluster> {
    const names = members.map((member) => member.name)
    if (members.length === 0 || new Set(names).size !== names.length) {
      throw new HsmError(
        'hsm_unavailable',
        `HSM members must be at least one, with unique names (got ${names.join(', ')})`,
      )
    }
    Object.assign(process.env, options.environment ?? {})
    const opened: ClusterMember[] = []
    try {
      for (const config of members) opened.push(ClusterMember.open(config, options.logger))
    } catch (error) {
      await Promise.all(opened.map((member) => member.close()))
      throw error
    }
    const interval = options.recheckIntervalMs ?? DEFAULT_RECHECK_INTERVAL_MS
    return new HsmCluster(opened, options.logger, interval)
  }

  /**
   * Generates a key of `type` on one member and replicates it to every other healthy member
   * under the same CKA_ID. Returns the SubjectPublicKeyInfo DER for asymmetric keys.
   */
  async generateKey(type: KeyType, ref: KeyRef): Promise<Buffer | undefined> {
    this.requireOpen()
    checks.checkRef(ref)
    const kind = KEY_KINDS[type]
    if (kind === undefined) throw new HsmError('hsm_operation_failed', `unknown key type ${type}`)
    const spec = keySpec(kind, ref, `${type} key`)
    const source = await generateReplicated(this.members, spec, this.logger)
    this.logger.info({ key_id: ref.id.toString('hex'), label: ref.label, type }, 'key generated')
    const { member, objects } = source
    if (objects.public === undefined) return undefined
    const publicKey = objects.public
    return member.run('read public key', async (session) =>
      readPublicKeySpki(member.pkcs11, session, member.name, publicKey),
    )
  }

  /** Generates an EC P-256 key pair on every member; returns the SubjectPublicKeyInfo DER. */
  async generateEcKeyPair(ref: KeyRef, curve: 'P-256'): Promise<Buffer> {
    checks.checkCurve(curve)
    const spki = await this.generateKey('ec-p256', ref)
    if (spki === undefined) throw new Error('generated EC key has no public key')
    return spki
  }

  /** Generates an AES-256 key (CKA_ENCRYPT, CKA_DECRYPT, sensitive) on every member. */
  async generateAesKey(ref: KeyRef, bits: 256): Promise<void> {
    checks.checkAesBits(bits)
    await this.generateKey('aes-256', ref)
  }

  /** Returns the SubjectPublicKeyInfo DER of an EC, Ed25519 or RSA public key. */
  async publicKeySpki(id: Buffer): Promise<Buffer> {
    checks.checkId(id)
    return this.onKey(
      { id, objectClass: pkcs11js.CKO_PUBLIC_KEY },
      'publicKeySpki',
      async (member, session, key) => readPublicKeySpki(member.pkcs11, session, member.name, key),
    )
  }

  /** Signs a SHA-256 digest with CKM_ECDSA; returns r||s (64 bytes). */
  async signEcdsa(id: Buffer, digest: Buffer): Promise<Buffer> {
    checks.checkId(id)
    checks.checkDigest(digest)
    return this.onKey(
      { id, objectClass: pkcs11js.CKO_PRIVATE_KEY },
      'signEcdsa',
      (member, session, key) => crypto.signEcdsa(member.pkcs11, member.name, session, key, digest),
    )
  }

  /** Verifies r||s over a SHA-256 digest; a wrong signature returns false. */
  async verifyEcdsa(id: Buffer, digest: Buffer, rawSignature: Buffer): Promise<boolean> {
    checks.checkId(id)
    checks.checkDigest(digest)
    return this.onKey(
      { id, objectClass: pkcs11js.CKO_PUBLIC_KEY },
      'verifyEcdsa',
      (member, session, key) =>
        crypto.verifyEcdsa(member.pkcs11, member.name, session, key, digest, rawSignature),
    )
  }

  /** Encrypts with AES-GCM (128-bit tag); returns the ciphertext followed by the tag. */
  async encryptAesGcm(
    id: Buffer,
    input: { iv: Buffer; aad: Buffer; plaintext: Buffer },
  ): Promise<Buffer> {
    checks.checkId(id)
    checks.checkIv(input.iv)
    return this.onKey(
      { id, objectClass: pkcs11js.CKO_SECRET_KEY },
      'encryptAesGcm',
      (member, session, key) =>
        crypto.encryptAesGcm(member.pkcs11, member.name, session, key, input),
    )
  }

  /** Decrypts ciphertext||tag; a tag that does not verify is 'hsm_decrypt_failed'. */
  async decryptAesGcm(
    id: Buffer,
    input: { iv: Buffer; aad: Buffer; ciphertext: Buffer },
  ): Promise<Buffer> {
    checks.checkId(id)
    checks.checkIv(input.iv)
    checks.checkGcmCiphertext(input.ciphertext)
    return this.onKey(
      { id, objectClass: pkcs11js.CKO_SECRET_KEY },
      'decryptAesGcm',
      (member, session, key) =>
        crypto.decryptAesGcm(member.pkcs11, member.name, session, key, input),
    )
  }

  /** Returns `length` (1 to 65536) random bytes from C_GenerateRandom. */
  async random(length: number): Promise<Buffer> {
    this.requireOpen()
    checks.checkRandomLength(length)
    return runOnAnyMember(this.rotation(), 'random', async (member, session) =>
      crypto.generateRandom(member.pkcs11, member.name, session, length),
    )
  }

  /**
   * Creates the AES-256 cluster KEK with one value on every member. With one SO PIN per member
   * name the KEK is CKA_TRUSTED and new keys get CKA_WRAP_WITH_TRUSTED; see cluster-kek.ts.
   */
  async provisionClusterKek(options: { soPins?: Record<string, string> } = {}): Promise<void> {
    this.requireOpen()
    await provisionClusterKek(this.members, options.soPins, this.logger)
  }

  /**
   * Tells whether any healthy member has a key (private, public or secret) with this CKA_ID.
   * Throws 'hsm_unavailable' when no healthy member answers.
   */
  async hasKey(id: Buffer): Promise<boolean> {
    this.requireOpen()
    checks.checkId(id)
    return anyMemberHoldsKey(this.members, id)
  }

  status(): MemberStatus[] {
    return this.members.map((member) => member.status())
  }

  /** Stops the re-check, waits for running calls, closes sessions and finalizes the modules. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    await Promise.all(this.members.map((member) => member.close()))
  }

  /** Every member, healthy or not, in configuration order. */
  get memberList(): readonly ClusterMember[] {
    return this.members
  }

  /**
   * Runs `action` on a healthy member that holds the key, round-robin; a member fault marks the
   * member failed and the action is retried once on another member, so it must be idempotent.
   */
  onKey<T>(key: KeySelector, operation: string, action: MemberAction<T>): Promise<T> {
    this.requireOpen()
    return runOnKeyHolder(this.rotation(), key, operation, action)
  }

  /** Returns the healthy members, starting one further each call, to spread load round-robin. */
  private rotation(): ClusterMember[] {
    const healthy = this.members.filter((member) => member.healthy)
    if (healthy.length === 0) return []
    const start = this.next % healthy.length
    this.next = (this.next + 1) % Number.MAX_SAFE_INTEGER
    return [...healthy.slice(start), ...healthy.slice(0, start)]
  }

  private async recheckFailed(): Promise<void> {
    if (this.closed || this.rechecking) return
    this.rechecking = true
    try {
      for (const member of this.members) {
        if (this.closed) break
        if (member.healthy) await member.probe()
        else await member.recheck()
      }
    } finally {
      this.rechecking = false
    }
  }

  private requireOpen(): void {
    if (this.closed) throw new HsmError('hsm_unavailable', 'the HSM cluster is closed')
  }
}
