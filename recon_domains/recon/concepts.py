"""Read a document's concept files and count its valid RECON domains (SPEC §3, §4 pass 1).

Layout: ``<concepts_root>/<hash>/window_0001.json, window_0002.json, … , meta.json``. Only
files named ``window_*.json`` count (sorted by name; everything else is ignored). Each
window file should be a JSON list of concept objects whose ``domain`` is a string, or in
old data a list of strings, and may be a legacy name outside the 18 domains.

Counting rule:
- a string domain that is one of the 18 counts once;
- a list-valued domain counts each *distinct* valid element once (``["Medical",
  "Medical", "Legacy"]`` adds 1 to Medical): SPEC §4 says "each valid element once", and a
  repeated element is the same claim by the same concept, not extra evidence;
- anything else (legacy names, missing/non-string domain) counts nothing and is recorded
  as a skip, as are malformed JSON, non-list files, non-object items, unreadable files, and
  files above the size cap (``RECON_MAX_WINDOW_FILE_MB``), which are never read.

This is the hot path of the backfill (~22,000 documents × ~10 files), so the reader opens
each window file once, reads it with one ``os.read`` of the size ``fstat`` gives (never more
than the cap + 1 bytes, so memory stays flat whatever a file holds), parses it with orjson
and does nothing else expensive. orjson is stricter than ``json.loads`` (it refuses NaN, a
UTF-8 BOM, UTF-16, lone surrogates): what it refuses, ``json.loads`` decides, so a file
counts as the standard library reads it. (The one difference: orjson parses nesting up to
1,024 levels, where ``json.loads`` stops at Python's recursion limit and calls the file
malformed.) It never raises on bad data; it raises only :class:`UnsafeHashError` for a hash
that is not a plain folder name or whose folder resolves outside the concepts root.

**Fingerprint.** What a decision was made from is recorded as a fingerprint of the folder:
the names, sizes and modification times (ns) of its window files, hashed. The reader takes
them from the `fstat` it makes anyway (no extra system call on the hot path), so the
fingerprint is of the very files it read; :func:`concept_fingerprint` computes the same
value from `stat` alone, without opening a file, for the scheduled re-assignment to see
which documents' files changed since their decision. Names, sizes and times rather than a
content hash: `make bench` measures both on 22,000 documents (measured on the shared
2-core VM: the stat scan 0.29× pass 1, hashing every byte again 0.64×), and RECON rewriting
a window file always moves its modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

import orjson

from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import DOMAINS

# A plain frozenset: membership is the innermost operation of the whole backfill.
_VALID: frozenset[str] = frozenset(DOMAINS)

# Document states (ConceptCounts.state).
STATE_OK = "ok"
STATE_MISSING_FOLDER = "missing folder"
STATE_UNREADABLE_FOLDER = "unreadable folder"
STATE_NO_WINDOW_FILES = "no window files"
STATE_NO_VALID_DOMAINS = "no valid domains"

# Skip reasons (Skip.reason): stable keys, tallied by the runners.
REASON_NOT_A_FOLDER = "not a folder"
REASON_UNREADABLE = "unreadable"
REASON_NOT_A_FILE = "not a file"
REASON_OUTSIDE_ROOT = "outside concepts root"
REASON_MALFORMED_JSON = "malformed json"
REASON_NOT_A_LIST = "not a list"
REASON_NON_OBJECT_ITEM = "non-object item"
REASON_LEGACY_DOMAIN = "legacy domain"
REASON_NO_DOMAIN = "no domain"
REASON_TOO_LARGE = "above size cap"

# Reasons that mean "we could not look", not "the data is bad": deciding on such a
# document could mark it needs_reprocess (a destructive path) or pick a wrong winner.
UNREADABLE_REASONS: frozenset[str] = frozenset({REASON_UNREADABLE})

_WINDOW_PREFIX = "window_"
_WINDOW_SUFFIX = ".json"
_name = attrgetter("name")
_MB = 1024 * 1024
# Read size after a file changed between fstat and read: bounded, however far it grew.
_CHUNK = _MB

# Fingerprints of folders that have no files to describe.
FINGERPRINT_MISSING = "missing"  # no concept folder (or a file in its place)
FINGERPRINT_UNREADABLE = "unreadable"  # the folder could not be listed


class UnsafeHashError(ValueError):
    """A document hash that cannot be used as a folder name under the concepts root."""


@dataclass(frozen=True)
class Skip:
    """Something in a concept folder that contributed nothing to the counts.

    ``file`` is relative to the concepts root (``<hash>/window_0003.json``); ``count`` is
    how many items/concepts of that file were skipped for ``reason`` (1 for whole files).
    """

    file: str
    reason: str
    count: int = 1
    detail: str = ""


@dataclass(frozen=True)
class ConceptCounts:
    """Valid-domain counts of one document, with what was read and what was skipped."""

    doc_hash: str
    counts: Counter[str]
    folder_exists: bool
    files_read: int
    concepts_seen: int
    skipped: tuple[Skip, ...] = ()
    state: str = STATE_OK
    # Window files found in the folder (read or not): the reprocess dry run shows it.
    window_files: int = field(default=0)
    # What the counts were made from: see concept_fingerprint (same value for the same files).
    fingerprint: str = FINGERPRINT_MISSING

    @property
    def unreadable(self) -> tuple[Skip, ...]:
        """Skips caused by I/O errors (permissions, EIO): the counts may be incomplete."""
        return tuple(s for s in self.skipped if s.reason in UNREADABLE_REASONS)


def check_hash(doc_hash: object) -> str:
    """Return doc_hash if it is a plain folder name; raise UnsafeHashError otherwise."""
    if not isinstance(doc_hash, str) or not doc_hash:
        raise UnsafeHashError(f"document hash must be a non-empty string, got {doc_hash!r}")
    if doc_hash in (".", "..") or "\x00" in doc_hash or "/" in doc_hash or "\\" in doc_hash:
        raise UnsafeHashError(
            f"document hash {doc_hash!r} is not a plain folder name (contains a path "
            "separator, NUL, or is '.'/'..'); refusing to read outside the concepts root"
        )
    # "/" and "\\" cover os.sep and os.altsep on every platform, and so absolute paths too.
    return doc_hash


def _inside(path: str, root_real: str) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def concept_folder(concepts_root: Path, doc_hash: str) -> Path:
    """The concept folder of a document, after the same safety checks the reader makes.

    Raises UnsafeHashError for an unsafe hash or a folder symlink leading outside the root.
    The folder need not exist.
    """
    return Path(_safe_folder(concepts_root, doc_hash))


def _safe_folder(concepts_root: Path | str, doc_hash: str) -> str:
    """concept_folder as a plain string (the hot path builds no Path objects)."""
    check_hash(doc_hash)
    folder = os.path.join(os.fspath(concepts_root), doc_hash)
    if os.path.islink(folder) and not _inside(folder, os.path.realpath(concepts_root)):
        raise UnsafeHashError(
            f"concept folder {folder} is a symlink to {os.path.realpath(folder)}, outside "
            f"the concepts root {os.path.realpath(concepts_root)}; refusing to read it"
        )
    return folder


def _read_capped(fd: int, size: int, cap: int) -> bytes | None:
    """The bytes of an open file that fstat gave ``size`` bytes, or None when it holds more
    than ``cap`` bytes. Never reads more than cap + 1 bytes."""
    if size > cap:
        return None
    data = os.read(fd, size + 1)  # the +1 sees a file that grew since fstat
    if len(data) == size:
        return data
    # It changed since fstat (RECON writing it) or the read came back short: read to the end.
    parts, total = [data], len(data)
    while total <= cap and (chunk := os.read(fd, min(_CHUNK, cap + 1 - total))):
        parts.append(chunk)
        total += len(chunk)
    return None if total > cap else b"".join(parts)


def _too_large(size: int, cap: int) -> str:
    """The skip detail of a file above the cap; ``size`` is fstat's (within the cap when
    the file grew past it while being read)."""
    what = f"{size:,} bytes ({size / _MB:.1f} MB)" if size > cap else "grew while being read"
    return (
        f"{what}, above RECON_MAX_WINDOW_FILE_MB ({cap / _MB:g} MB): not read, its concepts "
        "not counted. RECON's window files are kilobytes: check this one, and if it is "
        "genuine raise RECON_MAX_WINDOW_FILE_MB (parsing takes several times a file's size "
        "in memory)"
    )


def _fingerprint(parts: list[str]) -> str:
    """The fingerprint of a folder's window-file lines (name, size, mtime), in name order."""
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


