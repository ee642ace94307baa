"""`recon-domains rehearse` and `recon-domains demo`: the whole runbook, through Dagster, on a copy.

The rehearsal copies RECON's database (SQLite backup API) and concept folders into a work
folder — the originals are never opened for writing — starts an embedded PostgreSQL and the
sandbox PeerTube seeded with the copy's videos, and then runs the runbook's jobs in order
against a Dagster instance in the work folder. It stops at the first gate that fails, and
writes a JSON report an operator can read before doing the real thing.

It sits beside the CLI: it runs the jobs through the Dagster layer's runner
(recon_domains.defs.runner) in the order of the runbook table (recon_domains.runbook),
without importing dagster itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr

from recon_domains.commands import EXIT_CONFIG, EXIT_OK, EXIT_REFUSED
from recon_domains.definitions import build_definitions
from recon_domains.defs.resources import dg_progress_resource, hardcoded_resources
from recon_domains.defs.runner import JobRunner, RunOutcome
from recon_domains.progress import Listener, terminal_or_lines
from recon_domains.recon.backup import copy_database
from recon_domains.recon.store import ReconStore
from recon_domains.runbook import Run, runs
from recon_domains.settings import ConfigError, PeerTubeSettings, Settings
from recon_domains.taxonomy import FIRST_CATEGORY_ID

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO_ROOT / "peertube-plugin" / "peertube-plugin-recon-domains"
DEMO_MARKER = ".recon-domains-demo"


class RehearsalError(RuntimeError):
    """The rehearsal could not be set up (bad paths, a used work folder)."""


@dataclass
class GateOutcome:
    step: str
    gate: str  # asset[:partition]:check
    passed: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "gate": self.gate, "passed": self.passed,
                "message": self.message}


@dataclass
class RehearsalReport:
    workdir: str
    dagster_home: str
    gates: list[GateOutcome] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    failed_step: str | None = None
    failure: str | None = None
    notes: list[str] = field(default_factory=list)
    status_counts: dict[str, int] = field(default_factory=dict)
    pushed_count: int = 0
    peertube_histogram: dict[str, int] = field(default_factory=dict)
    video_categories: dict[str, int | None] = field(default_factory=dict)
    reprocess: dict[str, int] = field(default_factory=dict)
    removed_feature: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None and all(g.passed for g in self.gates)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "workdir": self.workdir,
            "dagster_home": self.dagster_home,
            "failed_step": self.failed_step,
            "failure": self.failure,
            "gates": [g.as_json() for g in self.gates],
            "step_seconds": self.step_seconds,
            "notes": self.notes,
            "status_counts": self.status_counts,
            "pushed_count": self.pushed_count,
            "peertube_category_histogram": self.peertube_histogram,
            "video_categories": self.video_categories,
            "reprocess": self.reprocess,
            "removed_feature": self.removed_feature,
        }


# -- setting up the copy ----------------------------------------------------------------------
def _prepare_workdir(recon_db: Path, concepts: Path, workdir: Path) -> dict[str, Path]:
    if not recon_db.is_file():
        raise RehearsalError(f"--recon-db {recon_db} is not a file; give RECON's recon.db")
    if not concepts.is_dir():
        raise RehearsalError(f"--concepts {concepts} is not a folder of concept folders")
    paths = {
        "recon_db": workdir / "recon" / "recon.db",
        "concepts": workdir / "recon" / "concepts",
        "offsite": workdir / "offsite" / "concepts",
        "backups": workdir / "backups",
        "quarantine": workdir / "quarantine",
        "dagster_home": workdir / "dagster_home",
        "postgres": workdir / "postgres",
    }
    if paths["recon_db"].exists():
        raise RehearsalError(
            f"{workdir} already holds a rehearsal; give a new --workdir (or delete that one)"
        )
    for key in ("backups", "quarantine", "dagster_home", "postgres"):
        paths[key].mkdir(parents=True, exist_ok=True)
    paths["recon_db"].parent.mkdir(parents=True, exist_ok=True)
    # Online, consistent copy; the operator's original is opened read-only.
    copy_database(recon_db, paths["recon_db"], read_only=True)
    shutil.copytree(concepts, paths["concepts"], symlinks=True)
    # The copy's off-site mirror: a fresh mirror of the copied folders, as rsync would leave.
    shutil.copytree(paths["concepts"], paths["offsite"], symlinks=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", paths["dagster_home"] / "dagster.yaml")
    return paths


@contextmanager
def sandbox_peertube(workdir: Path, recon_db: Path, source: str) -> Iterator[dict[str, str]]:
    """An embedded PostgreSQL and the sandbox PeerTube seeded with the copy's videos; also
    the folder of the embedded server's pg_dump and pg_restore (the machine's may be older)."""
    from recon_domains.sandbox.peertube_server import start_server
    from recon_domains.sandbox.peertube_store import seed_videos_from_recon
    from recon_domains.sandbox.postgres import create_database, embedded_postgres, pg_bin_dir

    password = secrets.token_urlsafe(18)
    with embedded_postgres(workdir) as admin_dsn:
        dsn = create_database(admin_dsn, "peertube")
        with start_server(dsn, port=0, admin_password=password) as server:
            seed_videos_from_recon(dsn, recon_db, source)
            yield {"url": server.url, "password": password, "dsn": dsn,
                   "pg_bin_dir": str(pg_bin_dir() or "")}


def copy_settings(
    environment: Settings, paths: dict[str, Path], source: str, sandbox: dict[str, str]
) -> Settings:
    """The copy's settings: the operator's knobs (benchmarks, stage sizes, skip list,
    concurrency, …) from `environment`, every path the copy's, and PeerTube the sandbox's
    alone (so no PeerTube setting of the real deployment is used on the copy)."""
    return dataclasses.replace(
        environment,
        db_path=paths["recon_db"],
        concepts_dir=paths["concepts"],
        stream_source=source,
        backup_dir=paths["backups"],
        offsite_concepts_dir=paths["offsite"],
        quarantine_dir=paths["quarantine"],
        is_copy=True,
        pg_bin_dir=Path(sandbox["pg_bin_dir"]) if sandbox["pg_bin_dir"] else None,
        peertube=PeerTubeSettings(
            url=sandbox["url"],
            password=SecretStr(sandbox["password"]),
            db_dsn=SecretStr(sandbox["dsn"]),
            plugin_path=str(PLUGIN_DIR),
            push_max_in_flight=environment.peertube.push_max_in_flight,
        ),
    )


# -- running the runbook ----------------------------------------------------------------------
class StepLines:
    """The rehearsal's own output as it goes, each line flushed: every step as it starts and
    as it ends, with its time and its gates' verdicts (a failed one with its reason)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def _print(self, text: str) -> None:
        print(text, file=self._stream if self._stream is not None else sys.stdout, flush=True)

    def note(self, text: str) -> None:
        self._print(text)

    def started(self, index: int, count: int, step: Run) -> None:
        where = f" {step.partition}" if step.partition else ""
        self._print(f"[{index}/{count}] {step.label} ({step.job}{where}) ...")

    def ended(self, index: int, count: int, step: Run, outcome: RunOutcome) -> None:
        failed = [g for g in outcome.gates if not g.passed]
        verdict = "ok" if outcome.success and not failed else "STOPPED"
        self._print(f"[{index}/{count}] {step.label}: {verdict} in {outcome.seconds:.1f}s")
        for gate in outcome.gates:
            if gate.passed:
                self._print(f"    PASS  {gate.gate}")
            else:
                self._print(f"    FAIL  {gate.gate}: {gate.description}")
        if not outcome.success and not failed and outcome.failure:
            self._print(f"    {outcome.failure}")


