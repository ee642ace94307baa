"""Runbook "Restore concepts after failed --reprocess-missing": quarantined concept folders
back where RECON reads them (or copied from the off-site mirror), and, where RECON has not
re-processed a document yet, its rows as they were before the reprocess."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon_domains.recon import quarantine
from recon_domains.recon.concepts import UnsafeHashError, concept_folder
from recon_domains.recon.quarantine import EntrySnapshot, QuarantineEntry
from recon_domains.recon.store import ReconStore, utc_now
from recon_domains.rollback.audit import SAMPLE_SIZE, AuditLog, RollbackReport, recorded
from recon_domains.taxonomy import MID_PIPELINE_STATUSES


@dataclass
class _RestoreItem:
    hash: str
    entry: QuarantineEntry | None  # None: off-site copy only
    snapshot: EntrySnapshot | None


def _restore_candidates(
    store: ReconStore, quarantine_root: Path, hashes: Sequence[str] | None
) -> list[_RestoreItem]:
    """The latest unrestored quarantine entry of each document (or of just `hashes`)."""
    restored_paths = store.restored_quarantine_paths()
    latest: dict[str, QuarantineEntry] = {}
    for doc_hash, entries in quarantine.all_entries(quarantine_root).items():
        entry = quarantine.latest_unrestored(entries, restored_paths)
        if entry is not None:
            latest[doc_hash] = entry
    wanted = sorted(latest) if hashes is None else list(dict.fromkeys(hashes))
    if hashes is None:
        # Audited folders whose entry is gone entirely: the off-site copy is the fallback.
        wanted = sorted(set(wanted) | store.unrestored_quarantined_hashes())
    out = []
    for h in wanted:
        entry = latest.get(h)
        out.append(_RestoreItem(h, entry, entry.read() if entry else None))
    return out


def _in_reset_state(doc: Mapping[str, Any] | None) -> bool:
    """True while RECON has not started re-processing a re-queued document."""
    return bool(doc) and doc.get("status") == "queued" and not doc.get("extracted_at")


def restore_concepts(
    store: ReconStore,
    concepts_root: str | os.PathLike[str],
    quarantine_root: str | os.PathLike[str],
    offsite_dir: str | os.PathLike[str] | None = None,
    hashes: Sequence[str] | None = None,
    force: bool = False,
    *,
    restore_documents: bool = True,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Put quarantined concept folders back (all, or `hashes`), copying from the off-site
    mirror when the quarantine no longer has one.

    A folder that exists is never overwritten unless `force` (then it is moved aside into
    the quarantine as `<hash>__<stamp>.replaced`, not deleted). With `restore_documents`,
    a document RECON has not started re-processing yet (still 'queued') gets back the row
    values it had before the reprocess (from its quarantine entry), so the reprocess is
    undone exactly; a document RECON already re-processed keeps its new state.
    """
    croot, qroot = Path(concepts_root), Path(quarantine_root)
    report = RollbackReport("restore_concepts", dry_run)
    writes, kept = quarantine.settle_interrupted_writes(
        qroot, croot, offsite_dir, dry_run=dry_run
    )
    report.problems.extend(f"{h}: {problem}" for h, problem in kept)
    settled = [w for w in writes if w.action != quarantine.KEEP]
    if settled:
        report.steps.append(
            f"{'would settle' if dry_run else 'settled'} {len(settled)} copies killed runs "
            "left: " + "; ".join(f"{w.path}: {w.why}" for w in settled[:SAMPLE_SIZE])
        )
    items = _restore_candidates(store, qroot, hashes)
    plan: list[dict[str, Any]] = []
    for it in items:
        try:
            target, unsafe = concept_folder(croot, it.hash), None
        except UnsafeHashError as exc:  # e.g. a symlink out of the root put in its place
            target, unsafe = croot / it.hash, str(exc)
        doc = store.row_snapshot("documents", it.hash)
        had = bool(it.snapshot and it.snapshot.had_folder)
        q_concepts = it.entry.concepts if it.entry else None
        offsite = Path(offsite_dir) / it.hash if offsite_dir else None
        if it.entry is not None and not had:
            source, kind = None, "none"  # there was no folder before the reprocess
        elif (it.entry is not None and it.entry.restoring_target() == target
              and target.is_dir() and not (q_concepts and q_concepts.is_dir())):
            # A restore killed after moving the folder back, before its rows: the folder in
            # place is the quarantined one; the rows and the marks are what is left to do.
            source, kind = None, "moved"
        elif q_concepts is not None and q_concepts.is_dir():
            source, kind = q_concepts, "quarantine"
        elif offsite is not None and offsite.is_dir():
            source, kind = offsite, "offsite"
        else:
            source, kind = None, "missing"
        row_back = restore_documents and it.snapshot is not None and _in_reset_state(doc)
        if unsafe is not None:
            action = f"problem: nothing touched, the concept folder is unsafe: {unsafe}"
        elif doc and doc.get("status") in MID_PIPELINE_STATUSES:
            action = "skip: RECON is processing it now; run again when RECON is idle"
        elif kind == "missing":
            action = (
                "problem: not in quarantine and not in the off-site mirror (restore it by "
                "hand, or leave it: remove_feature with restore_concepts: false)"
            )
        elif kind not in ("none", "moved") and target.exists() and not force:
            action = "skip: a folder exists there (RECON re-created it?); force: true replaces it"
        else:
            action = "restore"
        plan.append(
            {
                "hash": it.hash,
                "from": kind,
                "source": str(source) if source else None,
                "target": str(target),
                "target_exists": target.exists(),
                "unsafe": unsafe is not None,
                "document_row_back": bool(row_back) and action == "restore",
                "action": action,
                "_item": it,
                "_source": source,
            }
        )
    todo = [p for p in plan if p["action"] == "restore"]
    report.counts = {
        "interrupted_writes": len(writes),
        "candidates": len(plan),
        "from_quarantine": sum(1 for p in todo if p["from"] in ("quarantine", "moved")),
        "from_offsite": sum(1 for p in todo if p["from"] == "offsite"),
        "document_rows_back": sum(1 for p in todo if p["document_row_back"]),
        "skipped": sum(1 for p in plan if p["action"].startswith("skip")),
        "missing": sum(1 for p in plan if p["action"].startswith("problem") and not p["unsafe"]),
        "unsafe": sum(1 for p in plan if p["unsafe"]),
    }
    report.sample = [
        {k: v for k, v in p.items() if not k.startswith("_")} for p in plan[:SAMPLE_SIZE]
    ]
    for p in plan:
        if p["action"].startswith("problem"):
            report.problems.append(f"{p['hash']}: {p['action'][9:]}")
    if dry_run:
        report.steps.append(
            f"would restore {len(todo)} concept folders ({report.counts['from_quarantine']} "
            f"from quarantine, {report.counts['from_offsite']} from the off-site mirror) and "
            f"put back {report.counts['document_rows_back']} documents' rows"
        )
        return recorded(audit, report)
    done: list[str] = []
    for p in todo:
        try:
            _restore_one(store, qroot, p, force)
            done.append(p["hash"])
        except (OSError, sqlite3.Error, ValueError) as exc:
            report.problems.append(f"{p['hash']}: restore failed: {exc}")
    report.acted = bool(done)
    report.counts["restored"] = len(done)
    report.steps.append(f"restored {len(done)} documents' concept folders / rows")
    return recorded(audit, report, restored=done)