def _stat_line(name: str, st: os.stat_result) -> str:
    return f"{name} {st.st_size} {st.st_mtime_ns}"


def _count_file(
    path: str, rel: str, counts: Counter[str], skipped: list[Skip], cap: int,
    stats: list[str] | None = None, name: str = "",
) -> int:
    """Parse one window file into counts; return the number of concept objects seen. Its
    fingerprint line (from the fstat made anyway) is appended to `stats` when given."""
    noted = stats if stats is not None else []
    try:
        # O_NONBLOCK: a FIFO swapped in after the scan must not hang the pass.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            size = st.st_size
            noted.append(_stat_line(name, st))
            raw = _read_capped(fd, size, cap)
        finally:
            os.close(fd)
    except OSError as exc:
        if not noted or not noted[-1].startswith(name + " "):
            noted.append(f"{name} ?")
        skipped.append(Skip(rel, REASON_UNREADABLE, 1, f"{type(exc).__name__}: {exc.strerror}"))
        return 0
    if raw is None:
        skipped.append(Skip(rel, REASON_TOO_LARGE, 1, _too_large(size, cap)))
        return 0
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
            skipped.append(Skip(rel, REASON_MALFORMED_JSON, 1, str(exc)[:200]))
            return 0
    if not isinstance(data, list):
        skipped.append(Skip(rel, REASON_NOT_A_LIST, 1, f"top level is {type(data).__name__}"))
        return 0
    seen = non_object = legacy = no_domain = 0
    for item in data:
        if not isinstance(item, dict):
            non_object += 1
            continue
        seen += 1
        domain = item.get("domain")
        if isinstance(domain, str):
            if domain in _VALID:
                counts[domain] += 1
            else:
                legacy += 1
        elif isinstance(domain, list):
            # Distinct valid elements; the isinstance guard keeps unhashables out of the set.
            valid = {d for d in domain if isinstance(d, str) and d in _VALID}
            if valid:
                for d in valid:
                    counts[d] += 1
            elif domain:
                legacy += 1
            else:
                no_domain += 1
        else:
            no_domain += 1
    if non_object:
        skipped.append(Skip(rel, REASON_NON_OBJECT_ITEM, non_object))
    if legacy:
        skipped.append(Skip(rel, REASON_LEGACY_DOMAIN, legacy))
    if no_domain:
        skipped.append(Skip(rel, REASON_NO_DOMAIN, no_domain))
    return seen


