"""The gates' verdicts in the plain core, without Dagster: what each decides and says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recon_domains.peertube.categories import Uncategorized
from recon_domains.pushed import PushedComparison, PushedVideo
from recon_domains.recon.schema import MigrationCheck
from recon_domains.settings import Benchmarks
from recon_domains.taxonomy import DOMAIN_BY_ID
from recon_domains.verdicts import Table, counts_table, human_size
from recon_domains.verdicts.assignment import distribution_within_benchmarks
from recon_domains.verdicts.plugin import categories_registered
from recon_domains.verdicts.predeploy import backup_fresh, no_active_workers
from recon_domains.verdicts.reprocess import dry_run_wrote_nothing
from recon_domains.verdicts.schema import schema_verified
from recon_domains.verdicts.verify import Rollout, peertube_matches_recon


def test_the_runbook_and_the_verdicts_do_not_import_dagster():
    modules = ["recon_domains.runbook"] + [
        f"recon_domains.verdicts.{m}"
        for m in ("predeploy", "plugin", "schema", "assignment", "push", "verify", "reprocess")
    ]
    probe = "import importlib, sys\n"
    probe += "".join(f"importlib.import_module({m!r})\n" for m in modules)
    probe += "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_distribution_within_and_outside_the_benchmarks():
    bench = Benchmarks(assigned=90, tied=10, needs_reprocess=20, tolerance=5)
    ok = distribution_within_benchmarks(
        100, {"assigned": 92.0, "tied": 8.0, "needs_reprocess": 18.5}, bench
    )
    assert ok.passed
    assert ok.description == (
        "Distribution within the benchmarks: assigned 92.0 %, tied 8.0 %, needs_reprocess 18.5 %"
    )
    table = ok.metadata["distribution"]
    assert table.columns[:3] == ("measure", "expected (%)", "actual (%)")
    assert [r[0] for r in table.rows] == ["assigned", "tied", "needs_reprocess"]
    assert [r[-1] for r in table.rows] == ["ok", "ok", "ok"]

    bad = distribution_within_benchmarks(
        100, {"assigned": 80.0, "tied": 20.0, "needs_reprocess": 18.5}, bench
    )
    assert not bad.passed
    assert bad.description.startswith(
        "Distribution deviates more than 5 points: assigned 80.0 % vs 90.0 % (-10.0 pp); "
        "tied 20.0 % vs 10.0 % (+10.0 pp). Halt:"
    )
    assert bad.metadata["deviating"] == "assigned, tied"
    assert distribution_within_benchmarks(0, {}, bench).passed  # nothing to compare
    assert not distribution_within_benchmarks(None, None, bench).passed  # never observed


def test_off_site_freshness_and_idle():
    fresh = backup_fresh({"problems": [], "lag_hours": 1.5, "max_lag_hours": 6, "sampled": 20})
    assert fresh.passed and fresh.description.startswith("Off-site mirror fresh: 1.5 h behind")
    stale = backup_fresh({"problems": ["newest off-site file 9 h behind"], "missing": ["ab"]})
    assert not stale.passed and "9 h behind" in stale.description
    assert stale.metadata["missing_folders"] == ["ab"]
    assert not backup_fresh(None).passed

    busy = [{"hash": "a" * 64, "status": "extracting"}]
    refused = no_active_workers(1, busy, is_copy=False)
    assert not refused.passed
    assert "RECON_IS_COPY=1" in refused.description  # the way on for a rehearsal copy
    on_copy = no_active_workers(1, busy, is_copy=True)
    assert on_copy.passed and on_copy.description.startswith("RECON_IS_COPY")
    assert on_copy.metadata["stale_statuses"].rows == (("a" * 64, "extracting"),)
    assert no_active_workers(0, [], is_copy=False).passed
    assert not no_active_workers(None, [], is_copy=False).passed


def test_categories_schema_rollout_and_dry_run():
    assert categories_registered(dict(DOMAIN_BY_ID)).passed
    first = min(DOMAIN_BY_ID)
    wrong = categories_registered({**DOMAIN_BY_ID, first: "Something else"})
    assert not wrong.passed and wrong.description.startswith("1 RECON categor(ies) wrong")
    assert tuple(r[3] for r in wrong.metadata["categories"].rows if r[0] == first) == ("NO",)

    assert schema_verified(MigrationCheck(True)).passed
    broken = schema_verified(MigrationCheck(False, ("missing column documents.recon_domain",)))
    assert not broken.passed and broken.metadata["problems"].rows == (
        ("missing column documents.recon_domain",),
    )

    # Step 6 compares the videos we pushed (by UUID), not PeerTube's whole histogram.
    pushed = {f"u{i}": PushedVideo(f"u{i}", f"h{i}", 100) for i in range(3)}
    uncategorized = Uncategorized(7, "category IS NULL")

    def rollout(now: dict, outside: dict, histogram: dict) -> Rollout:
        comparison = PushedComparison(pushed, now, outside, 0, "PeerTube's database")
        return Rollout(comparison, histogram, uncategorized, status={}, unpushed=0)

    same = peertube_matches_recon(rollout(dict.fromkeys(pushed, 100), {}, {100: 3}))
    assert same.passed and "Finding" not in same.description
    # A video RECON did not push carrying 100 (an uploader picked it): a finding, no failure.
    outside = peertube_matches_recon(rollout(dict.fromkeys(pushed, 100), {"x": 100}, {100: 4}))
    assert outside.passed
    assert "Finding: 1 video(s) RECON did not push carry a RECON category" in outside.description
    assert outside.metadata["categories"].rows == ((100, DOMAIN_BY_ID[100], 4, 3, 3, 1, "yes"),)
    assert outside.metadata["outside_recon_videos"].rows == (("x", f"100 {DOMAIN_BY_ID[100]}"),)
    assert outside.metadata["uncategorized_counted_as"] == "category IS NULL"
    # One pushed video changed in PeerTube, one deleted: failures, named by label.
    now = {"u0": 15, "u1": 100}
    differ = peertube_matches_recon(rollout(now, {}, {100: 1}))
    assert not differ.passed
    assert (
        f"u0: pushed 100 {DOMAIN_BY_ID[100]}, PeerTube has 15 Science & Technology"
        in differ.description
    )
    assert "1 pushed video(s) are no longer in PeerTube (e.g. u2" in differ.description
    assert differ.metadata["categories"].rows == ((100, DOMAIN_BY_ID[100], 1, 3, 1, 0, "NO"),)

    assert dry_run_wrote_nothing({"audit_rows_before": 2, "audit_rows_after": 2}).passed
    assert not dry_run_wrote_nothing({"audit_rows_before": 2, "audit_rows_after": 3}).passed
    assert not dry_run_wrote_nothing({}).passed


def test_tables_and_sizes():
    assert counts_table({"b": 2, "a": 2, "c": 5}).rows == (("c", 5), ("a", 2), ("b", 2))
    assert Table.of(["x", "y"], [(1, {"k": 1})]).rows == ((1, "{'k': 1}"),)
    with pytest.raises(ValueError, match="has 1 cells"):
        Table.of(["x", "y"], [(1,)])
    assert [human_size(n) for n in (512, 2048, 3 * 1024**2, 5 * 1024**3)] == [
        "512 B", "2.0 KiB", "3.0 MiB", "5.0 GiB",
    ]
