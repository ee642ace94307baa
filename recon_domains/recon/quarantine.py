"""The quarantine journal of the reprocess (runbook Step 7, SPEC §7) and of its undo.

Each quarantined document gets an *entry* folder `<quarantine>/<hash>__<UTC stamp>/`:

- `document.json`: the document's and catalogue's rows before the reset (what a restore
  puts back), whether a concept folder existed, where it was, and why it was stale;
- `concepts/`: the concept folder itself, moved there (absent when there was none);
- markers: `restored.json` once a restore put the folder back, `audited.json` (the audit
  row, copied out before a schema rollback drops the audit table), `removing-source`
  while a cross-device move removes the original.

An entry is written under a `.partial` name and renamed, so it is complete or absent. The
entry, not the database, is the journal: it survives a schema rollback. An entry's hash is
the whole name before its stamp, so `x` and `x__y` never share entries.

A run killed mid-write leaves `.partial` folders; the next run settles them
(:func:`interrupted_writes`). A folder is only ever removed from its source after a complete
copy is in place under its final name, so a `.partial` copy whose source is still there is
redundant and removed; one whose source is gone may be all that is left of it: kept and
reported (or, when its copy is known complete, put in place).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ENTRY_SEPARATOR = "__"
DOCUMENT_FILE = "document.json"
CONCEPTS_SUBDIR = "concepts"
RESTORED_MARKER = "restored.json"
RESTORING_MARKER = "restoring.json"  # a restore is moving this entry's folder back
AUDITED_MARKER = "audited.json"
REMOVING_MARKER = "removing-source"
PARTIAL_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"  # a folder a forced restore moved aside
STAGING_PREFIX = ".restore-"  # a restore's copy of an off-site folder
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_ENTRY_NAME = re.compile(r"(?P<hash>.+)__(?P<stamp>[0-9]{8}T[0-9]{12}Z)")


def _stamp() -> str:
    return datetime.now(UTC).strftime(_STAMP_FORMAT)


def entry_hash(name: str) -> str | None:
    """The document hash of an entry folder's name, or None when it is not an entry's."""
    found = _ENTRY_NAME.fullmatch(name)
    return found["hash"] if found else None


@dataclass(frozen=True)
class EntrySnapshot:
    """An entry's `document.json`: the document as it was right before the reset."""

    hash: str
    documents: dict[str, Any] | None  # every column of its documents row
    catalogue: dict[str, Any] | None  # every column of its catalogue row
    had_folder: bool
    original_path: str
    why: str
    reason: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EntrySnapshot:
        return cls(
            hash=str(data.get("hash", "")),
            documents=data.get("documents"),
            catalogue=data.get("catalogue"),
            had_folder=bool(data.get("had_folder")),
            original_path=str(data.get("original_path", "")),
            why=str(data.get("why", "")),
            reason=str(data.get("reason", "")),
        )

    def rows(self) -> dict[str, dict[str, Any] | None]:
        """{"documents": row, "catalogue": row}: what a restore writes back."""
        return {"documents": self.documents, "catalogue": self.catalogue}


@dataclass(frozen=True)
class QuarantineEntry:
    """One entry folder of the quarantine."""

    path: Path
    hash: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def concepts(self) -> Path:
        """Where the quarantined concept folder is (the audit row's quarantine_path)."""
        return self.path / CONCEPTS_SUBDIR

    @property
    def removing_marker(self) -> Path:
        return self.path / REMOVING_MARKER

    def is_complete(self) -> bool:
        return (self.path / DOCUMENT_FILE).exists()

    def is_restored(self) -> bool:
        return (self.path / RESTORED_MARKER).exists()

    def is_audited(self) -> bool:
        return (self.path / AUDITED_MARKER).exists()

    def read(self) -> EntrySnapshot:
        return EntrySnapshot.from_json(json.loads((self.path / DOCUMENT_FILE).read_text()))

    def mark_restoring(self, target: Path) -> None:
        """Written before a restore moves the folder back, so a run killed between the move
        and the document rows knows the folder at `target` is this entry's."""
        (self.path / RESTORING_MARKER).write_text(json.dumps({"target": str(target)}))

    def restoring_target(self) -> Path | None:
        """Where a killed restore was moving this entry's folder, if one was."""
        marker = self.path / RESTORING_MARKER
        return Path(json.loads(marker.read_text())["target"]) if marker.exists() else None

    def mark_restored(self, target: Path, source_kind: str, restored_at: str) -> None:
        (self.path / RESTORED_MARKER).write_text(
            json.dumps({"restored_at": restored_at, "target": str(target), "from": source_kind})
        )

    def mark_audited(self, audit_row: Mapping[str, Any]) -> None:
        (self.path / AUDITED_MARKER).write_text(json.dumps(dict(audit_row), default=str))


def entry_of(quarantine_path: str | os.PathLike[str]) -> Path:
    """The entry folder an audit row's quarantine_path names (`<entry>/concepts`)."""
    path = Path(quarantine_path)
    return path.parent if path.name == CONCEPTS_SUBDIR else path


