"""`recon-domains status`: the runbook's `assign-categories` with no flag."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recon_domains.commands import EXIT_CONFIG, EXIT_OK
from recon_domains.recon.store import ReconStore, ReconStoreError
from recon_domains.settings import ConfigError, Settings, require
from recon_domains.taxonomy import ALL_STATUSES, CATEGORIZED


def format_status(store: ReconStore) -> str:
    """The status report as text. Works, and says so, on a database not migrated yet."""
    pipeline = store.pipeline_status_counts()
    total = sum(pipeline.values())
    lines = [f"RECON database: {store.path}", f"stream source: {store.source}"]
    lines.append(f"stream documents: {total} (complete: {pipeline.get('complete', 0)})")
    check = store.verify_migration()
    if not check.ok:
        lines.append(
            "domain assignment: not migrated yet (" + "; ".join(check.problems) + ").\n"
            "Run runbook Step 3 (asset recon_schema) before assigning domains."
        )
        return "\n".join(lines)
    counts = store.status_counts()
    categorized = sum(n for s, n in counts.items() if s in CATEGORIZED)
    unpushed = len(store.unpushed_categorized())
    lines.append(f"unassigned: {counts.get('unassigned', 0)}")
    lines.append(f"categorized: {categorized}   unpushed: {unpushed}")
    lines.append("status breakdown:")
    for status in (*ALL_STATUSES, "unassigned"):
        lines.append(f"  {status:<16} {counts.get(status, 0):>7}")
    distribution = store.domain_distribution()
    lines.append("domain distribution (categorized):")
    if not distribution:
        lines.append("  (none yet)")
    for domain, n in distribution.items():
        lines.append(f"  {domain:<24} {n:>7}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        db = Path(args.db) if args.db else require(settings.db_path, "RECON_DB_PATH")
        source = args.source or settings.stream_source
        with ReconStore.open(db, source) as store:
            print(format_status(store))
    except (ConfigError, ReconStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