def read_domain_counts(
    concepts_root: Path,
    doc_hash: str,
    *,
    max_file_mb: float = DEFAULTS.max_window_file_mb,
) -> ConceptCounts:
    """Count the valid domains over every ``window_*.json`` file of one document.

    Never raises on bad data (missing folder, malformed or non-UTF-8 JSON, non-list files,
    directories named like window files, permission errors, files above ``max_file_mb``):
    those become ``skipped`` entries and a ``state``. Raises UnsafeHashError for a hash that
    is not a plain folder name, or whose folder is a symlink resolving outside
    ``concepts_root``.
    """
    folder = _safe_folder(concepts_root, doc_hash)
    cap = int(max_file_mb * _MB)
    counts: Counter[str] = Counter()
    skipped: list[Skip] = []
    try:
        with os.scandir(folder) as it:
            # Inlined name test: it runs for every file of every folder.
            entries = [
                e
                for e in it
                if e.name.startswith(_WINDOW_PREFIX) and e.name.endswith(_WINDOW_SUFFIX)
            ]
    except FileNotFoundError:
        return ConceptCounts(doc_hash, counts, False, 0, 0, (), STATE_MISSING_FOLDER)
    except NotADirectoryError:
        skip = Skip(doc_hash, REASON_NOT_A_FOLDER, 1, "a file where the concept folder should be")
        return ConceptCounts(doc_hash, counts, False, 0, 0, (skip,), STATE_MISSING_FOLDER)
    except OSError as exc:
        skip = Skip(doc_hash, REASON_UNREADABLE, 1, f"{type(exc).__name__}: {exc.strerror}")
        return ConceptCounts(
            doc_hash, counts, True, 0, 0, (skip,), STATE_UNREADABLE_FOLDER,
            fingerprint=FINGERPRINT_UNREADABLE,
        )

    entries.sort(key=_name)
    files_read = concepts_seen = 0
    root_real: str | None = None
    stats: list[str] = []
    for entry in entries:
        name = entry.name
        rel = f"{doc_hash}/{name}"
        try:
            is_file = entry.is_file()  # follows symlinks; False for dirs and broken links
            is_link = entry.is_symlink()
        except OSError as exc:
            stats.append(f"{name} ?")
            skipped.append(Skip(rel, REASON_UNREADABLE, 1, f"{type(exc).__name__}: {exc}"))
            continue
        if not is_file:
            stats.append(f"{name} -")
            skipped.append(Skip(rel, REASON_NOT_A_FILE))
            continue
        if is_link:
            if root_real is None:
                root_real = os.path.realpath(concepts_root)
            if not _inside(entry.path, root_real):
                stats.append(f"{name} outside")
                skipped.append(
                    Skip(rel, REASON_OUTSIDE_ROOT, 1, f"symlink to {os.path.realpath(entry.path)}")
                )
                continue
        files_read += 1
        concepts_seen += _count_file(entry.path, rel, counts, skipped, cap, stats, name)

    if not entries:
        state = STATE_NO_WINDOW_FILES
    elif not counts:
        state = STATE_NO_VALID_DOMAINS
    else:
        state = STATE_OK
    return ConceptCounts(
        doc_hash, counts, True, files_read, concepts_seen, tuple(skipped), state, len(entries),
        _fingerprint(stats),
    )


