'use strict'

// The checks PeerTube v8 makes on package.json at install (PackageJSON is invalid → the API
// answers only "Cannot install plugin").

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const pluginDir = path.join(__dirname, '..')
const pkg = JSON.parse(fs.readFileSync(path.join(pluginDir, 'package.json'), 'utf8'))

function isHttpUrl (value) {
  try {
    const url = new URL(value)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.includes('.')
  } catch {
    return false
  }
}

function isSafePath (p) {
  return typeof p === 'string' && p.split(/[\\/]/).every(part => part !== '..')
}

test('name is a valid PeerTube plugin npm name and equals the folder name', () => {
  assert.equal(pkg.name, 'peertube-plugin-recon-domains')
  assert.match(pkg.name, /^[a-z\-._0-9]+$/)
  assert.ok(pkg.name.startsWith('peertube-plugin-'))
  assert.ok(pkg.name.length <= 214)
  // PeerTube derives the npm name from the folder name when installing from a path.
  assert.equal(path.basename(path.resolve(pluginDir)), pkg.name)
})

test('version is x.y.z', () => {
  assert.match(pkg.version, /^\d+\.\d+\.\d+(-(rc|alpha|beta)\.\d+)?$/)
})

test('description, engine.peertube, author and keywords are present', () => {
  assert.equal(typeof pkg.description, 'string')
  assert.ok(pkg.description.length >= 1 && pkg.description.length <= 20000)
  assert.equal(typeof pkg.engine, 'object')
  assert.equal(pkg.engine.peertube, '>=6.0.0')
  assert.ok(pkg.author !== undefined && pkg.author !== null && pkg.author !== '')
  assert.ok(Array.isArray(pkg.keywords) && pkg.keywords.length > 0)
})

test('homepage and bugs are plain URL strings (PeerTube rejects npm\'s {url} object)', () => {
  for (const field of ['homepage', 'bugs']) {
    assert.equal(typeof pkg[field], 'string', `${field} must be a string`)
    assert.ok(isHttpUrl(pkg[field]), `${field} is not an http(s) URL: ${pkg[field]}`)
  }
})

test('library is a safe relative path to a file that exists', () => {
  assert.equal(pkg.library, './main.js')
  assert.ok(isSafePath(pkg.library))
  assert.ok(!path.isAbsolute(pkg.library))
  const resolved = path.resolve(pluginDir, pkg.library)
  assert.ok(resolved.startsWith(path.resolve(pluginDir) + path.sep), 'library escapes the plugin folder')
  assert.ok(fs.statSync(resolved).isFile())
  const lib = require(resolved)
  assert.equal(typeof lib.register, 'function')
  assert.equal(typeof lib.unregister, 'function')
})

test('staticDirs, css, clientScripts and translations have the shapes PeerTube accepts', () => {
  assert.deepEqual(pkg.staticDirs, {})
  assert.deepEqual(pkg.css, [])
  assert.deepEqual(pkg.clientScripts, [])
  assert.deepEqual(pkg.translations, {})
})

// PeerTube 8 installs a plugin folder with `pnpm add file:<folder>`, which copies only the
// files npm would pack (the "files" list, .npmignore); npm pack --dry-run lists exactly those.
test('every file the library loads travels with the package (categories.json too)', t => {
  // What loading the library alone pulls in, in a fresh Node (this test file is not).
  const library = path.resolve(pluginDir, pkg.library)
  const cached = execFileSync(process.execPath, [
    '-e', 'require(process.argv[1]); console.log(JSON.stringify(Object.keys(require.cache)))',
    library
  ], { encoding: 'utf8' })
  const loaded = JSON.parse(cached)
    .filter(f => f.startsWith(path.resolve(pluginDir) + path.sep))
    .map(f => path.relative(pluginDir, f).split(path.sep).join('/'))
  assert.ok(loaded.includes('categories.json'), `main.js did not load categories.json: ${loaded}`)

  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'recon-npm-cache-'))
  let out
  try {
    out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: pluginDir, encoding: 'utf8', env: { ...process.env, npm_config_cache: cache }
    })
  } catch (e) {
    if (e.code === 'ENOENT') return t.skip('npm is not installed: cannot list the packed files')
    throw e
  } finally {
    fs.rmSync(cache, { recursive: true, force: true })
  }
  const packed = JSON.parse(out)[0].files.map(f => f.path)
  for (const file of ['package.json', ...loaded]) {
    assert.ok(packed.includes(file), `${file} would not be installed by PeerTube: ${packed}`)
  }
})