def run_runbook(
    report: RehearsalReport,
    runner: JobRunner,
    steps: Sequence[Run] | None = None,
    lines: StepLines | None = None,
) -> None:
    """Run each step's job (asset plus its blocking gate checks) in runbook order (or just
    `steps`); stop at the first failure. `lines`: say each step as it starts and ends."""
    todo = runs() if steps is None else tuple(steps)
    for index, step in enumerate(todo, 1):
        if lines is not None:
            lines.started(index, len(todo), step)
        outcome = runner.run(step.job, step.partition)
        if lines is not None:
            lines.ended(index, len(todo), step, outcome)
        report.step_seconds[step.label] = round(outcome.seconds, 2)
        report.gates.extend(
            GateOutcome(step.label, g.gate, g.passed, g.description) for g in outcome.gates
        )
        failed = [g for g in outcome.gates if not g.passed]
        if failed:
            report.failed_step = step.label
            report.failure = f"gate {failed[0].gate} failed: {failed[0].description}"
            return
        if not outcome.success:
            report.failed_step = step.label
            report.failure = outcome.failure
            return


def video_categories(dsn: str) -> dict[str, int | None]:
    """{video uuid: category id or None} for every video in PeerTube's database."""
    import psycopg2

    with psycopg2.connect(dsn, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("SELECT uuid::text, category FROM video ORDER BY uuid")
        rows = cur.fetchall()
    conn.close()
    return dict(rows)


def _collect_recon_state(report: RehearsalReport, recon_db: Path, source: str) -> None:
    with ReconStore.open(recon_db, source) as store:
        report.reprocess["queued_documents"] = store.pipeline_status_counts().get("queued", 0)
        if not store.is_migrated():
            return
        report.status_counts = store.status_counts()
        report.pushed_count = sum(store.pushed_distribution().values())
        quarantined, restored = store.audit_counts()
        report.reprocess.update(quarantined=quarantined, restored=restored)


def _collect_peertube_state(report: RehearsalReport, dsn: str) -> None:
    from recon_domains.peertube.database import PeerTubeDatabase

    histogram = PeerTubeDatabase(dsn).category_histogram()
    report.peertube_histogram = {str(k): v for k, v in histogram.items()}
    report.video_categories = video_categories(dsn)


def rehearse(
    recon_db: Path,
    concepts: Path,
    workdir: Path,
    *,
    source: str | None = None,
    then_remove_feature: bool = False,
    lines: StepLines | None = None,
    live: Listener | None = None,
    progress_lines: Listener | None = None,
) -> RehearsalReport:
    """The whole migration on a copy; see the module docstring. `lines`: say each step as it
    starts and ends; the long loops' progress goes to `live` at every step (a terminal's
    bars) and to `progress_lines` at the cadence of the log lines."""
    workdir = workdir.resolve()
    environment = Settings.from_env()
    source = source or environment.stream_source
    paths = _prepare_workdir(recon_db.resolve(), concepts.resolve(), workdir)
    report = RehearsalReport(str(workdir), str(paths["dagster_home"]))
    with ReconStore.open(paths["recon_db"], source) as store:
        stale = store.mid_pipeline_documents()
    report.notes.append(
        "This is a copy: it has no RECON workers, so recon_idle ignores the "
        f"{len(stale)} document(s) whose status says mid-pipeline."
    )
    if lines is not None:
        lines.note(f"copied recon.db and the concept folders into {workdir}")
    with sandbox_peertube(paths["postgres"], paths["recon_db"], source) as pt:
        if lines is not None:
            lines.note(f"sandbox PeerTube at {pt['url']}; running the runbook's steps")
        settings = copy_settings(environment, paths, source, pt)
        resources: dict[str, Any] = dict(hardcoded_resources(settings))
        if live is not None or progress_lines is not None:
            resources["progress"] = dg_progress_resource(
                live=[live] if live else [], lines=[progress_lines] if progress_lines else []
            )
        definitions = build_definitions(resources)
        # The copy's own instance, whatever DAGSTER_HOME says.
        with JobRunner(definitions, paths["dagster_home"]) as runner:
            run_runbook(report, runner, lines=lines)
            # Counts as the migration left them (removing the feature drops the columns).
            _collect_recon_state(report, paths["recon_db"], source)
            if then_remove_feature and report.ok:
                _remove_feature(report, runner, lines)
        _collect_peertube_state(report, pt["dsn"])
    return report


def _remove_feature(
    report: RehearsalReport, runner: JobRunner, lines: StepLines | None = None
) -> None:
    """A confirmed remove_feature: the way out, rehearsed."""
    label = "Fully remove feature"
    step = Run(label, "remove_feature")
    if lines is not None:
        lines.started(1, 1, step)
    outcome = runner.run("remove_feature", confirm=True)
    if lines is not None:
        lines.ended(1, 1, step, outcome)
    report.step_seconds[label] = round(outcome.seconds, 2)
    if not outcome.success:
        report.failed_step = label
        report.failure = outcome.failure
    report.removed_feature = report.ok
    report.notes.append(
        "Status and push counts are from before remove_feature; video categories and the "
        "histogram are after it."
    )


# -- command line -----------------------------------------------------------------------------
def _summary(report: RehearsalReport) -> str:
    """The end of the output (each gate's verdict was said as its step ended)."""
    lines = ["", "summary:"]
    passed = sum(g.passed for g in report.gates)
    lines.append(f"gates: {passed} passed, {len(report.gates) - passed} failed; "
                 f"{len(report.step_seconds)} step(s) in {sum(report.step_seconds.values()):.0f}s")
    lines.append(f"status counts: {report.status_counts}")
    lines.append(f"pushed to PeerTube: {report.pushed_count}")
    lines.append(f"PeerTube categories >= {FIRST_CATEGORY_ID}: {report.peertube_histogram}")
    lines.append(f"reprocess: {report.reprocess}")
    lines.extend(f"note: {note}" for note in report.notes)
    if report.ok:
        lines.append(f"every gate passed ({len(report.gates)} gates).")
    tied = report.status_counts.get("tied_manual", 0)
    if tied and not report.removed_feature:
        recon = Path(report.workdir) / "recon"
        lines.append(
            f"{tied} tied video(s) await a human (runbook Step 8); open the review page:\n"
            f"  cd {REPO_ROOT} && RECON_CONCEPTS_DIR={recon / 'concepts'} "
            f".venv/bin/recon-domains review --db {recon / 'recon.db'}"
        )
    lines.append(
        "Open the Dagster UI on this result:\n"
        f"  cd {REPO_ROOT} && DAGSTER_HOME={report.dagster_home} "
        ".venv/bin/dagster dev -w workspace.yaml"
    )
    return "\n".join(lines)


def _finish(report: RehearsalReport, report_path: str | None) -> int:
    """The summary on stdout; a stop said once, on stderr (the exit code says it too)."""
    if report_path:
        Path(report_path).write_text(json.dumps(report.as_json(), indent=1, sort_keys=True))
        report.notes.append(f"the JSON report: {report_path}")
    print(_summary(report), flush=True)
    if not report.ok:
        print(f"STOPPED at {report.failed_step}: {report.failure}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    return EXIT_OK


def _rehearse_shown(recon_db: Path, concepts: Path, workdir: Path, **kwargs: Any
                    ) -> RehearsalReport:
    """rehearse(), saying each step on stdout as it goes: live bars for the long loops on
    a terminal, their progress lines at a cadence otherwise."""
    with terminal_or_lines() as (live, progress_lines):
        return rehearse(recon_db, concepts, workdir, lines=StepLines(), live=live,
                        progress_lines=progress_lines, **kwargs)


def rehearse_main(args: argparse.Namespace) -> int:
    try:
        report = _rehearse_shown(Path(args.recon_db), Path(args.concepts), Path(args.workdir),
                                 then_remove_feature=args.then_remove_feature)
    except (RehearsalError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _finish(report, args.report or str(Path(args.workdir) / "report.json"))


def demo_main(args: argparse.Namespace) -> int:
    """`make demo`: generate a corpus, rehearse on it, print a short summary."""
    from recon_domains.sandbox.corpus import generate_corpus

    workdir = Path(args.workdir).resolve()
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / DEMO_MARKER).exists():
            print(f"error: {workdir} exists and is not a demo folder; choose --workdir",
                  file=sys.stderr)
            return EXIT_CONFIG
        shutil.rmtree(workdir)  # a previous demo's output, ours to replace
    workdir.mkdir(parents=True)
    (workdir / DEMO_MARKER).write_text("made by `recon-domains demo`; safe to delete\n")
    started = time.monotonic()
    print(f"generating a sandbox corpus of {args.docs} documents ...", flush=True)
    summary = generate_corpus(workdir / "corpus", args.docs, seed=args.seed)
    print(f"generated a sandbox corpus of {args.docs} documents in "
          f"{time.monotonic() - started:.1f}s ({workdir / 'corpus'})", flush=True)
    try:
        report = _rehearse_shown(summary.recon_db, summary.concepts_dir, workdir / "rehearsal")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _finish(report, str(workdir / "report.json"))
