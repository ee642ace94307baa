"""`recon-domains status` on generated RECON databases, before and after the migration."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon_domains.cli import main
from recon_domains.recon.store import DomainDecision, ReconStore
from recon_domains.taxonomy import Status

SOURCE = "stream.echo6.co"


def test_status_says_not_migrated_instead_of_failing(small_corpus, capsys) -> None:
    assert main(["status", "--db", str(small_corpus.recon_db)]) == 0
    out = capsys.readouterr().out
    assert "not migrated yet" in out
    assert f"stream documents: {small_corpus.stream_docs}" in out


def test_status_reports_breakdown_distribution_and_unpushed(small_corpus, capsys) -> None:
    with ReconStore.open(small_corpus.recon_db, small_corpus.source) as store:
        store.migrate()
        docs = store.backfill_candidates()[:5]
        store.write_decisions(
            [DomainDecision(docs[0].hash, Status.ASSIGNED, "Medical"),
             DomainDecision(docs[1].hash, Status.ASSIGNED, "Medical"),
             DomainDecision(docs[2].hash, Status.TIED_PASS_2, "Logistics"),
             DomainDecision(docs[3].hash, Status.TIED_MANUAL, "Navigation"),
             DomainDecision(docs[4].hash, Status.NEEDS_REPROCESS, None)]
        )
        store.record_push_intents([(docs[0].hash, "v0", "stage-1", None, 106)])
        store.complete_push(docs[0].hash)
    assert main(["status", "--db", str(small_corpus.recon_db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "categorized: 3   unpushed: 2" in lines
    assert any(line.split() == ["assigned", "2"] for line in lines)
    assert any(line.split() == ["tied_manual", "1"] for line in lines)
    assert any(line.split() == ["Medical", "2"] for line in lines)
    # tied_manual's display-only fallback is not in the categorized distribution
    assert not any(line.split() == ["Navigation", "1"] for line in lines)


def test_status_errors_are_clear(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECON_DB_PATH", raising=False)
    assert main(["status"]) == 3  # a configuration error
    assert "RECON_DB_PATH is not set" in capsys.readouterr().err
    assert main(["status", "--db", str(tmp_path / "missing.db")]) == 3
    assert "RECON database not found" in capsys.readouterr().err
