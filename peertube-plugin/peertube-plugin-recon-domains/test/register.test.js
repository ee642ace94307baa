'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const pluginDir = path.join(__dirname, '..')
const plugin = require(path.join(pluginDir, 'main.js'))

// The expected categories come from the data file itself, read here without main.js: a
// domain added there is expected everywhere below, with no number to update.
const DATA_FILE = path.join(pluginDir, 'categories.json')
const DATA_TEXT = fs.readFileSync(DATA_FILE, 'utf8')
const EXPECTED = Object.entries(JSON.parse(DATA_TEXT)).map(([id, label]) => [Number(id), label])

// A recording stand-in for PeerTube's videoCategoryManager, with PeerTube's semantics:
// the built-in categories are present, addConstant refuses an id that already exists
// (returns false), deleteConstant refuses an unknown id, getConstants is the live table.

const BUILT_IN_CATEGORIES = Object.freeze({
  1: 'Music',
  2: 'Films',
  3: 'Vehicles',
  4: 'Art',
  5: 'Sports',
  6: 'Travels',
  7: 'Gaming',
  8: 'People',
  9: 'Comedy',
  10: 'Entertainment',
  11: 'News & Politics',
  12: 'How To',
  13: 'Education',
  14: 'Activism',
  15: 'Science & Technology',
  16: 'Animals',
  17: 'Kids',
  18: 'Food'
})

function createFakeCategoryManager (initial = BUILT_IN_CATEGORIES) {
  const constants = { ...initial }
  const calls = []
  const added = []
  const deleted = []

  const manager = {
    addConstant (key, label) {
      calls.push({ method: 'addConstant', args: [key, label] })
      if (constants[key]) return false
      constants[key] = label
      added.push({ key, label })
      return true
    },
    deleteConstant (key) {
      calls.push({ method: 'deleteConstant', args: [key] })
      if (!constants[key]) return false
      deleted.push({ key, label: constants[key] })
      delete constants[key]
      return true
    },
    getConstantValue (key) {
      calls.push({ method: 'getConstantValue', args: [key] })
      return constants[key]
    },
    getConstants () {
      calls.push({ method: 'getConstants', args: [] })
      return constants
    },
    resetConstants () {
      calls.push({ method: 'resetConstants', args: [] })
      for (const key of Object.keys(constants)) delete constants[key]
      Object.assign(constants, initial)
    }
  }

  return { manager, constants, calls, added, deleted }
}

function createRecordingLogger () {
  const lines = []
  const log = level => (...args) => lines.push({ level, message: args.join(' ') })
  return { logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }, lines }
}

test('main.js exports register and unregister as functions', () => {
  assert.equal(typeof plugin.register, 'function')
  assert.equal(typeof plugin.unregister, 'function')
})

test('categories.json holds one "<id>": "<label>" entry per line, so a domain is one line', () => {
  const lines = DATA_TEXT.trimEnd().split('\n')
  assert.equal(lines[0], '{')
  assert.equal(lines[lines.length - 1], '}')
  const entries = lines.slice(1, -1)
  assert.equal(entries.length, EXPECTED.length, 'an entry spans several lines, or a key repeats')
  for (const line of entries) assert.match(line, /^ {2}"[1-9][0-9]*": ".+",?$/)
})

test('the category table is the data file: unique integer ids, unique non-empty labels', () => {
  assert.deepEqual(plugin.RECON_CATEGORIES.map(c => [c.id, c.label]), EXPECTED)
  assert.ok(EXPECTED.length > 0)
  const ids = plugin.RECON_CATEGORIES.map(c => c.id)
  assert.equal(new Set(ids).size, ids.length)
  for (const { id, label } of plugin.RECON_CATEGORIES) {
    assert.ok(Number.isInteger(id), `id ${id} is not an integer`)
    assert.ok(!(id in BUILT_IN_CATEGORIES), `id ${id} is one of PeerTube's built-in categories`)
    assert.equal(typeof label, 'string')
    assert.ok(label.trim().length > 0, `label of ${id} is empty`)
    assert.equal(label, label.trim(), `label of ${id} has surrounding whitespace`)
  }
  const labels = plugin.RECON_CATEGORIES.map(c => c.label)
  assert.equal(new Set(labels).size, labels.length, 'labels are not unique')
})

