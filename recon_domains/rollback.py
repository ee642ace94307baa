"""The runbook's "Rollback Procedures" (SPEC §8), each a function that is a dry run by default.

Every function returns a :class:`RollbackReport` saying what it would do (``dry_run=True``)
or did, with counts and a sample, and appends one entry per call to an audit trail.

The audit trail is a JSON-lines file, not a table: the schema rollback drops our tables,
and the record of what was rolled back must outlive them. By convention it is
``$RECON_BACKUP_DIR/recon_domains-audit.jsonl`` (:func:`audit_log_for`), next to the
pre-deploy backups; before the schema rollback drops the push ledger and the reprocess
audit table, their rows are copied into it.

Every function is safe to re-run: it reads the current state first and only acts on what
is still to be done (a second run reports "nothing to do").
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from recon_domains import reprocess as rp
from recon_domains.peertube.categories import read_current_categories, recon_categories
from recon_domains.peertube.urls import parse_watch_url
from recon_domains.recon.concepts import concept_folder
from recon_domains.recon.store import (
    AUDIT_TABLE,
    DOMAIN_COLUMNS,
    DROP_COLUMN_MIN_SQLITE,
    LEDGER_TABLE,
    OUR_TABLES,
    STATUS_INDEX,
    ReconStore,
    sqlite_version,
    utc_now,
)
from recon_domains.taxonomy import (
    DOMAIN_IDS,
    MID_PIPELINE_STATUSES,
    PLUGIN_NPM_NAME,
    Status,
)

AUDIT_FILE_NAME = "recon_domains-audit.jsonl"
SAMPLE_SIZE = 10


class RollbackRefused(RuntimeError):
    """A confirmed rollback would be unsafe now; the message says why and what to do."""


class RollbackConfigError(ValueError):
    """A rollback was asked for with an option it does not know; the message lists them."""


# --- reports and the audit trail -------------------------------------------------------------


@dataclass
class RollbackReport:
    """What a rollback would do (dry run) or did."""

    action: str
    dry_run: bool
    acted: bool = False  # something was changed by this call
    counts: dict[str, int] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # human-readable: what (would) happen
    problems: list[str] = field(default_factory=list)  # what needs an operator
    audit: list[dict[str, Any]] = field(default_factory=list)  # entries appended
    parts: list[RollbackReport] = field(default_factory=list)  # remove_feature's steps

    @property
    def ok(self) -> bool:
        return not self.problems and all(p.ok for p in self.parts)

    def summary(self) -> str:
        """One line for logs."""
        mode = "DRY RUN" if self.dry_run else "done"
        counts = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        text = f"{self.action} ({mode}): {counts or 'nothing to do'}"
        if self.problems:
            text += f"; {len(self.problems)} problem(s): " + "; ".join(self.problems[:3])
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


class AuditLog:
    """Append-only JSON-lines audit trail. `path=None` keeps entries in memory only."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None

    def record(self, report: RollbackReport, **details: Any) -> dict[str, Any]:
        entry = {
            "at": utc_now(),
            "action": report.action,
            "dry_run": report.dry_run,
            "acted": report.acted,
            "counts": dict(report.counts),
            "problems": list(report.problems),
            **details,
        }
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        report.audit.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every entry in the file (oldest first)."""
        if self.path is None or not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def audit_log_for(backup_dir: str | os.PathLike[str] | None) -> AuditLog:
    """The project's audit trail: `<RECON_BACKUP_DIR>/recon_domains-audit.jsonl`."""
    return AuditLog(Path(backup_dir) / AUDIT_FILE_NAME if backup_dir else None)


def _audit(audit: AuditLog | None, report: RollbackReport, **details: Any) -> RollbackReport:
    (audit or AuditLog(None)).record(report, **details)
    return report


