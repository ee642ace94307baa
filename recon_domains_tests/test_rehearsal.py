"""`recon-domains rehearse`: the whole runbook on a copy, through Dagster, with a JSON report."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from recon_domains.cli import main
from recon_domains.taxonomy import FIRST_CATEGORY_ID


def _fingerprint(corpus) -> tuple[str, list[tuple[str, int]]]:
    """The original database's bytes and every concept file's size: must never change."""
    digest = hashlib.sha256(corpus.recon_db.read_bytes()).hexdigest()
    files = sorted(
        (str(p.relative_to(corpus.concepts_dir)), p.stat().st_size)
        for p in corpus.concepts_dir.rglob("*") if p.is_file()
    )
    return digest, files


def test_rehearse_then_remove_feature_leaves_originals_and_reports_every_video(
    corpus_factory, tmp_path: Path, capsys, monkeypatch
) -> None:
    corpus = corpus_factory(docs=300)
    before = _fingerprint(corpus)
    report_path = tmp_path / "report.json"
    # The operator's environment: its knobs reach the copy, its PeerTube settings do not
    # (this dump command would fail Pre-Deploy 2), and neither it nor DAGSTER_HOME changes.
    operator_home = tmp_path / "operator_dagster_home"
    operator_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(operator_home))
    monkeypatch.setenv("RECON_PUSH_STAGE1_SIZE", "30")
    monkeypatch.setenv("PEERTUBE_DB_DUMP_COMMAND", "exit 7")
    environ_before = dict(os.environ)
    code = main([
        "rehearse", "--recon-db", str(corpus.recon_db), "--concepts", str(corpus.concepts_dir),
        "--workdir", str(tmp_path / "work"), "--report", str(report_path),
        "--then-remove-feature",
    ])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert dict(os.environ) == environ_before
    assert list(operator_home.iterdir()) == []
    stage1 = next(g for g in json.loads(report_path.read_text())["gates"]
                  if g["gate"] == "peertube_category_push[stage-1]:stage_verified")
    # At most RECON_PUSH_STAGE1_SIZE pushed (a few of those 30 have unpushable watch URLs).
    pushed = int(re.search(r"verified: \d+ of (\d+) pushed", stage1["message"]).group(1))
    assert 20 <= pushed <= 30
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["removed_feature"]
    gates = {g["gate"] for g in report["gates"]}
    assert "pass1_dry_run:distribution_within_benchmarks" in gates
    assert "peertube_category_push[stage-3]:stage_verified" in gates
    assert "reprocess_batch[batch-10]:requeued" in gates
    assert all(g["passed"] for g in report["gates"])
    assert any("no RECON workers" in note for note in report["notes"])
    # After remove_feature: no video keeps a RECON category, and the built-in categories a
    # few videos had before the push are back.
    categories = report["video_categories"]
    assert len(categories) > 200
    assert not any(c is not None and c >= FIRST_CATEGORY_ID for c in categories.values())
    assert any(c is not None for c in categories.values())
    assert report["peertube_category_histogram"] == {}
    assert _fingerprint(corpus) == before  # the originals were only read
    assert "every gate passed" in out.out


def test_rehearse_stops_at_the_first_failed_gate(corpus_factory, tmp_path: Path, capsys) -> None:
    corpus = corpus_factory(docs=300, skewed=True)
    report_path = tmp_path / "report.json"
    code = main([
        "rehearse", "--recon-db", str(corpus.recon_db), "--concepts", str(corpus.concepts_dir),
        "--workdir", str(tmp_path / "work"), "--report", str(report_path),
    ])
    out, err = capsys.readouterr()
    assert code == 1
    assert "distribution_within_benchmarks" in err
    # The stop is said once (stderr), after the failed gate's own line (stdout), and no
    # framework error or stack trace surrounds it.
    both = out + err
    assert both.count("STOPPED at Step 4: pass-1 dry run") == 1, both
    assert "FAIL  pass1_dry_run:distribution_within_benchmarks: " in out
    for noise in ("Traceback", "Stack Trace", "DagsterAssetCheckFailedError"):
        assert noise not in both
    report = json.loads(report_path.read_text())
    assert not report["ok"]
    failed = [g for g in report["gates"] if not g["passed"]]
    assert [g["gate"] for g in failed] == ["pass1_dry_run:distribution_within_benchmarks"]
    # Nothing after the failed gate ran: nothing was assigned or pushed.
    assert report["pushed_count"] == 0
    assert set(report["status_counts"]) == {"unassigned"}
    assert not any(c is not None and c >= FIRST_CATEGORY_ID
                   for c in report["video_categories"].values())


def test_rehearse_refuses_a_used_workdir_and_bad_paths(corpus_factory, tmp_path: Path,
                                                        capsys) -> None:
    assert main(["rehearse", "--recon-db", str(tmp_path / "nope.db"), "--concepts",
                 str(tmp_path), "--workdir", str(tmp_path / "w")]) == 3
    assert "is not a file" in capsys.readouterr().err
    corpus = corpus_factory(docs=100)
    used = tmp_path / "used"
    (used / "recon").mkdir(parents=True)
    (used / "recon" / "recon.db").write_bytes(b"")
    assert main(["rehearse", "--recon-db", str(corpus.recon_db), "--concepts",
                 str(corpus.concepts_dir), "--workdir", str(used)]) == 3
    assert "already holds a rehearsal" in capsys.readouterr().err


def test_demo_says_each_step_while_it_runs(tmp_path: Path) -> None:
    """`recon-domains demo` through a pipe (as cron or `| tee` sees it): each step's line
    arrives while the demo still runs — before the report it writes at the end exists —
    and the long loops report done/total at the log cadence, not once per item."""
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "recon_domains.cli", "demo", "--docs", "100",
         "--workdir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    report_existed_at_first_step: bool | None = None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if report_existed_at_first_step is None and line.startswith("[1/15] "):
            report_existed_at_first_step = (workdir / "report.json").exists()
    assert proc.wait(timeout=600) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert report_existed_at_first_step is False, text
    assert (workdir / "report.json").exists()
    # Every step as it starts, then as it ends with its gates' verdicts, in runbook order.
    start = lines.index("[1/15] Pre-deploy 1–4 (predeploy_job) ...")
    end = next(i for i, line in enumerate(lines)
               if line.startswith("[1/15] Pre-deploy 1–4: ok in "))
    assert start < end
    assert "    PASS  recon_db_backup:backup_verified" in lines[end + 1:end + 5]
    assert lines.index("[8/15] Step 5: push stage 1 (push_job stage-1) ...") > end
    # Progress at a cadence: about one line per 10 %, with done/total and a rate.
    pass1 = [line for line in lines if line.startswith("    pass 1: ")]
    assert 3 <= len(pass1) <= 12, pass1
    assert re.match(r"    pass 1: (\d+)/\1 documents \(100 %\), .*done in", pass1[-1])
    push = [line for line in lines if line.startswith("    push stage-1: ")]
    assert push and all(line.split()[2].split("/")[1] == push[0].split()[2].split("/")[1]
                        for line in push), push  # one denominator
    # The summary once, at the end, and nothing of the framework's.
    assert text.count("every gate passed") == 1
    assert lines.index("summary:") > lines.index("[15/15] Step 7: reprocess the rest "
                                                 "(reprocess_job all) ...")
    for noise in ("Traceback", "Stack Trace", "DagsterAssetCheckFailedError"):
        assert noise not in text
    # Each step and gate is said once, by the demo: not again by Dagster's console.
    for event in ("RUN_START", "RUN_SUCCESS", "Materialized value"):
        assert event not in text, event
