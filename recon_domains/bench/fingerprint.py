"""`make bench`: what knowing "what a decision was made from" costs on 22,000 documents, as
a ratio to pass 1 (recon_domains.recon.concepts: the fingerprint's choice).

- the stat scan the re-assignment's dry run makes (names, sizes, mtimes; no file opened);
- the alternative, a content hash (every window file read and hashed), not used;
- the whole re-assignment dry run with nothing changed (the stat scan, plus the tiebreaker
  retried for the tied_manual documents of topical channels).

Recording the fingerprint with each decision costs pass 1 nothing measurable: it comes from
the reader's own fstat, and its write is part of pass 1's figure.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from recon_domains.assignment import run_tiebreaker
from recon_domains.reassignment import REDECIDED, plan_reassignment
from recon_domains.recon.backup import copy_database
from recon_domains.recon.concepts import concept_fingerprint
from recon_domains.recon.store import ReconStore
from recon_domains.taxonomy import DEFAULT_SKIP_CHANNELS


def content_fingerprint(concepts_root: Path, doc_hash: str) -> str:
    """The alternative measured: every window file's bytes hashed, in name order."""
    digest = hashlib.blake2b(digest_size=16)
    folder = os.path.join(concepts_root, doc_hash)
    try:
        names = sorted(
            e.name for e in os.scandir(folder)
            if e.name.startswith("window_") and e.name.endswith(".json")
        )
    except OSError:
        return "missing"
    for name in names:
        digest.update(name.encode())
        try:
            with open(os.path.join(folder, name), "rb") as fh:
                digest.update(fh.read())
        except OSError:
            digest.update(b"?")
    return digest.hexdigest()


def fingerprint_figures(
    after_pass1: Path, concepts: Path, folder: Path, source: str, pass1_s: float
) -> list[tuple[str, str, str]]:
    """The three figures, each with its ratio to pass 1 (`pass1_s`)."""
    db = folder / "reassignment.db"
    copy_database(after_pass1, db, read_only=True)
    with ReconStore.open(db, source) as store:
        run_tiebreaker(store, concepts, DEFAULT_SKIP_CHANNELS)
        hashes = [row[0] for row in store.decided_stream_documents(REDECIDED)]
        t0 = time.perf_counter()
        for h in hashes:
            concept_fingerprint(concepts, h)
        stat_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for h in hashes:
            content_fingerprint(concepts, h)
        content_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = plan_reassignment(store, concepts, DEFAULT_SKIP_CHANNELS)
        dry_s = time.perf_counter() - t0

    def ratio(seconds: float) -> str:
        return f"{seconds / pass1_s:.2f}x pass 1" if pass1_s else "n/a"

    return [
        ("fingerprint: stat scan (chosen)", f"{stat_s:.2f} s",
         f"{ratio(stat_s)}; {len(hashes)} decided documents, no file opened"),
        ("fingerprint: content hash (not used)", f"{content_s:.2f} s",
         f"{ratio(content_s)}; every window file read and hashed"),
        ("re-assignment dry run, nothing changed", f"{dry_s:.2f} s",
         f"{ratio(dry_s)}; {plan.ties_retried} ties retried, {len(plan.changes)} changes"),
    ]