# --- small SQLite helpers (work whether or not the schema is migrated) -----------------------


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _doc_columns(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(documents)")}


def _has_domain_columns(store: ReconStore) -> bool:
    return set(DOMAIN_COLUMNS) <= _doc_columns(store.conn)


def _has_ledger(store: ReconStore) -> bool:
    return LEDGER_TABLE in _tables(store.conn)


# --- 1. plugin -------------------------------------------------------------------------------


MANUAL_PLUGIN_STEPS = (
    "On PeerTube's host, disable the plugin without uninstalling it: move "
    "storage/plugins/node_modules/{npm} to {npm}.disabled, then `systemctl restart peertube` "
    "(runbook: Plugin install fails or breaks PeerTube).",
    "Or remove it fully: PeerTube admin UI → Plugins/Themes → Installed → {npm} → Uninstall, "
    "then restart PeerTube.",
    "Then re-run this job: it verifies that categories 100–117 are gone.",
)


def rollback_plugin(
    client: Any,
    npm_name: str = PLUGIN_NPM_NAME,
    manual: bool = False,
    *,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Uninstall the plugin through the admin API (or, `manual=True`, state the manual steps)
    and verify PeerTube's categories no longer include 100–117.

    Videos keep their category ids after an uninstall (shown as "Unknown"): restore the
    categories first (rollback_peertube_categories / remove_feature do).
    """
    report = RollbackReport("rollback_plugin", dry_run)
    ours = recon_categories(client.categories())
    installed = False if manual else client.find_plugin(npm_name) is not None
    report.counts = {"recon_categories_registered": len(ours), "plugin_installed": int(installed)}
    report.sample = [{"id": i, "label": label} for i, label in sorted(ours.items())][:SAMPLE_SIZE]
    if manual:
        report.steps = [s.format(npm=npm_name) for s in MANUAL_PLUGIN_STEPS]
        if ours:
            report.problems.append(
                f"{len(ours)} RECON categories (100–117) are still registered: do the manual "
                "steps above, then run this again to verify"
            )
        else:
            report.steps.append("verified: PeerTube's categories no longer include 100–117")
        return _audit(audit, report, npm_name=npm_name, manual=True)
    if not installed:
        report.steps.append(f"{npm_name} is not installed: nothing to uninstall")
        if ours:
            report.problems.append(
                f"categories 100–117 are registered although {npm_name} is not listed as "
                "installed (installed by hand, or PeerTube's reinstall quirk): restart "
                "PeerTube, or follow the manual steps (manual: true)"
            )
        return _audit(audit, report, npm_name=npm_name)
    if dry_run:
        report.steps.append(
            f"would uninstall {npm_name} (POST /api/v1/plugins/uninstall) and check that "
            f"the {len(ours)} categories 100–117 disappear"
        )
        return _audit(audit, report, npm_name=npm_name)
    client.uninstall_plugin(npm_name)
    report.acted = True
    left = recon_categories(client.categories())
    report.counts["recon_categories_left"] = len(left)
    report.steps.append(f"uninstalled {npm_name}")
    if left:
        report.problems.append(
            f"{len(left)} categories 100–117 are still registered after the uninstall "
            "(PeerTube keeps them when the plugin had been installed twice): restart PeerTube, "
            "then run this again to verify"
        )
    else:
        report.steps.append("verified: PeerTube's categories no longer include 100–117")
    return _audit(audit, report, npm_name=npm_name)


# --- 2. PeerTube categories ------------------------------------------------------------------


def rollback_peertube_categories(
    store: ReconStore,
    client: Any = None,
    pt_db: Any = None,
    *,
    source: str | None = None,
    via: Literal["auto", "api", "db"] = "auto",
    force: bool = False,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Put back every pushed video's category from the push ledger, then clear the push
    timestamps so a later push can retry.

    The target is the category a video had before our *first* push to it
    (`store.original_categories()`), NULL only where nothing was recorded (documents
    marked pushed without a ledger row, listed when `source` is given). A video whose
    category is neither its original nor one we pushed was changed in PeerTube since: it is
    reported and left alone unless `force`. Writes go through the API (`via="api"`, the
    default when a client is given: PeerTube federates and bumps updatedAt) or PeerTube's
    database in one transaction (`via="db"`).
    """
    if via not in ("auto", "api", "db"):
        raise RollbackConfigError(f"via must be auto, api or db, got {via!r}")
    report = RollbackReport("rollback_peertube_categories", dry_run)
    if not _has_ledger(store):
        report.steps.append(
            "no push ledger in recon.db (schema already reverted, or never migrated): "
            "nothing recorded to restore"
        )
        return _audit(audit, report)
    originals = store.original_categories()
    pushed_values: dict[str, set[int | None]] = {}
    hashes_of: dict[str, set[str]] = {}
    for r in store.ledger():
        pushed_values.setdefault(r.video_id, set()).add(r.category_after)
        hashes_of.setdefault(r.video_id, set()).add(r.hash)
    unrecorded: dict[str, str] = {}  # video_id -> hash: pushed, but no ledger row
    if source is not None and _has_domain_columns(store):
        for cand in store.pushed_documents(source):
            parsed = parse_watch_url(cand.path)
            if parsed.ok and parsed.video_id not in originals:
                unrecorded[parsed.video_id] = cand.hash
                originals[parsed.video_id] = None
                pushed_values.setdefault(parsed.video_id, set()).add(DOMAIN_IDS.get(cand.domain))
                hashes_of.setdefault(parsed.video_id, set()).add(cand.hash)
    video_ids = sorted(originals)
    if via == "auto":
        via = "api" if client is not None else "db"
    current = read_current_categories(video_ids, client, pt_db) if video_ids else {}

    to_restore: dict[str, int | None] = {}
    already, gone, drifted = [], [], []
    for vid in video_ids:
        target = originals[vid]
        if vid not in current:
            gone.append(vid)
        elif current[vid] == target:
            already.append(vid)
        elif current[vid] in pushed_values.get(vid, set()) or force:
            to_restore[vid] = target
        else:
            drifted.append(vid)
    report.counts = {
        "videos_in_ledger": len(video_ids) - len(unrecorded),
        "pushed_without_ledger_row": len(unrecorded),
        "to_restore": len(to_restore),
        "to_null": sum(1 for v in to_restore.values() if v is None),
        "to_builtin": sum(1 for v in to_restore.values() if v is not None),
        "already_original": len(already),
        "changed_in_peertube": len(drifted),
        "video_missing": len(gone),
    }
    report.sample = [
        {"video_id": v, "now": current.get(v), "restore_to": t, "hashes": sorted(hashes_of[v])}
        for v, t in list(to_restore.items())[:SAMPLE_SIZE]
    ] + [
        {"video_id": v, "now": current.get(v), "original": originals[v], "left_alone": True}
        for v in drifted[:SAMPLE_SIZE]
    ]
    if drifted:
        report.problems.append(
            f"{len(drifted)} videos were changed in PeerTube after our push (their category is "
            "neither the original nor ours): left alone; review them (sample), then re-run "
            "with force: true to restore them anyway"
        )
    clear_ids = [v for v in video_ids if v not in drifted]
    clear_hashes = sorted({h for v in clear_ids for h in hashes_of[v]})
    pushed_marked = _pushed_marked(store, clear_hashes)
    report.counts["push_timestamps_to_clear"] = len(pushed_marked)
    if dry_run:
        report.steps.append(
            f"would restore {len(to_restore)} videos' categories through "
            f"{'the API' if via == 'api' else 'PeerTube database'} "
            f"({report.counts['to_null']} to NULL, {report.counts['to_builtin']} to their "
            f"earlier category) and clear {len(pushed_marked)} push timestamps"
        )
        return _audit(audit, report, via=via)

    failed: list[tuple[str, str]] = []
    if to_restore:
        if via == "db":
            if pt_db is None:
                raise ValueError("via='db' needs PeerTube's database (PEERTUBE_DB_DSN)")
            pt_db.write_restore_categories(to_restore)
        else:
            if client is None:
                raise ValueError("via='api' needs a PeerTube API client")
            failed = _restore_via_api(client, to_restore)
        report.acted = True
    if failed:
        report.problems.append(
            f"{len(failed)} videos could not be restored through the API (e.g. "
            f"{failed[0][0]}: {failed[0][1]}): re-run; their push timestamps are kept"
        )
    # Verify by reading back, then forget the pushes of every video now at its original.
    after = read_current_categories(video_ids, client, pt_db) if to_restore else current
    wrong = [v for v in to_restore if v in after and after[v] != to_restore[v]]
    if wrong:
        report.problems.append(
            f"{len(wrong)} videos do not show the restored category (e.g. {wrong[0]}): re-run"
        )
    bad = {v for v, _ in failed} | set(wrong)
    done_hashes = sorted({h for v in clear_ids if v not in bad for h in hashes_of[v]})
    cleared = _clear_pushes(store, done_hashes, [v for v in clear_ids if v not in bad])
    report.acted = report.acted or cleared > 0
    report.counts["restored"] = len(to_restore) - len(bad)
    report.counts["push_timestamps_cleared"] = cleared
    report.steps.append(
        f"restored {report.counts['restored']} videos' categories and cleared {cleared} "
        "push timestamps"
    )
    return _audit(
        audit,
        report,
        via=via,
        restored={v: t for v, t in to_restore.items() if v not in bad},
        failed=failed,
    )


def _restore_via_api(client: Any, mapping: Mapping[str, int | None]) -> list[tuple[str, str]]:
    def put(item: tuple[str, int | None]) -> tuple[str, str | None]:
        vid, cat = item
        try:
            client.set_category(vid, cat)
            return vid, None
        except Exception as exc:  # reported per video; the rest go on
            return vid, str(exc)[:300]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [(v, e) for v, e in pool.map(put, mapping.items()) if e is not None]


def _pushed_marked(store: ReconStore, hashes: Sequence[str]) -> list[str]:
    if not hashes or not _has_domain_columns(store):
        return []
    out: list[str] = []
    for i in range(0, len(hashes), 500):
        chunk = hashes[i : i + 500]
        rows = store.conn.execute(
            "SELECT hash FROM documents WHERE peertube_category_pushed_at IS NOT NULL AND hash "
            f"IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        out.extend(r[0] for r in rows)
    return out


def _clear_pushes(store: ReconStore, hashes: Sequence[str], video_ids: Sequence[str]) -> int:
    """One transaction: documents' push timestamps NULL, ledger rows marked restored."""
    stamp = utc_now()
    cleared = 0
    with store.transaction() as conn:
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            marks = ",".join("?" * len(chunk))
            cur = conn.execute(
                "UPDATE documents SET peertube_category_pushed_at = NULL WHERE "
                f"peertube_category_pushed_at IS NOT NULL AND hash IN ({marks})",
                chunk,
            )
            cleared += cur.rowcount
        for i in range(0, len(video_ids), 500):
            chunk = list(video_ids[i : i + 500])
            conn.execute(
                f"UPDATE {LEDGER_TABLE} SET restored_at = ? WHERE restored_at IS NULL AND "
                f"video_id IN ({','.join('?' * len(chunk))})",
                [stamp, *chunk],
            )
    return cleared


# --- 3. assignments --------------------------------------------------------------------------


def rollback_assignments(
    store: ReconStore,
    mode: Literal["all", "tiebreaker_only"] = "all",
    *,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Clear wrong assignments (runbook "Clear wrong backfill assignments").

    `all`: every domain column NULL (push timestamps too). `tiebreaker_only`: `tied_pass_2`
    and `tied_manual` back to `tied_pass_1` (domain, time and push timestamp NULL) for a
    tiebreaker re-run. PeerTube keeps what was pushed; the push ledger still holds each
    video's original category for rollback_peertube_categories. The cleared rows are written
    to the audit trail, so even manual decisions can be recovered from it.
    """
    if mode not in ("all", "tiebreaker_only"):
        raise RollbackConfigError(f"mode must be 'all' or 'tiebreaker_only', got {mode!r}")
    report = RollbackReport(f"rollback_assignments[{mode}]", dry_run)
    if not _has_domain_columns(store):
        report.steps.append(
            "recon.db has no domain columns (schema not migrated): nothing to clear"
        )
        return _audit(audit, report, mode=mode)
    if mode == "all":
        where = " OR ".join(f"{c} IS NOT NULL" for c in DOMAIN_COLUMNS)
        update = ", ".join(f"{c} = NULL" for c in DOMAIN_COLUMNS)
        params: tuple = ()
    else:
        where = "recon_domain_status IN (?, ?)"
        update = (
            "recon_domain = NULL, recon_domain_status = ?, recon_domain_assigned_at = NULL, "
            "peertube_category_pushed_at = NULL"
        )
        params = (Status.TIED_PASS_2, Status.TIED_MANUAL)
    rows = store.conn.execute(
        "SELECT hash, recon_domain, recon_domain_status, recon_domain_assigned_at, "
        f"peertube_category_pushed_at FROM documents WHERE {where} ORDER BY hash",
        params,
    ).fetchall()
    by_status: dict[str, int] = {}
    for r in rows:
        key = r["recon_domain_status"] or "unassigned"
        by_status[key] = by_status.get(key, 0) + 1
    pushed = sum(1 for r in rows if r["peertube_category_pushed_at"])
    report.counts = {"documents": len(rows), "pushed": pushed}
    report.counts.update({f"status:{k}": v for k, v in sorted(by_status.items())})
    report.sample = [dict(r) for r in rows[:SAMPLE_SIZE]]
    target = "NULL" if mode == "all" else Status.TIED_PASS_1
    if pushed:
        report.steps.append(
            f"{pushed} of them were pushed: PeerTube keeps those categories until "
            "rollback_peertube_categories restores them from the push ledger"
        )
    if by_status.get(Status.MANUAL_ASSIGNED):
        report.steps.append(
            f"{by_status[Status.MANUAL_ASSIGNED]} manual decisions are cleared too (recorded "
            "in the audit trail)"
        )
    if dry_run or not rows:
        report.steps.insert(
            0,
            f"would set {len(rows)} documents' status to {target}"
            if rows
            else "no document to clear: nothing to do",
        )
        return _audit(audit, report, mode=mode)
    with store.transaction() as conn:
        set_params = (Status.TIED_PASS_1,) if mode == "tiebreaker_only" else ()
        cur = conn.execute(f"UPDATE documents SET {update} WHERE {where}", (*set_params, *params))
    report.acted = True
    report.counts["cleared"] = cur.rowcount
    report.steps.insert(0, f"set {cur.rowcount} documents' status to {target}")
    return _audit(audit, report, mode=mode, cleared=[dict(r) for r in rows])


# --- 4. schema -------------------------------------------------------------------------------


def _schema_artifacts(store: ReconStore) -> dict[str, list[str]]:
    conn = store.conn
    cols = _doc_columns(conn)
    idx = {r[1] for r in conn.execute("PRAGMA index_list(documents)")}
    tables = _tables(conn)
    return {
        "columns": [c for c in DOMAIN_COLUMNS if c in cols],
        "index": [STATUS_INDEX] if STATUS_INDEX in idx else [],
        "tables": [t for t in OUR_TABLES if t in tables],
    }


def _still_carrying(store: ReconStore, peertube: Any) -> tuple[int, list[str]]:
    """(documents marked pushed, ledger videos whose PeerTube category is still ours)."""
    pushed = 0
    if _has_domain_columns(store):
        pushed = store.conn.execute(
            "SELECT count(*) FROM documents WHERE peertube_category_pushed_at IS NOT NULL"
        ).fetchone()[0]
    carrying: list[str] = []
    if peertube is not None and _has_ledger(store):
        latest: dict[str, int | None] = {}
        for r in store.ledger():
            if r.pushed_at is not None and r.restored_at is None:
                latest[r.video_id] = r.category_after
        if latest:
            if hasattr(peertube, "categories_of"):
                now = read_current_categories(sorted(latest), pt_db=peertube)
            else:
                now = read_current_categories(sorted(latest), client=peertube)
            carrying = sorted(v for v, c in latest.items() if v in now and now[v] == c)
    return pushed, carrying


def _export_our_tables(store: ReconStore, audit: AuditLog | None, report: RollbackReport) -> None:
    """Copy the push ledger and the reprocess audit rows into the audit trail, and mark each
    audited quarantine entry, before the tables are dropped."""
    tables = _tables(store.conn)
    exported: dict[str, list[dict]] = {}
    for table in OUR_TABLES:
        if table in tables:
            exported[table] = [dict(r) for r in store.conn.execute(f"SELECT * FROM {table}")]
    for row in exported.get(AUDIT_TABLE, []):
        qpath = Path(row["quarantine_path"]) if row.get("quarantine_path") else None
        entry = qpath.parent if qpath is not None and qpath.name == rp.CONCEPTS_SUBDIR else qpath
        if entry is not None and entry.is_dir():
            (entry / rp.AUDITED_MARKER).write_text(json.dumps(row, default=str))
    _audit(
        audit,
        RollbackReport(
            "rollback_schema:export", False, counts={t: len(v) for t, v in exported.items()}
        ),
        tables=exported,
    )
    report.steps.append(
        "copied "
        + ", ".join(f"{len(v)} rows of {t}" for t, v in exported.items())
        + " into the audit trail"
    )


def rollback_schema(
    store: ReconStore,
    peertube: Any = None,
    force: bool = False,
    *,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """Drop the four columns, the index and our tables (runbook "Schema migration revert").

    Refuses while PeerTube still carries pushed categories (documents marked pushed, or —
    given PeerTube's database or an API client as `peertube` — ledger videos still showing
    the category we pushed) unless `force`: dropping the ledger would lose the originals the
    category rollback needs. Needs SQLite >= 3.35 for DROP COLUMN; checked first.
    """
    report = RollbackReport("rollback_schema", dry_run)
    present = _schema_artifacts(store)
    report.counts = {k: len(v) for k, v in present.items()}
    report.sample = [{"kind": k, "name": n} for k, names in present.items() for n in names]
    if not any(present.values()):
        report.steps.append("nothing of ours in recon.db: schema already reverted")
        return _audit(audit, report)
    if sqlite_version() < DROP_COLUMN_MIN_SQLITE:
        msg = (
            f"SQLite {sqlite3.sqlite_version} cannot DROP COLUMN (needs 3.35.0 or newer): "
            "upgrade SQLite (Ubuntu 24.04 ships 3.45), or restore the pre-deploy backup "
            "recon.db.pre-domain-feature.*.bak instead. The columns are nullable and inert."
        )
        report.problems.append(msg)
        if not dry_run:
            _audit(audit, report)
            raise RollbackRefused(msg)
        return _audit(audit, report)
    pushed, carrying = _still_carrying(store, peertube)
    report.counts["documents_marked_pushed"] = pushed
    report.counts["videos_still_carrying_our_category"] = len(carrying)
    if (pushed or carrying) and not force:
        msg = (
            f"PeerTube still carries pushed categories ({pushed} documents marked pushed, "
            f"{len(carrying)} videos still showing our category): dropping the push ledger "
            "would lose their original categories. Run rollback_peertube_categories first, "
            "or set force: true to drop anyway"
        )
        report.problems.append(msg)
        if not dry_run:
            _audit(audit, report, carrying_sample=carrying[:SAMPLE_SIZE])
            raise RollbackRefused(msg)
        return _audit(audit, report, carrying_sample=carrying[:SAMPLE_SIZE])
    if dry_run:
        report.steps.append(
            "would copy the push ledger and reprocess audit into the audit trail, then drop "
            + ", ".join(n for names in present.values() for n in names)
        )
        return _audit(audit, report)
    _export_our_tables(store, audit, report)
    actions = store.revert_migration()
    report.acted = bool(actions)
    report.steps.extend(actions)
    left = _schema_artifacts(store)
    if any(left.values()):
        report.problems.append(f"still present after the revert: {left}")
    return _audit(audit, report, actions=actions)


# --- 5. concept folders ----------------------------------------------------------------------


@dataclass
class _RestoreItem:
    hash: str
    entry: Path | None  # the quarantine entry (None: off-site copy only)
    snapshot: dict | None


def _restore_candidates(
    store: ReconStore, quarantine_root: Path, hashes: Sequence[str] | None
) -> list[_RestoreItem]:
    """Latest unrestored quarantine entry per document (or just the wanted hashes)."""
    latest: dict[str, Path] = {}
    restored_paths: set[str] = set()
    if AUDIT_TABLE in _tables(store.conn):
        restored_paths = {
            r[0]
            for r in store.conn.execute(
                f"SELECT quarantine_path FROM {AUDIT_TABLE} WHERE restored_at IS NOT NULL"
            )
        }
    if quarantine_root.is_dir():
        for p in sorted(quarantine_root.iterdir()):
            if (
                rp.ENTRY_SEPARATOR not in p.name
                or p.name.endswith((rp.PARTIAL_SUFFIX, ".replaced"))
                or not p.is_dir()
                or not (p / rp.DOCUMENT_FILE).exists()
            ):
                continue
            if (p / rp.RESTORED_MARKER).exists() or str(p / rp.CONCEPTS_SUBDIR) in restored_paths:
                continue
            doc_hash = p.name.rsplit(rp.ENTRY_SEPARATOR, 1)[0]
            latest[doc_hash] = p  # sorted: later stamps win
    wanted = sorted(latest) if hashes is None else list(dict.fromkeys(hashes))
    if hashes is None and AUDIT_TABLE in _tables(store.conn):
        # Audited folders whose entry is gone entirely: the off-site copy is the fallback.
        rows = store.conn.execute(
            f"SELECT DISTINCT hash FROM {AUDIT_TABLE} WHERE restored_at IS NULL AND file_count > 0"
        )
        wanted = sorted(set(wanted) | {r[0] for r in rows})
    out = []
    for h in wanted:
        entry = latest.get(h)
        out.append(_RestoreItem(h, entry, rp.read_entry(entry) if entry else None))
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
    values it had before the reprocess (from the entry's document.json), so the reprocess
    is undone exactly; a document RECON already re-processed keeps its new state.
    """
    croot, qroot = Path(concepts_root), Path(quarantine_root)
    report = RollbackReport("restore_concepts", dry_run)
    items = _restore_candidates(store, qroot, hashes)
    plan: list[dict[str, Any]] = []
    for it in items:
        target = concept_folder(croot, it.hash)
        doc = rp._row_dict(store.conn, "documents", it.hash)
        had = bool(it.snapshot and it.snapshot.get("had_folder"))
        q_concepts = it.entry / rp.CONCEPTS_SUBDIR if it.entry else None
        offsite = Path(offsite_dir) / it.hash if offsite_dir else None
        if it.entry is not None and not had:
            source, kind = None, "none"  # there was no folder before the reprocess
        elif q_concepts is not None and q_concepts.is_dir():
            source, kind = q_concepts, "quarantine"
        elif offsite is not None and offsite.is_dir():
            source, kind = offsite, "offsite"
        else:
            source, kind = None, "missing"
        row_back = restore_documents and it.snapshot is not None and _in_reset_state(doc)
        if doc and doc.get("status") in MID_PIPELINE_STATUSES:
            action = "skip: RECON is processing it now; run again when RECON is idle"
        elif kind == "missing":
            action = (
                "problem: not in quarantine and not in the off-site mirror (restore it by "
                "hand, or leave it: remove_feature with restore_concepts: false)"
            )
        elif kind != "none" and target.exists() and not force:
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
                "document_row_back": bool(row_back) and action == "restore",
                "action": action,
                "_item": it,
                "_source": source,
            }
        )
    todo = [p for p in plan if p["action"] == "restore"]
    report.counts = {
        "candidates": len(plan),
        "from_quarantine": sum(1 for p in todo if p["from"] == "quarantine"),
        "from_offsite": sum(1 for p in todo if p["from"] == "offsite"),
        "document_rows_back": sum(1 for p in todo if p["document_row_back"]),
        "skipped": sum(1 for p in plan if p["action"].startswith("skip")),
        "missing": sum(1 for p in plan if p["action"].startswith("problem")),
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
        return _audit(audit, report)
    done: list[str] = []
    for p in todo:
        try:
            _restore_one(store, croot, qroot, p, force)
            done.append(p["hash"])
        except (OSError, sqlite3.Error, ValueError) as exc:
            report.problems.append(f"{p['hash']}: restore failed: {exc}")
    report.acted = bool(done)
    report.counts["restored"] = len(done)
    report.steps.append(f"restored {len(done)} documents' concept folders / rows")
    return _audit(audit, report, restored=done)


def _restore_one(
    store: ReconStore, croot: Path, qroot: Path, p: dict[str, Any], force: bool
) -> None:
    it: _RestoreItem = p["_item"]
    source: Path | None = p["_source"]
    target = Path(p["target"])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staged: Path | None = None
    if source is not None and p["from"] == "offsite":
        # Copy first (slow, outside any lock), under a temporary name in the quarantine.
        staged = qroot / f".restore-{it.hash}{rp.PARTIAL_SUFFIX}"
        shutil.rmtree(staged, ignore_errors=True)
        qroot.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, staged, symlinks=True)
        source = staged
    snapshot = it.snapshot or {}
    # One write transaction holds RECON's writers off while the folder and the row change
    # together: RECON cannot pick the document up between the two.
    with store.transaction() as conn:
        doc = rp._row_dict(conn, "documents", it.hash)
        if source is not None:
            if target.exists():
                if not force:
                    raise ValueError(f"{target} appeared meanwhile; not overwritten")
                rp.move_folder(target, qroot / f"{it.hash}{rp.ENTRY_SEPARATOR}{stamp}.replaced")
            target.parent.mkdir(parents=True, exist_ok=True)
            rp.move_folder(source, target)
        if p["document_row_back"] and _in_reset_state(doc):
            _put_rows_back(conn, it.hash, snapshot)
        if AUDIT_TABLE in _tables(conn) and it.entry is not None:
            conn.execute(
                f"UPDATE {AUDIT_TABLE} SET restored_at = ? WHERE hash = ? AND restored_at IS NULL "
                "AND quarantine_path = ?",
                (utc_now(), it.hash, str(it.entry / rp.CONCEPTS_SUBDIR)),
            )
    if it.entry is not None:
        (it.entry / rp.RESTORED_MARKER).write_text(
            json.dumps({"restored_at": utc_now(), "target": str(target), "from": p["from"]})
        )
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)


def _put_rows_back(conn: sqlite3.Connection, doc_hash: str, snapshot: Mapping[str, Any]) -> None:
    """Write back the documents/catalogue values saved before the reprocess reset (only
    columns that still exist: the domain columns may have been dropped meanwhile)."""
    for table in ("documents", "catalogue"):
        saved = snapshot.get(table) or {}
        cols = [c for c in rp._table_columns(conn, table) if c in saved and c != "hash"]
        if not cols:
            continue
        conn.execute(
            f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in cols)} WHERE hash = ?",
            [*(saved[c] for c in cols), doc_hash],
        )


