"""Plugins in the sandbox PeerTube: installing from a folder, uninstalling, re-registering.

Follows PeerTube 8.0.1's PluginManager (server/core/lib/plugins/plugin-manager.ts) and
VideoConstantManager: an install from disk takes the npm name from the folder's name,
checks package.json, upserts the ``plugin`` row (enabled, not uninstalled) and runs
``register()``; an uninstall unregisters whatever the plugin registered (its categories go
at once), then marks the row uninstalled, and answers success even when there was nothing
to uninstall. ``addConstant`` refuses an id that exists, so reinstalling an installed plugin
records nothing for it and a later uninstall leaves its categories until a restart
(PEERTUBE-FACTS.md, "Plugins").
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import psycopg2

from recon_domains.sandbox.peertube_store import SandboxStore, db_error_text
from recon_domains.taxonomy import PEERTUBE_BUILT_IN_CATEGORIES

log = logging.getLogger("recon_domains.sandbox.peertube")

PLUGIN_TYPE_PLUGIN = 1
PLUGIN_TYPE_THEME = 2
PLUGIN_PREFIX = "peertube-plugin-"
THEME_PREFIX = "peertube-theme-"


class PluginInstallFailed(Exception):
    """PluginManager.install threw: PeerTube logs the reason and answers 400."""


class CategoryRegistry:
    """PeerTube's video category table: built-ins plus what plugins' register() added.

    Each registration of a plugin starts a fresh record of what it added, and unregistering
    removes only what is in that record.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[int, str] = dict(PEERTUBE_BUILT_IN_CATEGORIES)
        self._added_by: dict[str, dict[int, str]] = {}

    def snapshot(self) -> dict[int, str]:
        """The current table, ids ascending (how Node serialises integer keys)."""
        with self._lock:
            return dict(sorted(self._table.items()))

    def label(self, category_id: int) -> str | None:
        """The label of a registered id, else None."""
        with self._lock:
            return self._table.get(category_id)

    def register(self, npm_name: str, categories: dict[int, str]) -> dict[int, str]:
        """Run a plugin's addConstant calls; returns what was really added."""
        with self._lock:
            added: dict[int, str] = {}
            for key, label in categories.items():
                if key in self._table:
                    log.warning("Cannot add video category %s by %s: already exists", key, npm_name)
                    continue
                self._table[key] = label
                added[key] = label
            self._added_by[npm_name] = added
            return added

    def is_registered(self, npm_name: str) -> bool:
        """Whether the plugin is registered (PluginManager.getRegisteredPluginOrTheme)."""
        with self._lock:
            return npm_name in self._added_by

    def unregister(self, npm_name: str) -> None:
        """Remove what the plugin's last registration added."""
        with self._lock:
            for key in self._added_by.pop(npm_name, {}):
                self._table.pop(key, None)

    def reset(self) -> None:
        """Back to the built-ins (a restart, before plugins register again)."""
        with self._lock:
            self._table = dict(PEERTUBE_BUILT_IN_CATEGORIES)
            self._added_by.clear()


def npm_name_of(row: dict[str, Any]) -> str:
    """PluginModel.buildNpmName."""
    prefix = THEME_PREFIX if row["type"] == PLUGIN_TYPE_THEME else PLUGIN_PREFIX
    return prefix + row["name"]


def split_npm_name(npm_name: str) -> tuple[str, int]:
    """(name, type) as PluginModel.normalizePluginName / getTypeFromNpmName read them."""
    plugin_type = PLUGIN_TYPE_PLUGIN if npm_name.startswith(PLUGIN_PREFIX) else PLUGIN_TYPE_THEME
    for prefix in (PLUGIN_PREFIX, THEME_PREFIX):
        if npm_name.startswith(prefix):
            return npm_name[len(prefix):], plugin_type
    return npm_name, plugin_type