def write_entry(quarantine_root: Path, snapshot: EntrySnapshot) -> QuarantineEntry:
    """A new entry holding `snapshot`, written `.partial` → final (complete or absent)."""
    entry = quarantine_root / f"{snapshot.hash}{ENTRY_SEPARATOR}{_stamp()}"
    partial = entry.with_name(entry.name + PARTIAL_SUFFIX)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    data = json.dumps(asdict(snapshot), indent=1, sort_keys=True, default=str)
    with open(partial / DOCUMENT_FILE, "w") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(partial, entry)
    return QuarantineEntry(entry, snapshot.hash)


def entries_for(quarantine_root: Path, doc_hash: str) -> list[QuarantineEntry]:
    """The entries of exactly this document, oldest first.

    Runs once per document of a batch over a quarantine of thousands of entries: scandir
    gives names and types without building a Path (or a stat) per entry.
    """
    if not quarantine_root.is_dir():
        return []
    prefix = doc_hash + ENTRY_SEPARATOR
    with os.scandir(quarantine_root) as it:
        names = [
            e.name
            for e in it
            if e.name.startswith(prefix) and entry_hash(e.name) == doc_hash and e.is_dir()
        ]
    return [QuarantineEntry(quarantine_root / name, doc_hash) for name in sorted(names)]


def all_entries(quarantine_root: Path) -> dict[str, list[QuarantineEntry]]:
    """Every entry, grouped by document, each document's oldest first. The quarantine is
    listed once: after a full batch it holds thousands of entries."""
    by_hash: dict[str, list[QuarantineEntry]] = {}
    if not quarantine_root.is_dir():
        return by_hash
    for p in sorted(quarantine_root.iterdir()):
        doc_hash = entry_hash(p.name)
        if doc_hash is not None and p.is_dir():
            by_hash.setdefault(doc_hash, []).append(QuarantineEntry(p, doc_hash))
    return by_hash


def unfinished_entry(
    entries: list[QuarantineEntry], audited_paths: Collection[str]
) -> QuarantineEntry | None:
    """The newest of one document's entries (oldest first) that no audit row names and no
    restore or schema rollback marked: a batch stopped before its reset."""
    audited = {entry_of(p).name for p in audited_paths}
    pending = [
        e
        for e in entries
        if e.name not in audited and not e.is_restored() and not e.is_audited()
    ]
    return pending[-1] if pending else None


def latest_unrestored(
    entries: list[QuarantineEntry], restored_paths: Collection[str]
) -> QuarantineEntry | None:
    """The newest of one document's complete entries (oldest first) not restored yet: no
    restored marker, and no audit row restored from its concepts folder."""
    pending = [
        e
        for e in entries
        if e.is_complete() and not e.is_restored() and str(e.concepts) not in restored_paths
    ]
    return pending[-1] if pending else None


def set_aside_path(quarantine_root: Path, doc_hash: str) -> Path:
    """Where a forced restore moves a folder it replaces (kept, never deleted)."""
    return quarantine_root / f"{doc_hash}{ENTRY_SEPARATOR}{_stamp()}{REPLACED_SUFFIX}"


def staging_path(quarantine_root: Path, doc_hash: str) -> Path:
    """Where a restore copies an off-site folder first (never read as an entry)."""
    return quarantine_root / f"{STAGING_PREFIX}{doc_hash}{PARTIAL_SUFFIX}"


# -- interrupted writes ------------------------------------------------------------------------
REMOVE, FINISH, KEEP = "remove", "finish", "keep"


@dataclass(frozen=True)
class InterruptedWrite:
    """A `.partial` folder a killed write left, and what settling it does.

    action: REMOVE (a redundant copy: its source is still there), FINISH (a complete copy
    whose source is gone: renamed into place) or KEEP (its source is gone and it may be all
    that is left: an operator decides).
    """

    path: Path
    hash: str
    action: str
    why: str

    def settle(self) -> None:
        """Do `action` (KEEP does nothing)."""
        if self.action == REMOVE:
            shutil.rmtree(self.path)
        elif self.action == FINISH:  # only a copy into an entry is ever finished
            os.rename(self.path, self.path.with_name(CONCEPTS_SUBDIR))
            (self.path.parent / REMOVING_MARKER).unlink(missing_ok=True)  # nothing to remove

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "path": str(self.path)}


def _real_dir(path: Path) -> bool:
    """A folder itself, not a link to one (a link put in a folder's place is no source)."""
    return path.is_dir() and not path.is_symlink()


def _decide(
    partial: Path, doc_hash: str, source: Path, what: str, *, complete: bool = False
) -> InterruptedWrite:
    if _real_dir(source):
        return InterruptedWrite(partial, doc_hash, REMOVE, (
            f"{what}, stopped before it was in place; the original is still at {source}: "
            "removed (the next run copies again)"
        ))
    if complete:
        return InterruptedWrite(partial, doc_hash, FINISH, (
            f"{what}, complete but not yet renamed when the run stopped; {source} is gone: "
            "put in place"
        ))
    return InterruptedWrite(partial, doc_hash, KEEP, (
        f"{what}, stopped before it was in place, and {source} is gone: this partial copy may "
        "be all that is left of it. Kept: compare it with the off-site mirror, then move what "
        f"belongs back to {source} (or delete the copy)"
    ))


