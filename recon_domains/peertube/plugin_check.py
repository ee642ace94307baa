"""PeerTube's install-time validation of a plugin folder, applied before PeerTube sees it.

When PeerTube (v6–v8) refuses a plugin, the API answers only ``400 Cannot install plugin
<path>`` and the reason is only in PeerTube's log. This module repeats PeerTube's checks so
an operator gets every reason up front:

- the rules on ``package.json`` (PeerTube's ``isPackageJSONValid``: name, description,
  engine.peertube, homepage, author, bugs, a safe ``library`` path, the shapes of
  staticDirs/css/clientScripts/translations when present), plus ``version``, which PeerTube's
  database refuses when it is not ``x.y.z``;
- the folder name, which PeerTube takes as the npm name when installing from a path;
- the library itself, loaded under Node like PeerTube does (``require``): it must export
  ``register`` and ``unregister``, ``register()`` must not throw (PeerTube would abort the
  install), and files PeerTube reads during registration (css, translations) must exist.

It also runs a plugin's ``register()`` with a recording ``videoCategoryManager`` to learn
which categories it adds (:func:`registered_categories_from_plugin`, used by the taxonomy
parity test; :func:`check_and_register` checks and records in one Node run for the sandbox
PeerTube server's install).

Plain Python: no dagster import (DESIGN §7).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recon_domains.settings import Settings
from recon_domains.taxonomy import PEERTUBE_BUILT_IN_CATEGORIES

__all__ = [
    "DEFAULT_NODE_TIMEOUT",
    "PEERTUBE_BUILT_IN_CATEGORIES",
    "PluginCheckError",
    "RegisterOutcome",
    "check_and_register",
    "check_plugin_folder",
    "find_node",
    "registered_categories_from_plugin",
    "require_valid_plugin",
    "run_plugin_register",
]

DEFAULT_NODE_TIMEOUT = 20.0

# PeerTube's constants (initializers/constants.ts, CONSTRAINTS_FIELDS.PLUGINS).
_NAME_MAX = 214
_DESCRIPTION_MAX = 20_000
_NPM_NAME_RE = re.compile(r"^[a-z\-._0-9]+$")
_PLUGIN_PREFIX = "peertube-plugin-"
# PeerTube's isStableOrUnstableVersionValid: x.y.z with an optional -rc.N/-alpha.N/-beta.N.
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(-(rc|alpha|beta)\.\d+)?$")
_TLD_RE = re.compile(r"^([a-z\u00a1-\uffff]{2,}|xn--[a-z0-9-]{2,})$", re.IGNORECASE)
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")



class PluginCheckError(RuntimeError):
    """A plugin folder PeerTube would refuse, or a plugin that could not be run.

    ``problems`` lists every reason, one operator-readable sentence each.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems)


@dataclass(frozen=True)
class RegisterOutcome:
    """What a plugin's ``register()`` did to PeerTube's category table (a recording fake).

    ``added``: categories present after register() that were not built in (id → label).
    ``removed``: built-in categories it deleted or relabelled (id → original label).
    ``refused``: addConstant calls PeerTube refuses because the id already existed.
    ``warnings``: what the plugin logged at warn or error level.
    ``unregister_error``: the error unregister() raised when called after register(), if any.
    """

    added: dict[int, str]
    removed: dict[int, str] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    unregister_error: str | None = None


# --------------------------------------------------------------------------- Node harness

