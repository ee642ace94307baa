"""What every rollback returns and records: its report, and the audit trail.

The audit trail is a JSON-lines file, not a table: the schema rollback drops our tables,
and the record of what was rolled back must outlive them. By convention it is
``$RECON_BACKUP_DIR/recon_domains-audit.jsonl`` (:func:`audit_log_for`), next to the
pre-deploy backups.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recon_domains.recon.store import utc_now

AUDIT_FILE_NAME = "recon_domains-audit.jsonl"
SAMPLE_SIZE = 10  # rows of a report's sample


class RollbackRefused(RuntimeError):
    """A confirmed rollback would be unsafe now; the message says why and what to do."""


class RollbackConfigError(ValueError):
    """A rollback was asked for with an option it does not know; the message lists them."""


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
    # Videos changed in PeerTube since our push (category rollbacks): each with the
    # categories by label and what was done with it (left as set, or restored).
    drifted: list[dict[str, Any]] = field(default_factory=list)
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


def recorded(audit: AuditLog | None, report: RollbackReport, **details: Any) -> RollbackReport:
    """`report`, after appending its entry to `audit` (in memory only when None)."""
    (audit or AuditLog(None)).record(report, **details)
    return report
