"""The gates' and plans' tables are native Dagster tables (issue 12), and what they show
agrees with RECON's database and PeerTube's, read here directly (sqlite3, psycopg2)."""

from __future__ import annotations

import sqlite3
from collections import Counter

import dagster as dg
import psycopg2
import pytest

from recon_domains.taxonomy import DOMAIN_IDS
from recon_domains_tests.defs.conftest import STAGE1, STAGE2, check_evaluation, through

pytestmark = pytest.mark.slow

CATEGORIZED = ("assigned", "tied_pass_2", "manual_assigned")


def columns(value: dg.TableMetadataValue) -> list[str]:
    return [c.name for c in value.schema.columns]


def stream_statuses(r) -> dict[str, str | None]:
    """hash -> recon_domain_status of every stream document, straight from recon.db."""
    conn = sqlite3.connect(f"file:{r.corpus.recon_db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT d.hash, d.recon_domain_status FROM documents d "
            "JOIN catalogue c ON c.hash = d.hash WHERE c.source = ?",
            (r.corpus.source,),
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


def pushed_by_category(r) -> dict[int, int]:
    """RECON's pushed documents per category id, straight from recon.db."""
    conn = sqlite3.connect(f"file:{r.corpus.recon_db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT recon_domain, count(*) FROM documents "
            "WHERE peertube_category_pushed_at IS NOT NULL GROUP BY recon_domain"
        ).fetchall()
    finally:
        conn.close()
    return {DOMAIN_IDS[d]: n for d, n in rows}


def peertube_by_category(dsn: str) -> dict[int, int]:
    """PeerTube's videos per RECON category, straight from its database."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT category, count(*) FROM video WHERE category >= 100 GROUP BY 1")
        rows = cur.fetchall()
    conn.close()
    return dict(rows)


def test_tables_of_the_distribution_samples_plan_and_histogram(rollout_factory):
    r = rollout_factory(docs=300)
    r.through(*through("pass1_job"))

    # The distribution, as pass 1 wrote it: assigned and tied of the documents with valid
    # concepts, needs_reprocess of all candidates.
    statuses = Counter(stream_statuses(r).values())
    valid = statuses["assigned"] + statuses["tied_pass_1"]
    dry = r.last("pass1_dry_run_job")
    candidates = dry.asset_materializations_for_node("pass1_dry_run")[0].metadata["candidates"]
    expected = {
        "assigned": round(100 * statuses["assigned"] / valid, 2),
        "tied": round(100 * statuses["tied_pass_1"] / valid, 2),
        "needs_reprocess": round(100 * statuses["needs_reprocess"] / candidates.value, 2),
    }
    for table in (
        check_evaluation(dry, "distribution_within_benchmarks").metadata["distribution"],
        dry.asset_materializations_for_node("pass1_dry_run")[0].metadata["distribution"],
    ):
        assert isinstance(table, dg.TableMetadataValue)
        assert columns(table) == [
            "measure", "expected (%)", "actual (%)", "deviation (pp)", "tolerance (pp)",
            "verdict",
        ]
        assert {t.data["measure"]: t.data["actual (%)"] for t in table.records} == expected
        assert {t.data["verdict"] for t in table.records} == {"ok"}

    # The spot check's sample: 20 documents that are assigned in recon.db.
    sample = check_evaluation(r.last("pass1_job"), "assigned_spot_check").metadata["sample"]
    assert isinstance(sample, dg.TableMetadataValue)
    assert columns(sample) == [
        "hash", "channel", "stored", "re-derived", "top counts", "channel counts", "PeerTube",
        "agrees",
    ]
    assigned = {h[:12] for h, s in stream_statuses(r).items() if s == "assigned"}
    assert len(sample.records) == 20
    assert {t.data["hash"] for t in sample.records} <= assigned
    assert {t.data["agrees"] for t in sample.records} == {"yes"}

    # The push plan, before any push: stage sizes, and stage-3 the rest of the categorized.
    r.through(*through("push_plan_job")[len(through("pass1_job")) :])
    categorized = sum(1 for s in stream_statuses(r).values() if s in CATEGORIZED)
    plan = r.last("push_plan_job").asset_materializations_for_node("push_plan")[0]
    table = plan.metadata["plan"]
    assert isinstance(table, dg.TableMetadataValue)
    assert columns(table) == ["stage", "items", "top domains"]
    assert [(t.data["stage"], t.data["items"]) for t in table.records] == [
        ("stage-1", STAGE1),
        ("stage-2", STAGE2),
        ("stage-3", categorized - STAGE1 - STAGE2),
    ]
    assert isinstance(plan.metadata["sample"], dg.TableMetadataValue)

    # Stage 2's histogram: PeerTube's videos and RECON's pushed, per category, equal.
    r.through(("push_job", "stage-1"), ("push_job", "stage-2"))
    ev = check_evaluation(r.last("push_job"), "stage_verified")
    histogram = ev.metadata["histogram"]
    assert isinstance(histogram, dg.TableMetadataValue)
    assert columns(histogram) == [
        "id", "domain", "PeerTube videos", "RECON pushed", "pushed showing it", "outside RECON",
        "agree",
    ]
    assert [c.type for c in histogram.schema.columns] == [
        "int", "string", "int", "int", "int", "int", "string"
    ]
    peertube, recon = peertube_by_category(r.server.dsn), pushed_by_category(r)
    assert peertube == recon and sum(recon.values()) > STAGE1
    assert {
        t.data["id"]: (
            t.data["PeerTube videos"], t.data["RECON pushed"], t.data["pushed showing it"],
            t.data["outside RECON"], t.data["agree"],
        )
        for t in histogram.records
    } == {i: (n, n, n, 0, "yes") for i, n in recon.items()}