# Loads a plugin library like PeerTube does (require), calls register() with a recording
# videoCategoryManager that behaves like PeerTube's (built-ins present, addConstant refuses
# an existing id, getConstants is the live table), then unregister(). It writes its state to
# a file after every stage, so a crash, a hang or an early exit still says where it stopped.
_HARNESS = r"""
'use strict'
const fs = require('fs')
const [libraryPath, statePath, builtInJson] = process.argv.slice(1)
const builtIn = JSON.parse(builtInJson)
const state = { stage: 'resolve', done: false, resolved: null, error: null,
  exports: null, final: [], calls: [], refused: [], logs: [], unregister_error: null,
  async_errors: [] }
const save = () => fs.writeFileSync(statePath, JSON.stringify(state))
const describe = e => (e && e.name && e.message !== undefined)
  ? `${e.name}: ${e.message}` : String(e)
process.on('uncaughtException', e => { state.async_errors.push(describe(e)); save() })
process.on('unhandledRejection', e => { state.async_errors.push(describe(e)); save() })

async function main () {
  save()
  try { state.resolved = require.resolve(libraryPath) } catch (e) {
    state.error = describe(e); return save()
  }
  state.stage = 'load'; save()
  let lib
  try { lib = require(state.resolved) } catch (e) { state.error = describe(e); return save() }
  state.exports = {
    register: typeof (lib && lib.register), unregister: typeof (lib && lib.unregister)
  }
  if (state.exports.register !== 'function') { state.stage = 'exports'; return save() }

  const constants = { ...builtIn }
  const keyOf = k => (typeof k === 'number' || typeof k === 'string') ? k : String(k)
  const manager = {
    addConstant (key, label) {
      state.calls.push(['addConstant', keyOf(key), label])
      if (constants[key]) { state.refused.push([keyOf(key), label]); return false }
      constants[key] = label
      return true
    },
    deleteConstant (key) {
      state.calls.push(['deleteConstant', keyOf(key)])
      if (!constants[key]) return false
      delete constants[key]
      return true
    },
    getConstantValue (key) { return constants[key] },
    getConstants () { return constants },
    resetConstants () {
      state.calls.push(['resetConstants'])
      for (const k of Object.keys(constants)) delete constants[k]
      Object.assign(constants, builtIn)
    }
  }
  const log = level => (...args) => { state.logs.push([level, args.map(String).join(' ')]) }
  const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
  const noop = () => undefined
  const options = {
    videoCategoryManager: { ...manager, addCategory: manager.addConstant,
      deleteCategory: manager.deleteConstant },
    peertubeHelpers: { logger },
    registerHook: noop,
    registerSetting: noop,
    getRouter: () => ({ get: noop, post: noop, put: noop, delete: noop, use: noop })
  }

  state.stage = 'register'; save()
  try { await lib.register(options) } catch (e) { state.error = describe(e); return save() }
  state.final = Object.entries(constants)
  state.stage = 'unregister'; save()
  if (state.exports.unregister === 'function') {
    try { await lib.unregister() } catch (e) { state.unregister_error = describe(e) }
  }
  state.stage = 'finished'; state.done = true; save()
  process.exit(0)
}
main().catch(e => { state.error = describe(e); save(); process.exit(0) })
"""


def find_node(node: str | None = None) -> str:
    """The Node.js executable to use: ``node`` if given, else the setting RECON_NODE (by
    default ``node`` on PATH).

    Raises PluginCheckError saying what to install when Node cannot be found.
    """
    candidate = node or Settings.from_env().node
    found = shutil.which(candidate)
    if found is None:
        raise PluginCheckError(
            f"Node.js was not found (looked for {candidate!r} on PATH). PeerTube loads plugins "
            "with Node, so the plugin cannot be checked without it: install Node.js 20 or "
            "newer, or set RECON_NODE to the node executable.",
            ["Node.js is not installed here; the plugin library could not be loaded"],
        )
    return found