def _partial_entry(partial: Path, doc_hash: str) -> InterruptedWrite:
    extra = sorted(c.name for c in partial.iterdir() if c.name != DOCUMENT_FILE)
    if extra:
        return InterruptedWrite(partial, doc_hash, KEEP, (
            f"an entry being written holds {', '.join(extra)} besides {DOCUMENT_FILE}: "
            "kept, check it by hand"
        ))
    return InterruptedWrite(partial, doc_hash, REMOVE, (
        "an entry being written when the run stopped (its document was not touched yet): "
        "removed"
    ))


def interrupted_writes(
    quarantine_root: Path,
    concepts_root: Path,
    offsite_dir: str | os.PathLike[str] | None = None,
) -> list[InterruptedWrite]:
    """Every `.partial` folder killed quarantine writes left, with what settling it does.

    - `<hash>__<stamp>.partial`: an entry being written. Its document was not touched yet
      (a folder moves only into a complete entry): removed, unless it holds more than the
      entry's document.json (then kept);
    - `<entry>/concepts.partial`: a concept folder being copied in across file systems; its
      source is `<concepts root>/<hash>` (finished when the copy completed and the source is
      gone: the copy's removing-source marker is written only after the copy);
    - `<hash>__<stamp>.replaced.partial`: a forced restore moving a folder aside; its source
      is `<concepts root>/<hash>`;
    - `.restore-<hash>.partial`: a restore's copy of the off-site mirror's folder (looked at
      only when `offsite_dir` is given; its source is `<offsite_dir>/<hash>`).

    A restore's copy into the concepts root (`<hash>.partial` there) is removed by the next
    restore of that document, before it copies again. Reads only.
    """
    found: list[InterruptedWrite] = []
    if not quarantine_root.is_dir():
        return found
    for p in sorted(quarantine_root.iterdir()):
        if p.name.endswith(PARTIAL_SUFFIX) and p.is_dir() and not p.is_symlink():
            name = p.name.removesuffix(PARTIAL_SUFFIX)
            if (doc_hash := entry_hash(name)) is not None:
                found.append(_partial_entry(p, doc_hash))
            elif name.endswith(REPLACED_SUFFIX) and (
                doc_hash := entry_hash(name.removesuffix(REPLACED_SUFFIX))
            ):
                found.append(_decide(p, doc_hash, concepts_root / doc_hash,
                                     "a copy of a folder a forced restore moved aside"))
            elif name.startswith(STAGING_PREFIX) and offsite_dir:
                doc_hash = name.removeprefix(STAGING_PREFIX)
                found.append(_decide(p, doc_hash, Path(offsite_dir, doc_hash),
                                     "a restore's copy of the off-site folder"))
        elif (doc_hash := entry_hash(p.name)) is not None and p.is_dir():
            entry = QuarantineEntry(p, doc_hash)
            partial = p / (CONCEPTS_SUBDIR + PARTIAL_SUFFIX)
            if partial.is_dir() and not entry.concepts.exists():
                found.append(_decide(
                    partial, doc_hash, concepts_root / doc_hash,
                    "a copy of the concept folder into the quarantine",
                    complete=entry.removing_marker.exists(),
                ))
    return found


def settle_interrupted_writes(
    quarantine_root: Path,
    concepts_root: Path,
    offsite_dir: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
) -> tuple[list[InterruptedWrite], list[tuple[str, str]]]:
    """Settle every interrupted write (only list them with `dry_run`): (every one found,
    (hash, problem) for each kept or that could not be settled: an operator's to decide)."""
    found = interrupted_writes(quarantine_root, concepts_root, offsite_dir)
    problems: list[tuple[str, str]] = []
    for write in found:
        if write.action == KEEP:
            problems.append((write.hash, f"{write.path}: {write.why}"))
        elif not dry_run:
            try:
                write.settle()
            except OSError as exc:
                problems.append((write.hash, f"{write.path}: could not {write.action} it: {exc}"))
    return found, problems


def move_folder(src: Path, dst: Path, removing_marker: Path | None = None) -> None:
    """Move a folder: one rename on the same file system; across devices a copy under a
    temporary name, a rename into place, then removal of the source (never a half copy
    under the final name). `removing_marker`, when given, exists while the source is being
    removed after a complete copy, so a resumed run knows the source is a remainder."""
    if removing_marker is not None:
        # Left by a copy that never got renamed into place: it says nothing of this move.
        removing_marker.unlink(missing_ok=True)
    try:
        os.rename(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dst.with_name(dst.name + PARTIAL_SUFFIX)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, symlinks=True, copy_function=shutil.copy2)
    if removing_marker is not None:
        removing_marker.write_text(str(src))
    os.rename(tmp, dst)
    shutil.rmtree(src)
    if removing_marker is not None:
        removing_marker.unlink(missing_ok=True)