def concept_fingerprint(concepts_root: Path, doc_hash: str) -> str:
    """The fingerprint of a document's concept folder from `stat` alone (no file opened):
    equal to the `fingerprint` read_domain_counts gives for the same files, different when
    a window file was added, removed, resized or rewritten. FINGERPRINT_MISSING without a
    folder; raises UnsafeHashError like the reader."""
    folder = _safe_folder(concepts_root, doc_hash)
    try:
        with os.scandir(folder) as it:
            entries = [
                e
                for e in it
                if e.name.startswith(_WINDOW_PREFIX) and e.name.endswith(_WINDOW_SUFFIX)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return FINGERPRINT_MISSING
    except OSError:
        return FINGERPRINT_UNREADABLE
    entries.sort(key=_name)
    stats: list[str] = []
    root_real: str | None = None
    for entry in entries:
        name = entry.name
        try:
            if not entry.is_file():
                stats.append(f"{name} -")
                continue
            if entry.is_symlink():
                if root_real is None:
                    root_real = os.path.realpath(concepts_root)
                if not _inside(entry.path, root_real):
                    stats.append(f"{name} outside")
                    continue
            stats.append(_stat_line(name, entry.stat()))
        except OSError:
            stats.append(f"{name} ?")
    return _fingerprint(stats)
