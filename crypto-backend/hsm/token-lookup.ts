import pkcs11js from 'pkcs11js'
import { HsmError, callSync } from './errors.js'

/** The token that a member uses, by label or by serial (exactly one is set). */
export interface TokenSelector {
  label?: string
  serial?: string
}

export interface FoundToken {
  slot: pkcs11js.Handle
  label: string
  serial: string
}

/**
 * Removes the padding of a CK_TOKEN_INFO text field. The standard pads with spaces; NUL bytes
 * also occur, because a token initialized with an unpadded label keeps whatever followed it.
 */
export function trimTokenText(text: string): string {
  return text.replace(/[ \0]+$/, '')
}

/** Human-readable form of a selector for messages, e.g. "label 'hsmgate-b'". */
export function describeSelector(selector: TokenSelector): string {
  return selector.label !== undefined
    ? `label '${selector.label}'`
    : `serial '${selector.serial ?? ''}'`
}

/** Lists the initialized tokens of a module with their slot, label and serial number. */
export function listTokens(pkcs11: pkcs11js.PKCS11, member: string): FoundToken[] {
  const slots = callSync(member, 'C_GetSlotList', () => pkcs11.C_GetSlotList(true))
  const tokens: FoundToken[] = []
  for (const slot of slots) {
    const info = callSync(member, 'C_GetTokenInfo', () => pkcs11.C_GetTokenInfo(slot))
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) continue
    tokens.push({
      slot,
      label: trimTokenText(info.label),
      serial: trimTokenText(info.serialNumber),
    })
  }
  return tokens
}

/**
 * Finds the slot that contains the selected token (C_GetSlotList(true) and C_GetTokenInfo). Throws
 * 'hsm_token_not_found' when no token or more than one token matches.
 */
export function findToken(
  pkcs11: pkcs11js.PKCS11,
  selector: TokenSelector,
  member: string,
  modulePath: string,
): FoundToken {
  const tokens = listTokens(pkcs11, member)
  const matches = tokens.filter((token) =>
    selector.label !== undefined
      ? token.label === selector.label
      : token.serial === (selector.serial ?? ''),
  )
  const [first] = matches
  if (first !== undefined && matches.length === 1) return first

  const wanted = describeSelector(selector)
  if (matches.length > 1) {
    throw new HsmError(
      'hsm_token_not_found',
      `member '${member}': ${matches.length} tokens with ${wanted} exist in ${modulePath}; ` +
        `set token_serial to one of ${matches.map((t) => `'${t.serial}'`).join(', ')}`,
      { member },
    )
  }
  throw new HsmError(
    'hsm_token_not_found',
    `member '${member}': token with ${wanted} not found in ${modulePath}; run ` +
      "'softhsm2-util --show-slots' (or 'pkcs11-tool --module MODULE --list-token-slots') with " +
      'the same SOFTHSM2_CONF to list tokens. SoftHSM2 reads its token directory at ' +
      'C_Initialize, so a token initialized by another process appears only after a restart',
    { member },
  )
}