def _run_harness(library: Path, *, node: str | None, timeout: float) -> dict[str, Any]:
    """Run the harness on one library file; returns its last saved state (see _HARNESS)."""
    node_exe = find_node(node)
    builtin = json.dumps({str(k): v for k, v in PEERTUBE_BUILT_IN_CATEGORIES.items()})
    with tempfile.TemporaryDirectory(prefix="recon-plugin-check-") as tmp:
        state_path = Path(tmp) / "state.json"
        try:
            proc = subprocess.run(
                [node_exe, "-e", _HARNESS, str(library), str(state_path), builtin],
                cwd=str(library.parent),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            state = _read_state(state_path) or {"stage": "start"}
            stage = state.get("stage", "start")
            state.update(
                done=False,
                timed_out=True,
                error=f"Node did not finish within {timeout:g} s (stuck at stage {stage!r})",
            )
            return state
        state = _read_state(state_path)
        if state is None:
            stderr = (proc.stderr or "").strip()[-2000:]
            return {
                "stage": "start",
                "done": False,
                "error": f"Node exited with code {proc.returncode} before loading the library"
                + (f": {stderr}" if stderr else ""),
            }
        if not state.get("done") and not state.get("error"):
            # Node left without finishing a stage: the plugin exited the process, or
            # register() returned a promise that never settled and nothing else was pending.
            if state.get("stage") == "register":
                state["error"] = (
                    "register() never finished: its promise never settled (Node exited with "
                    f"code {proc.returncode} while waiting)"
                )
            else:
                state["error"] = (
                    f"Node exited with code {proc.returncode} during stage {state.get('stage')!r}"
                )
            stderr = (proc.stderr or "").strip()[-1000:]
            if stderr:
                state["error"] += f"; stderr: {stderr}"
        return state


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- package.json


def _is_safe_path(value: object) -> bool:
    """PeerTube's isSafePath, stricter: a string with no '..' component ('/' or '\\')."""
    return isinstance(value, str) and all(part != ".." for part in re.split(r"[\\/]", value))


def _is_url(value: str) -> bool:
    """validator.isURL as PeerTube calls it: http(s), a host, a top-level domain."""
    if not value or value != value.strip() or any(c.isspace() for c in value):
        return False
    if len(value) > 2083:
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    if _IPV4_RE.match(host) or ":" in host:  # IPv4 or a bracketed IPv6 literal
        return True
    labels = host.split(".")
    # PeerTube requires a TLD unless its own hostname is localhost: be strict here.
    return len(labels) >= 2 and all(labels) and bool(_TLD_RE.match(labels[-1]))


def _check_url_field(pkg: Mapping[str, Any], name: str) -> str | None:
    if name not in pkg or pkg[name] is None:
        return (
            f'package.json: "{name}" is missing; PeerTube requires it: a URL such as '
            f'"https://example.org/recon" or an empty string ""'
        )
    value = pkg[name]
    if isinstance(value, dict):
        return (
            f'package.json: "{name}" is an object ({json.dumps(value)}); PeerTube accepts only a '
            'plain string: write the URL itself, e.g. "https://example.org/issues"'
        )
    if not isinstance(value, str):
        return f'package.json: "{name}" must be a URL string or "", found {json.dumps(value)}'
    if value and not _is_url(value):
        return (
            f'package.json: "{name}" is not an http(s) URL with a domain name: {value!r}; '
            'use a full URL such as "https://example.org/recon", or ""'
        )
    return None


def _library_candidates(base: Path) -> list[Path]:
    # The files Node's require() would try for a relative module path.
    return [
        base,
        base.with_name(base.name + ".js"),
        base.with_name(base.name + ".json"),
        base.with_name(base.name + ".node"),
        base / "index.js",
    ]


def _check_path_object(
    pkg: Mapping[str, Any], key: str, example: str, *, files_in: Path | None = None
) -> list[str]:
    """Problems of an optional ``{name: path}`` field (staticDirs, translations): an object
    whose paths stay inside the plugin folder and, with ``files_in``, are files there."""
    value = pkg.get(key)
    if not value:
        return []
    if not isinstance(value, dict):
        return [f'package.json: "{key}" must be an object {example}, found '
                f"{json.dumps(value)[:80]}"]
    problems: list[str] = []
    for name, path in value.items():
        if not _is_safe_path(path):
            problems.append(
                f'package.json: "{key}.{name}" must be a path inside the plugin folder (a '
                f'string without ".."), found {json.dumps(path)}'
            )
        elif files_in is not None and not (files_in / path).is_file():
            problems.append(
                f'package.json: "{key}.{name}" file {path!r} does not exist in {files_in}'
            )
    return problems


def _check_package_json(folder: Path, pkg: Mapping[str, Any]) -> tuple[list[str], Path | None]:
    """Problems in package.json; also the library path to load when it looks usable."""
    problems: list[str] = []

    name = pkg.get("name")
    if not isinstance(name, str) or not name:
        problems.append(
            'package.json: "name" is missing; it must be "peertube-plugin-<something>" in '
            "lower case, the same as the folder name"
        )
    else:
        if not _NPM_NAME_RE.match(name) or len(name) > _NAME_MAX:
            problems.append(
                f'package.json: "name" {name!r} is not a valid plugin name: only a-z, 0-9, "-", '
                f'"." and "_" are allowed, at most {_NAME_MAX} characters'
            )
        if not name.startswith(_PLUGIN_PREFIX):
            problems.append(
                f'package.json: "name" {name!r} must start with "{_PLUGIN_PREFIX}" (a '
                '"peertube-theme-" package is a theme, whose server code PeerTube never runs)'
            )
        folder_name = folder.name
        if folder_name != name:
            problems.append(
                f"the folder is named {folder_name!r} but the package is {name!r}: PeerTube takes "
                "the plugin's npm name from the folder name when installing from a path, so "
                f"rename the folder to {name!r}"
            )

    version = pkg.get("version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        problems.append(
            f'package.json: "version" must be "x.y.z" (optionally "-beta.N"), found '
            f"{json.dumps(version)}; PeerTube's database refuses anything else"
        )

    description = pkg.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= _DESCRIPTION_MAX:
        problems.append(
            f'package.json: "description" must be a non-empty string of at most '
            f"{_DESCRIPTION_MAX} characters, found {json.dumps(description)[:80]}"
        )

    engine = pkg.get("engine")
    if not isinstance(engine, dict) or engine.get("peertube") is None:
        problems.append(
            'package.json: "engine.peertube" is missing; add "engine": {"peertube": ">=6.0.0"}'
        )

    for url_field in ("homepage", "bugs"):
        problem = _check_url_field(pkg, url_field)
        if problem:
            problems.append(problem)

    if pkg.get("author") is None:
        problems.append('package.json: "author" is missing; PeerTube requires it (any value)')

    library_path: Path | None = None
    library = pkg.get("library")
    if not isinstance(library, str) or not library:
        problems.append(
            'package.json: "library" is missing; a server plugin needs it, e.g. "./main.js"'
        )
    elif not _is_safe_path(library):
        problems.append(
            f'package.json: "library" {library!r} contains ".."; PeerTube refuses paths that '
            'leave the plugin folder: point it at a file inside the folder, e.g. "./main.js"'
        )
    elif os.path.isabs(library):
        problems.append(
            f'package.json: "library" {library!r} is absolute; PeerTube joins it under the '
            'plugin folder, so write it relative, e.g. "./main.js"'
        )
    else:
        base = folder / library
        existing = [p for p in _library_candidates(base) if p.is_file()]
        if not existing:
            problems.append(
                f'package.json: "library" {library!r} does not exist in {folder}: PeerTube '
                "cannot load the plugin; add the file or fix the path"
            )
        else:
            library_path = existing[0]

    # PeerTube replaces a missing (or falsy) staticDirs/css/clientScripts/translations with an
    # empty value, then validates what is there.
    problems += _check_path_object(pkg, "staticDirs", '{"name": "relative/dir"}')

    css = pkg.get("css")
    if css:
        if not isinstance(css, list):
            problems.append(f'package.json: "css" must be a list of paths, found {json.dumps(css)}')
        else:
            for item in css:
                if not _is_safe_path(item):
                    problems.append(
                        f'package.json: "css" entry {json.dumps(item)} must be a path inside '
                        'the plugin folder (a string without "..")'
                    )
                elif not (folder / item).is_file():
                    # PeerTube concatenates these files while registering: a missing one
                    # fails the install.
                    problems.append(f'package.json: "css" file {item!r} does not exist in {folder}')

    client_scripts = pkg.get("clientScripts")
    if client_scripts:
        if not isinstance(client_scripts, list):
            problems.append(
                'package.json: "clientScripts" must be a list of {"script": ..., "scopes": [...]}'
                f", found {json.dumps(client_scripts)[:80]}"
            )
        else:
            for item in client_scripts:
                script = item.get("script") if isinstance(item, dict) else None
                scopes = item.get("scopes") if isinstance(item, dict) else None
                if not _is_safe_path(script) or not isinstance(scopes, list):
                    problems.append(
                        f'package.json: "clientScripts" entry {json.dumps(item)[:80]} needs a '
                        '"script" path inside the plugin folder and a "scopes" list'
                    )

    # PeerTube reads the translation files while registering: they must exist.
    problems += _check_path_object(
        pkg, "translations", '{"fr-FR": "languages/fr.json"}', files_in=folder
    )

    return problems, library_path


# --------------------------------------------------------------------------- public API


def _library_problems(state: Mapping[str, Any], library: Path) -> list[str]:
    """Turn the harness state into problems PeerTube would hit loading the library."""
    stage = state.get("stage")
    error = state.get("error")
    if state.get("timed_out") and stage == "unregister":
        return [
            f"unregister() of {library.name} never returns ({error}): PeerTube awaits it at "
            "uninstall and would never remove the plugin's categories"
        ]
    if state.get("timed_out"):
        return [f"loading and registering {library.name} under Node: {error}"]
    if stage in ("start", "resolve") and error:
        return [f"Node cannot find the library {library}: {error}"]
    if stage == "load" and error:
        return [f"the library {library.name} throws when loaded with require(): {error}"]
    problems: list[str] = []
    exports = state.get("exports") or {}
    missing = [n for n in ("register", "unregister") if exports.get(n) != "function"]
    if missing:
        problems.append(
            f"the library {library.name} does not export {' and '.join(missing)} as a function "
            "(PeerTube: 'Library code is not valid (miss register or unregister function)'); "
            "end it with module.exports = { register, unregister }"
        )
    if stage == "register" and error:
        problems.append(
            f"register() failed: {error}. PeerTube aborts the install when register() throws"
        )
    elif error and stage != "exports":
        problems.append(f"running the library under Node failed at stage {stage!r}: {error}")
    if state.get("unregister_error"):
        problems.append(
            f"unregister() throws: {state['unregister_error']}. PeerTube would then skip "
            "removing the plugin's categories at uninstall"
        )
    return problems


def _read_package_json(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    if not folder.is_dir():
        return None, [f"{folder} is not a directory; give the plugin folder"]
    pkg_file = folder / "package.json"
    if not pkg_file.is_file():
        return None, [f"{pkg_file} is missing; a PeerTube plugin folder needs a package.json"]
    try:
        pkg = json.loads(pkg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{pkg_file} is not valid JSON: {exc}"]
    if not isinstance(pkg, dict):
        return None, [f"{pkg_file} must hold a JSON object, found {type(pkg).__name__}"]
    return pkg, []


def _folder(path: str | os.PathLike[str]) -> Path:
    # Keep the folder's own name (no symlink resolution): PeerTube uses basename(path).
    return Path(os.path.normpath(os.path.abspath(path)))


def check_plugin_folder(
    path: str | os.PathLike[str],
    *,
    node: str | None = None,
    timeout: float = DEFAULT_NODE_TIMEOUT,
) -> list[str]:
    """Every reason PeerTube v8 would refuse to install the plugin folder at ``path``.

    An empty list means the folder passes. The library is loaded and its ``register()`` and
    ``unregister()`` are run under Node (``node``, else RECON_NODE, else PATH) with a recording
    category manager; when Node is missing, that is reported as a problem.
    """
    return _inspect(path, node=node, timeout=timeout)[0]


def check_and_register(
    path: str | os.PathLike[str],
    *,
    node: str | None = None,
    timeout: float = DEFAULT_NODE_TIMEOUT,
) -> tuple[list[str], dict[int, str]]:
    """:func:`check_plugin_folder` and :func:`registered_categories_from_plugin` with one
    Node run, as PeerTube's install does: (problems, the categories ``register()`` adds).

    The categories are empty when there are problems (a category ``register()`` cannot
    add, such as a non-integer id, is one).
    """
    problems, state, library = _inspect(path, node=node, timeout=timeout)
    if problems or state is None or library is None:
        return problems, {}
    try:
        return [], _register_outcome(state, library).added
    except PluginCheckError as exc:
        return [str(exc)], {}


def _inspect(
    path: str | os.PathLike[str], *, node: str | None, timeout: float
) -> tuple[list[str], dict[str, Any] | None, Path | None]:
    """(problems, harness state, library): the checks, and the Node run when it got that far."""
    folder = _folder(path)
    pkg, problems = _read_package_json(folder)
    if pkg is None:
        return problems, None, None
    problems, library = _check_package_json(folder, pkg)
    if library is None:
        return problems, None, None
    try:
        state = _run_harness(library, node=node, timeout=timeout)
    except PluginCheckError as exc:
        problems.append(str(exc))
        return problems, None, library
    problems.extend(_library_problems(state, library))
    return problems, state, library


def require_valid_plugin(
    path: str | os.PathLike[str],
    *,
    node: str | None = None,
    timeout: float = DEFAULT_NODE_TIMEOUT,
) -> None:
    """Raise PluginCheckError listing every problem when PeerTube would refuse the folder."""
    problems = check_plugin_folder(path, node=node, timeout=timeout)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PluginCheckError(
            f"The PeerTube plugin at {_folder(path)} would not install. PeerTube would answer "
            f"only 'Cannot install plugin'; the reasons are:\n{listing}\n"
            "Fix these, then check again before installing.",
            problems,
        )


def _library_of(path: str | os.PathLike[str]) -> Path:
    """The library file of a plugin folder (via package.json), or ``path`` if it is a file."""
    target = Path(path)
    if target.is_file():
        return target.resolve()
    folder = _folder(path)
    pkg, problems = _read_package_json(folder)
    if pkg is None:
        raise PluginCheckError(f"cannot run the plugin at {folder}: {problems[0]}", problems)
    problems, library = _check_package_json(folder, pkg)
    if library is None:
        library_problems = [p for p in problems if '"library"' in p] or problems
        raise PluginCheckError(
            f"cannot run the plugin at {folder}: " + "; ".join(library_problems), library_problems
        )
    return library


def _category_id(key: object) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and re.fullmatch(r"-?\d+", key.strip()):
        return int(key)
    raise PluginCheckError(
        f"the plugin registered a category with key {key!r}, which is not an integer id; "
        "PeerTube category ids are integers"
    )


def run_plugin_register(
    path: str | os.PathLike[str],
    *,
    node: str | None = None,
    timeout: float = DEFAULT_NODE_TIMEOUT,
) -> RegisterOutcome:
    """Run a plugin's real ``register()`` (then ``unregister()``) under Node and record it.

    ``path`` is a plugin folder (its package.json names the library) or the library file.
    The fake manager starts with PeerTube's built-in categories and behaves like PeerTube's.
    Raises PluginCheckError when Node is missing, the library cannot be loaded, has no
    ``register`` export, or ``register()`` throws, hangs or registers a non-integer id.
    """
    library = _library_of(path)
    return _register_outcome(_run_harness(library, node=node, timeout=timeout), library)


def _register_outcome(state: Mapping[str, Any], library: Path) -> RegisterOutcome:
    """The harness state of a register() run as a RegisterOutcome (see run_plugin_register)."""
    if state.get("stage") != "finished" and state.get("stage") != "unregister":
        exports = state.get("exports") or {}
        if state.get("stage") == "exports" or (exports and exports.get("register") != "function"):
            reason = f"{library.name} does not export a register function"
        else:
            reason = str(state.get("error") or f"stopped at stage {state.get('stage')!r}")
        raise PluginCheckError(
            f"running register() of {library} under Node failed: {reason}", [reason]
        )
    builtin = {str(k): v for k, v in PEERTUBE_BUILT_IN_CATEGORIES.items()}
    final: dict[str, Any] = {str(k): v for k, v in state.get("final") or []}
    added: dict[int, str] = {}
    for key, label in final.items():
        if key in builtin and builtin[key] == label:
            continue
        if not isinstance(label, str):
            raise PluginCheckError(
                f"the plugin registered category {key} with a non-string label {label!r}"
            )
        if key not in builtin:
            added[_category_id(key)] = label
    removed = {int(k): v for k, v in builtin.items() if k not in final or final[k] != v}
    refused: dict[int, str] = {}
    for key, label in state.get("refused") or []:
        refused[_category_id(key)] = str(label)
    warnings = tuple(
        message for level, message in state.get("logs") or [] if level in ("warn", "error")
    ) + tuple(f"asynchronous error: {e}" for e in state.get("async_errors") or [])
    unregister_error = state.get("unregister_error")
    if state.get("stage") == "unregister" and state.get("error"):
        unregister_error = str(state["error"])  # unregister() hung or killed Node
    return RegisterOutcome(
        added=dict(sorted(added.items())),
        removed=removed,
        refused=refused,
        warnings=warnings,
        unregister_error=unregister_error,
    )


def registered_categories_from_plugin(
    path: str | os.PathLike[str],
    *,
    node: str | None = None,
    timeout: float = DEFAULT_NODE_TIMEOUT,
) -> dict[int, str]:
    """The categories (id → label) a plugin's real ``register()`` adds, ids as ints.

    Runs the plugin under Node with a recording ``videoCategoryManager`` (see
    :func:`run_plugin_register`, which also reports removed built-ins and refused ids).
    """
    return run_plugin_register(path, node=node, timeout=timeout).added
