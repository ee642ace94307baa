'use strict'

// RECON knowledge domains as PeerTube video categories (ids 100–117).
// The single source of truth is recon_domains/taxonomy.py; a Python test runs register()
// under Node with a recording manager and compares every id and label with it.
// PeerTube's built-in categories (1–18) are never touched.

const RECON_CATEGORIES = Object.freeze([
  Object.freeze({ id: 100, label: 'Agriculture & Livestock' }),
  Object.freeze({ id: 101, label: 'Civil Organization' }),
  Object.freeze({ id: 102, label: 'Communications' }),
  Object.freeze({ id: 103, label: 'Food Systems' }),
  Object.freeze({ id: 104, label: 'Foundational Skills' }),
  Object.freeze({ id: 105, label: 'Logistics' }),
  Object.freeze({ id: 106, label: 'Medical' }),
  Object.freeze({ id: 107, label: 'Navigation' }),
  Object.freeze({ id: 108, label: 'Operations' }),
  Object.freeze({ id: 109, label: 'Power Systems' }),
  Object.freeze({ id: 110, label: 'Preservation & Storage' }),
  Object.freeze({ id: 111, label: 'Security' }),
  Object.freeze({ id: 112, label: 'Shelter & Construction' }),
  Object.freeze({ id: 113, label: 'Technology' }),
  Object.freeze({ id: 114, label: 'Tools & Equipment' }),
  Object.freeze({ id: 115, label: 'Vehicles' }),
  Object.freeze({ id: 116, label: 'Water Systems' }),
  Object.freeze({ id: 117, label: 'Wilderness Skills' })
])

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
