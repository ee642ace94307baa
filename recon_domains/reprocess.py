"""Runbook Step 7, "Reprocess missing items": the feature's only destructive step (SPEC §7).

`needs_reprocess` documents have no usable concepts. A real batch moves each stale concept
folder into a quarantine folder (never deletes it), records an audit row, and resets and
re-queues the document so RECON extracts it again.

Crash safety, per document (an interruption at any point strands nothing, a re-run is
always safe):

1. A quarantine *entry* is written (recon.quarantine): the document's and catalogue's rows
   before the reset and whether a concept folder existed; complete or absent.
2. The concept folder is moved to `<entry>/concepts` (a rename; across file systems a copy
   under a temporary name, a rename, then removal of the original).
3. ONE SQLite transaction resets and queues the document and inserts the audit row.

The audit row exists exactly when the reset happened (same transaction). An entry without
an audit row is a batch interrupted between 1 and 3: the next run (or `verify_requeued`)
finds it by its name and finishes the move and the reset instead of starting over.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recon_domains.progress import ProgressCallback, no_progress
from recon_domains.recon.concepts import (
    REASON_LEGACY_DOMAIN,
    REASON_MALFORMED_JSON,
    REASON_NO_DOMAIN,
    REASON_NON_OBJECT_ITEM,
    REASON_NOT_A_FILE,
    REASON_NOT_A_LIST,
    REASON_TOO_LARGE,
    STATE_MISSING_FOLDER,
    STATE_NO_VALID_DOMAINS,
    STATE_NO_WINDOW_FILES,
    STATE_OK,
    UnsafeHashError,
    concept_folder,
    read_domain_counts,
)
from recon_domains.recon.quarantine import (
    EntrySnapshot,
    QuarantineEntry,
    all_entries,
    entries_for,
    move_folder,
    settle_interrupted_writes,
    unfinished_entry,
    write_entry,
)
from recon_domains.recon.store import DOMAIN_COLUMNS, ReconStore, StreamDocument
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import MID_PIPELINE_STATUSES, Status

# documents.status values past 'queued': RECON has already picked the document up again.
_PAST_QUEUED = frozenset(
    {"extracting", "extracted", "enriching", "enriched", "embedding", "complete"}
)


class ReprocessError(RuntimeError):
    """The batch cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ReprocessItem:
    """One `needs_reprocess` document and the state of its concept folder (the dry run)."""

    hash: str
    channel: str | None
    path: str | None  # watch URL
    folder: str
    folder_exists: bool
    file_count: int  # every file in the folder (what would be quarantined)
    window_files: int
    stale: bool  # False: the folder has valid domains now, or could not be read: skipped
    why: str  # why it is stale (or why it is skipped)
    unsafe: bool = False  # its folder leads outside the concepts root: an error, never touched


@dataclass
class ReprocessResult:
    """What a batch did. `requeued` lists every document reset and queued by this call."""

    requeued: list[str] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)  # hash, quarantine_path, file_count
    resumed: list[str] = field(default_factory=list)  # interrupted earlier, finished now
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (hash, why)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (hash, message)
    # `.partial` folders killed runs left, as resume_interrupted settled them
    interrupted: list[dict[str, str]] = field(default_factory=list)

    @property
    def files_quarantined(self) -> int:
        return sum(int(q["file_count"]) for q in self.quarantined)