class SandboxPlugins:
    """The plugin manager: the ``plugin`` table in PostgreSQL, the category registry in
    memory (rebuilt from the table at start, as PeerTube re-registers plugins)."""

    def __init__(self, store: SandboxStore, categories: CategoryRegistry,
                 node: str | None) -> None:
        self.store = store
        self.categories = categories
        self.node = node
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """What a PeerTube restart does to plugins: built-ins, then every installed plugin's
        categories again."""
        with self._lock:
            # invented: the categories recorded at install are registered again; PeerTube
            # runs each plugin's register() anew.
            self.categories.reset()
            for row in self.store.plugins(uninstalled=False, plugin_type=PLUGIN_TYPE_PLUGIN):
                recorded = row.get("sandboxCategories") or {}
                self.categories.register(
                    npm_name_of(row), {int(k): v for k, v in recorded.items()}
                )

    def install_from_disk(self, path: str) -> dict[str, Any]:
        """Install a plugin folder like ``PluginManager.install({fromDisk: true})``; returns
        the ``plugin`` row. Raises PluginInstallFailed (the reason is logged only)."""
        from recon_domains.peertube import plugin_check

        folder = Path(path)
        npm_name = folder.name
        # invented: PeerTube runs `yarn add file:<path>` from its plugins folder; the
        # sandbox needs an absolute path to an existing folder instead.
        if not folder.is_absolute() or not folder.is_dir():
            log.warning("Cannot install plugin %s: not an existing absolute folder", path)
            raise PluginInstallFailed(path)
        if not npm_name.startswith(PLUGIN_PREFIX):
            # invented: themes (peertube-theme-*) would install as type 2 in PeerTube; the
            # sandbox refuses them like any other non-plugin folder.
            log.warning("Cannot install plugin %s: %s is not a plugin npm name", path, npm_name)
            raise PluginInstallFailed(path)
        problems, added = plugin_check.check_and_register(folder, node=self.node)
        if problems:
            # invented: when register() itself throws, PeerTube has already upserted the row
            # and marks it uninstalled while cleaning up; the sandbox leaves no row.
            log.warning("Cannot install plugin %s: %s", path, "; ".join(problems))
            raise PluginInstallFailed(path)
        package = json.loads((folder / "package.json").read_text(encoding="utf-8"))
        name, plugin_type = split_npm_name(npm_name)
        with self._lock:
            try:
                row = self.store.upsert_plugin(self._row(name, plugin_type, package, folder,
                                                         added))
            except psycopg2.Error as exc:  # e.g. a description longer than the column
                log.warning("Cannot install plugin %s: %s", path, db_error_text(exc))
                raise PluginInstallFailed(path) from None
            # Like PeerTube 8.0.1, reinstalling an installed plugin registers it again
            # without unregistering it first (see CategoryRegistry).
            self.categories.register(npm_name, added)
            return row

    @staticmethod
    def _row(name: str, plugin_type: int, package: dict[str, Any], folder: Path,
             added: dict[int, str]) -> dict[str, Any]:
        return {
            "name": name,
            "type": plugin_type,
            "version": str(package.get("version", "0.0.0")),
            "peertubeEngine": str((package.get("engine") or {}).get("peertube", "")),
            "description": str(package.get("description", "")),
            "homepage": str(package.get("homepage", "")),
            "path": str(folder),
            "categories": {str(k): v for k, v in added.items()},
        }

    def uninstall(self, npm_name: str) -> None:
        """PluginManager.uninstall: unregister at once, then mark the row uninstalled (a
        missing or already uninstalled row is only logged)."""
        name, plugin_type = split_npm_name(npm_name)
        with self._lock:
            if self.categories.is_registered(npm_name):
                self.categories.unregister(npm_name)
            else:
                log.warning("Cannot unregister plugin %s: unknown plugin", npm_name)
            row = self.store.plugin(name, plugin_type)
            if row is None or row["uninstalled"]:
                log.error("Cannot uninstall plugin %s: it does not exist or is already "
                          "uninstalled.", npm_name)
                return
            self.store.mark_uninstalled(name, plugin_type)
