import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { ROOT } from './gateway-process.js'

/** The fenced blocks of docs/policy-guide.md by language. */
export function guideBlocks(): { cedar: string[]; yaml: string[] } {
  const text = readFileSync(join(ROOT, 'docs', 'policy-guide.md'), 'utf8')
  const blocks = { cedar: [] as string[], yaml: [] as string[] }
  for (const match of text.matchAll(/^```(cedar|yaml)\n([\s\S]*?)^```$/gm)) {
    blocks[match[1] as 'cedar' | 'yaml'].push(match[2] as string)
  }
  return blocks
}

/**
 * Writes the guide's policies into DIR/policies, one file per block named by its first-line
 * comment, and its cases into DIR/cases.yaml: the first yaml block holds the entities and every
 * later one adds cases. Returns DIR.
 */
export function writeGuideSetup(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hsmgate-guide-'))
  mkdirSync(join(dir, 'policies'))
  const { cedar, yaml } = guideBlocks()
  for (const block of cedar) {
    const name = /^\/\/ policies\/([a-z-]+\.cedar)\n/.exec(block)?.[1]
    if (name === undefined) throw new Error(`cedar block without a file comment:\n${block}`)
    writeFileSync(join(dir, 'policies', name), block)
  }
  const [entities, ...caseBlocks] = yaml.map((block) => parse(block) as Record<string, unknown>)
  const cases = caseBlocks.flatMap((block) => block.cases as unknown[])
  writeFileSync(join(dir, 'cases.yaml'), stringify({ policies: 'policies', ...entities, cases }))
  return dir
}