def _restore_one(store: ReconStore, qroot: Path, p: dict[str, Any], force: bool) -> None:
    it: _RestoreItem = p["_item"]
    source: Path | None = p["_source"]
    target = Path(p["target"])
    staged: Path | None = None
    if source is not None and p["from"] == "offsite":
        # Copy first (slow, outside any lock), under a temporary name in the quarantine.
        staged = quarantine.staging_path(qroot, it.hash)
        shutil.rmtree(staged, ignore_errors=True)
        qroot.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, staged, symlinks=True)
        source = staged
    if source is not None and it.entry is not None:
        it.entry.mark_restoring(target)
    # One write transaction holds RECON's writers off while the folder and the row change
    # together: RECON cannot pick the document up between the two. A kill after the move
    # rolls the rows back; the restoring marker lets the next run finish them.
    with store.transaction():
        doc = store.row_snapshot("documents", it.hash)
        if source is not None:
            if target.exists():
                if not force:
                    raise ValueError(f"{target} appeared meanwhile; not overwritten")
                quarantine.move_folder(target, quarantine.set_aside_path(qroot, it.hash))
            target.parent.mkdir(parents=True, exist_ok=True)
            quarantine.move_folder(source, target)
        if p["document_row_back"] and _in_reset_state(doc) and it.snapshot is not None:
            store.put_rows_back(it.hash, it.snapshot.rows())
        if it.entry is not None:
            store.mark_audit_restored(it.hash, str(it.entry.concepts))
    if it.entry is not None:
        came_from = "quarantine" if p["from"] == "moved" else p["from"]
        it.entry.mark_restored(target, came_from, utc_now())
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)