test('register adds exactly the data file\'s categories with addConstant', async () => {
  const fake = createFakeCategoryManager()
  await plugin.register({ videoCategoryManager: fake.manager })

  const addCalls = fake.calls.filter(c => c.method === 'addConstant')
  assert.equal(addCalls.length, EXPECTED.length)
  assert.deepEqual(fake.added.map(a => [a.key, a.label]), EXPECTED)
  const ids = fake.added.map(a => a.key)
  assert.equal(new Set(ids).size, EXPECTED.length, 'an id was added twice')
  for (const id of ids) {
    assert.ok(Number.isInteger(id) && !(id in BUILT_IN_CATEGORIES), `id ${id} is not a RECON id`)
  }
  for (const { label } of fake.added) assert.ok(label.length > 0)
})

test('register never touches the built-in categories 1-18', async () => {
  const fake = createFakeCategoryManager()
  await plugin.register({ videoCategoryManager: fake.manager })

  assert.deepEqual(fake.deleted, [])
  assert.ok(!fake.calls.some(c => c.method === 'deleteConstant' || c.method === 'resetConstants'))
  for (const call of fake.calls.filter(c => c.method === 'addConstant')) {
    assert.ok(!(Number(call.args[0]) in BUILT_IN_CATEGORIES), `addConstant(${call.args[0]}) hits a built-in id`)
  }
  for (const [id, label] of Object.entries(BUILT_IN_CATEGORIES)) {
    assert.equal(fake.constants[id], label, `built-in category ${id} changed`)
  }
  assert.equal(
    Object.keys(fake.constants).length,
    Object.keys(BUILT_IN_CATEGORIES).length + EXPECTED.length
  )
})

test('register warns, without throwing, when an id is already taken', async () => {
  const [taken] = EXPECTED[EXPECTED.length - 1]
  const fake = createFakeCategoryManager({ ...BUILT_IN_CATEGORIES, [taken]: 'Someone else' })
  const { logger, lines } = createRecordingLogger()
  await plugin.register({ videoCategoryManager: fake.manager, peertubeHelpers: { logger } })

  assert.equal(fake.constants[taken], 'Someone else', 'an existing label was overwritten')
  assert.equal(fake.added.length, EXPECTED.length - 1)
  const warnings = lines.filter(l => l.level === 'warn')
  assert.equal(warnings.length, 1)
  assert.match(warnings[0].message, new RegExp(`category ${taken} `))
  assert.match(warnings[0].message, /Someone else/)
})

test('register works without peertubeHelpers (older call shape)', async () => {
  const [taken] = EXPECTED[0]
  const fake = createFakeCategoryManager({ ...BUILT_IN_CATEGORIES, [taken]: 'Taken' })
  await assert.doesNotReject(plugin.register({ videoCategoryManager: fake.manager }))
  assert.equal(fake.added.length, EXPECTED.length - 1)
})

test('unregister is callable and leaves cleanup to PeerTube', async () => {
  const fake = createFakeCategoryManager()
  await plugin.register({ videoCategoryManager: fake.manager })
  const callsBefore = fake.calls.length

  await assert.doesNotReject(async () => plugin.unregister())
  await assert.doesNotReject(async () => plugin.unregister({ videoCategoryManager: fake.manager }))
  // PeerTube resets the plugin's constants itself after unregister(); deleting them here
  // would make PeerTube restore them after a reinstall.
  assert.equal(fake.calls.length, callsBefore)
})

test('registering twice (reinstall) adds nothing the second time and throws nothing', async () => {
  const fake = createFakeCategoryManager()
  await plugin.register({ videoCategoryManager: fake.manager })
  await plugin.register({ videoCategoryManager: fake.manager })
  assert.equal(fake.added.length, EXPECTED.length)
})
