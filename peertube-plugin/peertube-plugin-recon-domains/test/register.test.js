'use strict'

const { test } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const plugin = require(path.join(__dirname, '..', 'main.js'))

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

const EXPECTED_IDS = Array.from({ length: 18 }, (_, i) => 100 + i)

test('main.js exports register and unregister as functions', () => {
  assert.equal(typeof plugin.register, 'function')
  assert.equal(typeof plugin.unregister, 'function')
})

test('the category table holds 18 unique ids 100-117 with non-empty labels', () => {
  const ids = plugin.RECON_CATEGORIES.map(c => c.id)
  assert.deepEqual([...ids].sort((a, b) => a - b), EXPECTED_IDS)
  assert.equal(new Set(ids).size, 18)
  for (const { id, label } of plugin.RECON_CATEGORIES) {
    assert.ok(Number.isInteger(id), `id ${id} is not an integer`)
    assert.equal(typeof label, 'string')
    assert.ok(label.trim().length > 0, `label of ${id} is empty`)
    assert.equal(label, label.trim(), `label of ${id} has surrounding whitespace`)
  }
  assert.equal(new Set(plugin.RECON_CATEGORIES.map(c => c.label)).size, 18, 'labels are not unique')
})

test('register adds exactly the 18 categories with addConstant', async () => {
  const fake = createFakeCategoryManager()
  await plugin.register({ videoCategoryManager: fake.manager })

  const addCalls = fake.calls.filter(c => c.method === 'addConstant')
  assert.equal(addCalls.length, 18)
  assert.deepEqual(
    fake.added.map(a => [a.key, a.label]),
    plugin.RECON_CATEGORIES.map(c => [c.id, c.label])
  )
  const ids = fake.added.map(a => a.key)
  assert.equal(new Set(ids).size, 18, 'an id was added twice')
  for (const id of ids) {
    assert.ok(Number.isInteger(id) && id >= 100 && id <= 117, `id ${id} outside 100-117`)
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
  assert.equal(Object.keys(fake.constants).length, 18 + 18)
})

test('register warns, without throwing, when an id is already taken', async () => {
  const fake = createFakeCategoryManager({ ...BUILT_IN_CATEGORIES, 105: 'Someone else' })
  const { logger, lines } = createRecordingLogger()
  await plugin.register({ videoCategoryManager: fake.manager, peertubeHelpers: { logger } })

  assert.equal(fake.constants[105], 'Someone else', 'an existing label was overwritten')
  assert.equal(fake.added.length, 17)
  const warnings = lines.filter(l => l.level === 'warn')
  assert.equal(warnings.length, 1)
  assert.match(warnings[0].message, /105/)
  assert.match(warnings[0].message, /Someone else/)
})

test('register works without peertubeHelpers (older call shape)', async () => {
  const fake = createFakeCategoryManager({ ...BUILT_IN_CATEGORIES, 100: 'Taken' })
  await assert.doesNotReject(plugin.register({ videoCategoryManager: fake.manager }))
  assert.equal(fake.added.length, 17)
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
  assert.equal(fake.added.length, 18)
})
