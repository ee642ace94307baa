'use strict'

// RECON knowledge domains as PeerTube video categories. The ids and labels live in
// categories.json, one "<id>": "<label>" line per domain: the single source of truth, which
// the Python side (recon_domains/taxonomy.py) reads too. A Python test runs register() under
// Node with a recording manager and compares every id and label with the taxonomy.
// PeerTube's built-in categories (1–18) are never touched.

const RECON_CATEGORIES = Object.freeze(
  Object.entries(require('./categories.json'))
    .map(([id, label]) => Object.freeze({ id: Number(id), label }))
)

async function register ({ videoCategoryManager, peertubeHelpers }) {
  const logger = peertubeHelpers && peertubeHelpers.logger

  for (const { id, label } of RECON_CATEGORIES) {
    // PeerTube's addConstant returns false (and keeps the existing label) when the id is
    // already taken, e.g. by another plugin: say so, or pushes to that id would be mislabelled.
    const added = videoCategoryManager.addConstant(id, label)
    if (added === false && logger) {
      logger.warn(
        `recon-domains: category ${id} ("${label}") was not added: the id is already ` +
        `registered as "${videoCategoryManager.getConstantValue(id)}".`
      )
    }
  }
}

async function unregister () {
  // Nothing to do: on unregister PeerTube resets every constant this plugin added.
  // Deleting them here with deleteConstant() would be wrong after a reinstall: PeerTube's
  // manager then records them as *deleted* by this plugin and restores them on reset.
}

module.exports = { register, unregister, RECON_CATEGORIES }