@dataclass
class RequeueCheck:
    """Result of verify_requeued (the `requeued` gate)."""

    checked: int = 0
    queued: int = 0
    in_pipeline: int = 0  # RECON already picked it up (past queued)
    quarantined_folders: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def count_files(folder: Path) -> int:
    """Regular files anywhere under folder (0 when it does not exist)."""
    total = 0
    stack = [os.fspath(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    else:
                        total += 1
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


def _why_stale(counts) -> tuple[bool, str]:
    """(stale?, reason) from the concept reader's result."""
    if counts.state == STATE_MISSING_FOLDER:
        return True, "missing folder"
    if counts.unreadable:
        return False, "folder not fully readable (permissions/I-O): fix it before reprocessing"
    if counts.state == STATE_NO_WINDOW_FILES:
        return True, "no window files"
    if counts.state == STATE_OK:
        return False, "has valid domains now: run pass 1 again instead of reprocessing"
    assert counts.state == STATE_NO_VALID_DOMAINS
    reasons = {s.reason for s in counts.skipped}
    if REASON_TOO_LARGE in reasons:
        return True, (
            "window files above RECON_MAX_WINDOW_FILE_MB, not read (raise it instead if RECON "
            "really writes files this large)"
        )
    legacy = REASON_LEGACY_DOMAIN in reasons
    malformed = bool(
        reasons
        & {REASON_MALFORMED_JSON, REASON_NOT_A_LIST, REASON_NON_OBJECT_ITEM, REASON_NOT_A_FILE}
    )
    if legacy and malformed:
        return True, "only legacy domains and malformed files"
    if legacy:
        return True, "only legacy domains"
    if malformed:
        return True, "malformed window files"
    if REASON_NO_DOMAIN in reasons:
        return True, "concepts without a domain"
    return True, "empty window files"


def batch_preconditions(
    mid_pipeline: Sequence[tuple[str, str]],
    offsite_problems: Sequence[str] | None,
    *,
    is_copy: bool = False,
) -> list[str]:
    """SPEC §7's preconditions of a real batch, from measurements taken right before it.

    `mid_pipeline`: the (hash, status) of documents a RECON worker holds; they block unless
    `is_copy` (a rehearsal copy has no workers, its statuses are stale snapshots).
    `offsite_problems`: what the off-site freshness check found, or None when there is no
    off-site folder to check. Returns the problems; empty means the batch may run.
    """
    problems: list[str] = []
    if mid_pipeline and not is_copy:
        doc_hash, status = mid_pipeline[0]
        problems.append(
            f"{len(mid_pipeline)} document(s) mid-pipeline right now (e.g. {doc_hash[:12]} "
            f"{status}): wait for RECON to be idle"
        )
    if offsite_problems is None:
        problems.append(
            "RECON_OFFSITE_CONCEPTS_DIR is not set: the off-site backup cannot be checked"
        )
    else:
        problems.extend(f"off-site backup: {p}" for p in offsite_problems)
    return problems


def _unsafe_why(exc: UnsafeHashError) -> str:
    """Why a document with an unsafe concept folder is left alone (plan, batch, errors)."""
    return (
        f"unsafe concept folder, nothing touched: {exc}. Put the real folder back (or remove "
        "the link), then re-run the batch"
    )


def _check_roots(concepts_root: Path, quarantine_root: Path) -> None:
    c, q = os.path.realpath(concepts_root), os.path.realpath(quarantine_root)
    if c == q or q.startswith(c.rstrip(os.sep) + os.sep) or c.startswith(q.rstrip(os.sep) + os.sep):
        raise ReprocessError(
            f"the quarantine folder {quarantine_root} must be outside the concepts folder "
            f"{concepts_root} (and not contain it): RECON would read quarantined folders as "
            "concepts. Set RECON_QUARANTINE_DIR to a sibling folder on the same file system."
        )


def plan_reprocess(
    store: ReconStore,
    concepts_root: str | os.PathLike[str],
    limit: int | None = None,
    *,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
    on_progress: ProgressCallback | None = None,
) -> list[ReprocessItem]:
    """The dry run: each `needs_reprocess` stream document (oldest hash order, up to `limit`
    stale ones) with its folder's state and why it is stale. Writes nothing.

    Documents whose folder now has valid domains, or cannot be read, are listed with
    `stale=False` (a batch skips them) and do not count towards `limit`; so are documents
    whose folder is unsafe (a symlink out of the root, a hash that is no plain folder name),
    with `unsafe=True` (a batch records them as errors).
    `on_progress(done, total)`: documents looked at of every needs_reprocess one (a limited
    plan stops early).
    """
    root = Path(concepts_root)
    items: list[ReprocessItem] = []
    stale = 0
    docs = store.documents_with_status(Status.NEEDS_REPROCESS)
    report = on_progress or no_progress
    for doc in docs:
        report(len(items), len(docs))
        if limit is not None and stale >= limit:
            break
        try:
            folder = concept_folder(root, doc.hash)
            counts = read_domain_counts(root, doc.hash, max_file_mb=max_window_file_mb)
        except UnsafeHashError as exc:
            items.append(_unsafe_item(root, doc, exc))
            continue
        is_stale, why = _why_stale(counts)
        items.append(
            ReprocessItem(
                hash=doc.hash,
                channel=doc.channel,
                path=doc.path,
                folder=str(folder),
                folder_exists=counts.folder_exists,
                file_count=count_files(folder) if counts.folder_exists else 0,
                window_files=counts.window_files,
                stale=is_stale,
                why=why,
            )
        )
        stale += is_stale
    report(len(items), len(docs))
    return items


def _unsafe_item(root: Path, doc: StreamDocument, exc: UnsafeHashError) -> ReprocessItem:
    """The plan's line for a document whose folder is unsafe: nothing under it is read."""
    where = os.path.join(os.fspath(root), doc.hash)
    return ReprocessItem(
        hash=doc.hash,
        channel=doc.channel,
        path=doc.path,
        folder=where,
        folder_exists=os.path.lexists(where),
        file_count=0,
        window_files=0,
        stale=False,
        why=_unsafe_why(exc),
        unsafe=True,
    )


# --- the batch ------------------------------------------------------------------------------


def _unfinished_entry(
    store: ReconStore, quarantine_root: Path, doc_hash: str
) -> QuarantineEntry | None:
    """An entry of this document no audit row refers to: a batch stopped before its reset."""
    return unfinished_entry(
        entries_for(quarantine_root, doc_hash), store.audited_quarantine_paths(doc_hash)
    )


def _reset_and_audit(
    store: ReconStore,
    doc_hash: str,
    original_path: Path,
    quarantine_path: str,
    file_count: int,
    reason: str,
) -> None:
    """One transaction: reset + queue the document, catalogue queued, audit row."""
    if not store.reset_and_requeue(
        doc_hash, str(original_path), quarantine_path, file_count, reason
    ):
        raise ReprocessError(
            f"document {doc_hash} is no longer needs_reprocess (changed while the batch "
            "ran); its folder stays in quarantine at "
            f"{quarantine_path} — check it, then re-run the batch"
        )


def _process_one(
    store: ReconStore,
    concepts_root: Path,
    quarantine_root: Path,
    doc_hash: str,
    reason: str,
    result: ReprocessResult,
    max_window_file_mb: float,
) -> None:
    try:
        folder = concept_folder(concepts_root, doc_hash)
    except UnsafeHashError as exc:
        raise ReprocessError(_unsafe_why(exc)) from None
    doc = store.row_snapshot("documents", doc_hash)
    if doc is None:
        result.skipped.append((doc_hash, "no documents row"))
        return
    if doc.get("recon_domain_status") != Status.NEEDS_REPROCESS:
        result.skipped.append(
            (doc_hash, f"not needs_reprocess (status {doc.get('recon_domain_status')!r})")
        )
        return
    if doc.get("status") in MID_PIPELINE_STATUSES:
        result.skipped.append((doc_hash, f"RECON is processing it ({doc['status']})"))
        return

    entry: QuarantineEntry | None = _unfinished_entry(store, quarantine_root, doc_hash)
    resumed = entry is not None
    if entry is None:
        counts = read_domain_counts(concepts_root, doc_hash, max_file_mb=max_window_file_mb)
        stale, why = _why_stale(counts)
        if not stale:
            result.skipped.append((doc_hash, why))
            return
        snapshot = EntrySnapshot(
            hash=doc_hash,
            documents=doc,
            catalogue=store.row_snapshot("catalogue", doc_hash),
            had_folder=counts.folder_exists,
            original_path=str(folder),
            why=why,
            reason=reason,
        )
        entry = write_entry(quarantine_root, snapshot)
    else:
        snapshot = entry.read()
        why = snapshot.why

    target = entry.concepts
    marker = entry.removing_marker
    if snapshot.had_folder:
        if folder.exists() and target.exists():
            if not marker.exists():
                raise ReprocessError(
                    f"{doc_hash}: a concept folder exists both at {folder} and in quarantine "
                    f"at {target}; compare them, remove the wrong one, then re-run"
                )
            # Copied across devices, stopped while removing the original: finish removing.
            shutil.rmtree(folder)
            marker.unlink(missing_ok=True)
        elif folder.exists():
            move_folder(folder, target, marker)
        elif not target.exists():
            raise ReprocessError(
                f"concept folder of {doc_hash} is neither at {folder} nor in quarantine at "
                f"{target}: restore it from the off-site backup (restore_concepts) first"
            )
        files = count_files(target)
    else:
        files = 0  # nothing to move; the entry still keeps the rows before the reset
    qpath = str(target)  # always <entry>/concepts: the audit row names its entry
    _reset_and_audit(store, doc_hash, folder, qpath, files, f"{reason}: {why}")
    result.requeued.append(doc_hash)
    if snapshot.had_folder:
        result.quarantined.append({"hash": doc_hash, "quarantine_path": qpath, "file_count": files})
    if resumed:
        result.resumed.append(doc_hash)


def run_reprocess_batch(
    store: ReconStore,
    concepts_root: str | os.PathLike[str],
    quarantine_root: str | os.PathLike[str],
    items: Iterable[ReprocessItem | str],
    reason: str,
    *,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
    on_progress: ProgressCallback | None = None,
) -> ReprocessResult:
    """Quarantine the stale folders of `items` and re-queue their documents (see the module
    docstring for the crash-safe order). Items with `stale=False` are skipped; every document
    is re-checked against the database and its folder first, so a stale plan is harmless.
    An error on one document (an unsafe folder among them) is recorded and the batch goes on.
    `on_progress(done, total)`: after each item, of all `items`.
    """
    croot, qroot = Path(concepts_root), Path(quarantine_root)
    _check_roots(croot, qroot)
    store.require_migrated()
    qroot.mkdir(parents=True, exist_ok=True)
    result = ReprocessResult()
    items = list(items)
    report = on_progress or no_progress
    for done, item in enumerate(items):
        report(done, len(items))
        if isinstance(item, ReprocessItem):
            if item.unsafe:
                result.errors.append((item.hash, item.why))
                continue
            if not item.stale:
                result.skipped.append((item.hash, item.why))
                continue
            doc_hash = item.hash
        else:
            doc_hash = item
        try:
            _process_one(store, croot, qroot, doc_hash, reason, result, max_window_file_mb)
        except (OSError, ReprocessError, sqlite3.Error, ValueError) as exc:
            result.errors.append((doc_hash, str(exc)))
    report(len(items), len(items))
    return result


def resume_interrupted(
    store: ReconStore,
    concepts_root: str | os.PathLike[str],
    quarantine_root: str | os.PathLike[str],
    reason: str = "resume",
    *,
    offsite_dir: str | os.PathLike[str] | None = None,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
) -> ReprocessResult:
    """Finish what a previous run left: first settle the `.partial` folders killed writes
    left (quarantine.interrupted_writes; those kept are errors of their document), then
    every document left between quarantine and reset."""
    croot, qroot = Path(concepts_root), Path(quarantine_root)
    _check_roots(croot, qroot)
    found, kept = settle_interrupted_writes(qroot, croot, offsite_dir)
    result = run_reprocess_batch(
        store, croot, qroot, sorted(_pending_hashes(store, qroot)), reason,
        max_window_file_mb=max_window_file_mb,
    )
    result.interrupted = [w.as_dict() for w in found]
    result.errors[:0] = kept
    return result


def _pending_hashes(store: ReconStore, quarantine_root: Path) -> set[str]:
    """Documents with an unfinished entry."""
    return {
        h
        for h, entries in all_entries(quarantine_root).items()
        if unfinished_entry(entries, store.audited_quarantine_paths(h))
    }


def verify_requeued(
    store: ReconStore,
    hashes: Sequence[str],
    quarantine_root: str | os.PathLike[str] | None = None,
) -> RequeueCheck:
    """The `requeued` gate: every document is queued (or already further in RECON's
    pipeline) with its domain columns NULL, none is stranded at 'catalogued', each has its
    audit row, and every quarantined folder is in quarantine with the audited file count.
    With `quarantine_root`, an entry no audit row refers to (an interrupted batch) fails too.
    """
    check = RequeueCheck()
    for doc_hash in hashes:
        check.checked += 1
        doc = store.row_snapshot("documents", doc_hash)
        cat = store.row_snapshot("catalogue", doc_hash)
        if doc is None:
            check.problems.append(f"{doc_hash}: no documents row")
            continue
        if doc.get("status") == "catalogued" or (cat and cat.get("status") == "catalogued"):
            check.problems.append(
                f"{doc_hash}: stranded at 'catalogued' — re-run the batch (or `recon.py queue`)"
            )
        elif doc.get("status") == "queued":
            check.queued += 1
        elif doc.get("status") in _PAST_QUEUED:
            check.in_pipeline += 1
        else:
            check.problems.append(
                f"{doc_hash}: documents.status is {doc.get('status')!r}, not queued"
            )
        if doc.get("status") != "complete":
            set_cols = [c for c in DOMAIN_COLUMNS if doc.get(c) is not None]
            if set_cols:
                check.problems.append(f"{doc_hash}: not reset, {', '.join(set_cols)} still set")
        audit = store.latest_audit(doc_hash)
        if audit is None:
            check.problems.append(f"{doc_hash}: no reprocess audit row")
            continue
        qpath, files = audit.quarantine_path, audit.file_count
        if qpath and audit.restored_at is None:
            if not Path(qpath).is_dir():
                if files:
                    check.problems.append(f"{doc_hash}: quarantined folder {qpath} is missing")
            else:
                check.quarantined_folders += 1
                actual = count_files(Path(qpath))
                if actual != files:
                    check.problems.append(
                        f"{doc_hash}: quarantine holds {actual} files, the audit says {files}"
                    )
    if quarantine_root is not None:
        pending = _pending_hashes(store, Path(quarantine_root)) & set(hashes)
        for doc_hash in sorted(pending):
            check.problems.append(
                f"{doc_hash}: quarantined but not re-queued (interrupted batch) — re-run it"
            )
    return check


def item_dict(item: ReprocessItem) -> dict:
    """A JSON-friendly view of a plan item (metadata, reports)."""
    return asdict(item)