# --- 6. the whole feature --------------------------------------------------------------------


def remove_feature(
    store: ReconStore,
    client: Any,
    concepts_root: str | os.PathLike[str],
    quarantine_root: str | os.PathLike[str],
    offsite_dir: str | os.PathLike[str] | None = None,
    pt_db: Any = None,
    *,
    source: str | None = None,
    npm_name: str = PLUGIN_NPM_NAME,
    manual_plugin: bool = False,
    restore_concept_folders: bool = True,
    via: Literal["auto", "api", "db"] = "auto",
    force: bool = False,
    dry_run: bool = True,
    audit: AuditLog | None = None,
) -> RollbackReport:
    """The runbook's "Fully remove feature", in a safe order, stopping at the first step that
    needs an operator (re-run after fixing it: finished steps report nothing to do):

    1. restore PeerTube's categories from the push ledger — first, while the ledger exists
       and while the plugin still registers 100–117 (a recorded original may itself be one);
    2. uninstall the plugin — after 1, so no video is left on an orphaned category id;
    3. restore quarantined concept folders (and the rows of documents RECON has not
       re-processed yet) — before 4 and 5, which drop the audit rows and the status it puts
       back; documents RECON already re-processed keep their fresh folders (never
       overwritten), so this undoes exactly the part of the reprocess still undoable;
    4. clear every assignment — so a failing step 5 (old SQLite) still leaves no domain data;
    5. revert the schema — last: its refusal check proves step 1 finished.

    Reverting RECON's code and restarting RECON (runbook items 3–4) are outside this job.
    """
    report = RollbackReport("remove_feature", dry_run)

    def step(part: RollbackReport) -> bool:
        report.parts.append(part)
        for k, v in part.counts.items():
            report.counts[f"{part.action}.{k}"] = v
        report.steps.extend(f"[{part.action}] {s}" for s in part.steps)
        report.acted = report.acted or part.acted
        if part.problems:
            report.problems.extend(f"[{part.action}] {p}" for p in part.problems)
            return dry_run  # a dry run shows every step; a real run stops here
        return True

    try:
        go = step(
            rollback_peertube_categories(
                store,
                client,
                pt_db,
                source=source,
                via=via,
                force=force,
                dry_run=dry_run,
                audit=audit,
            )
        )
        if go and client is not None:
            go = step(
                rollback_plugin(client, npm_name, manual_plugin, dry_run=dry_run, audit=audit)
            )
        elif go:
            report.steps.append("[rollback_plugin] no API client given: plugin left as it is")
        if go and restore_concept_folders:
            go = step(
                restore_concepts(
                    store,
                    concepts_root,
                    quarantine_root,
                    offsite_dir,
                    None,
                    False,
                    dry_run=dry_run,
                    audit=audit,
                )
            )
        if go:
            go = step(rollback_assignments(store, "all", dry_run=dry_run, audit=audit))
        if go:
            # In a dry run step 1 has not happened yet: assume it will, and say so.
            step(
                rollback_schema(
                    store,
                    pt_db if pt_db is not None else client,
                    force or dry_run,
                    dry_run=dry_run,
                    audit=audit,
                )
            )
            if dry_run:
                report.steps.append(
                    "[rollback_schema] (dry run: assumes step 1 restored the categories)"
                )
    except RollbackRefused as exc:
        report.problems.append(str(exc))
    return _audit(audit, report, parts=[p.action for p in report.parts])


__all__ = [
    "AUDIT_FILE_NAME",
    "AuditLog",
    "RollbackConfigError",
    "RollbackRefused",
    "RollbackReport",
    "audit_log_for",
    "remove_feature",
    "restore_concepts",
    "rollback_assignments",
    "rollback_peertube_categories",
    "rollback_plugin",
    "rollback_schema",
]
