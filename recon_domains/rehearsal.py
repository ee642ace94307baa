"""`recon-domains rehearse` and `recon-domains demo`: the whole runbook, through Dagster, on a copy.

The rehearsal copies RECON's database (SQLite backup API) and concept folders into a work
folder — the originals are never opened for writing — starts an embedded PostgreSQL and the
sandbox PeerTube seeded with the copy's videos, and then runs the runbook's jobs in order
against a Dagster instance in the work folder. It stops at the first gate that fails, and
writes a JSON report an operator can read before doing the real thing.

With `peertube_url` (`--peertube-url`) no sandbox is started: the runbook runs against that
PeerTube (a staging instance), only when the operator confirmed it may write there, after a
read-only preflight; see recon_domains.staging.

It sits beside the CLI: it runs the jobs through the Dagster layer's runner
(recon_domains.defs.runner) in the order of the runbook table (recon_domains.runbook),
without importing dagster itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import shlex
import shutil
import sys
import time
from collections import Counter
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
from recon_domains.peertube.client import PeerTubeError
from recon_domains.progress import Listener, terminal_or_lines
from recon_domains.recon.backup import copy_database
from recon_domains.recon.store import ReconStore
from recon_domains.runbook import Run, runs
from recon_domains.settings import ConfigError, PeerTubeSettings, Settings, settings_env
from recon_domains.staging import (
    RehearsalRefused,
    StagingTarget,
    compare,
    copy_video_ids,
    every_video_category,
    preflight,
    shown,
)
from recon_domains.taxonomy import FIRST_CATEGORY_ID, PLUGIN_NPM_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO_ROOT / "peertube-plugin" / "peertube-plugin-recon-domains"
DEMO_MARKER = ".recon-domains-demo"
DEMO_REHEARSAL = "rehearsal"  # the demo's rehearsal folder, inside its work folder


def sandbox_pgdata(workdir: Path) -> Path:
    """Where a rehearsal in `workdir` keeps its sandbox's PostgreSQL data (when kept)."""
    return workdir / "postgres" / "pgdata"


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
    peertube: dict[str, Any] = field(default_factory=dict)  # with --peertube-url
    env_file: str | None = None  # the copy's settings as a .env (the demo's), when written

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
            "peertube": self.peertube,
            "env_file": self.env_file,
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
def sandbox_peertube(
    workdir: Path, recon_db: Path, source: str, *, keep: bool = False
) -> Iterator[dict[str, str]]:
    """An embedded PostgreSQL and the sandbox PeerTube seeded with the copy's videos; also
    the folder of the embedded server's pg_dump and pg_restore (the machine's may be older).
    `keep`: the PostgreSQL's data stays in `workdir/pgdata` (`demo --serve` restarts it)."""
    from recon_domains.sandbox.peertube_server import start_server
    from recon_domains.sandbox.peertube_store import seed_videos_from_recon
    from recon_domains.sandbox.postgres import (
        create_database,
        embedded_postgres,
        persistent_postgres,
        pg_bin_dir,
    )

    password = secrets.token_urlsafe(18)
    postgres = persistent_postgres(workdir / "pgdata") if keep else embedded_postgres(workdir)
    with postgres as admin_dsn:
        dsn = create_database(admin_dsn, "peertube")
        with start_server(dsn, port=0, admin_password=password) as server:
            seed_videos_from_recon(dsn, recon_db, source)
            yield {"url": server.url, "password": password, "dsn": dsn,
                   "pg_bin_dir": str(pg_bin_dir() or "")}


def copy_settings(
    environment: Settings, paths: dict[str, Path], source: str, sandbox: dict[str, str] | None
) -> Settings:
    """The copy's settings: the operator's knobs (benchmarks, stage sizes, skip list,
    concurrency, …) from `environment`, every path the copy's, and PeerTube the sandbox's
    alone (so no PeerTube setting of the real deployment is used on the copy); without a
    sandbox, no PeerTube setting at all (the caller puts its staging target's in)."""
    copy = dataclasses.replace(
        environment,
        db_path=paths["recon_db"],
        concepts_dir=paths["concepts"],
        stream_source=source,
        backup_dir=paths["backups"],
        offsite_concepts_dir=paths["offsite"],
        quarantine_dir=paths["quarantine"],
        is_copy=True,
        peertube=PeerTubeSettings(),
    )
    if sandbox is None:
        return copy
    return dataclasses.replace(
        copy,
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
    peertube_url: str | None = None,
    writes_confirmed: bool = False,
    env_file: Path | None = None,
    lines: StepLines | None = None,
    live: Listener | None = None,
    progress_lines: Listener | None = None,
) -> RehearsalReport:
    """The whole migration on a copy; see the module docstring. With `peertube_url`, against
    that PeerTube: ConfigError for a missing setting, RehearsalRefused unless
    `writes_confirmed` (both before anything is copied or contacted). With `env_file`, the
    copy's settings (and its instance as DAGSTER_HOME) are written there as a `.env` and the
    sandbox's PostgreSQL data is kept, so the UI can act on the result later
    (recon_domains.demo_ui). `lines`: say each step as it starts and ends; the long loops'
    progress goes to `live` at every step (a terminal's bars) and to `progress_lines` at the
    cadence of the log lines."""
    workdir = workdir.resolve()
    environment = Settings.from_env()
    source = source or environment.stream_source
    target = None
    if peertube_url is not None:
        target = StagingTarget.from_settings(environment, peertube_url)
        if not writes_confirmed:
            raise RehearsalRefused(target.refusal())
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
    shown_progress = _progress_resources(live, progress_lines)
    if target is not None:
        _rehearse_on(target, environment, paths, source, report, then_remove_feature,
                     lines, shown_progress)
        return report
    with sandbox_peertube(
        paths["postgres"], paths["recon_db"], source, keep=env_file is not None
    ) as pt:
        if lines is not None:
            lines.note(f"sandbox PeerTube at {pt['url']}; running the runbook's steps")
        settings = copy_settings(environment, paths, source, pt)
        if env_file is not None:
            from recon_domains.demo_ui import DEMO_ENV_HEADER, write_env_file

            write_env_file(
                env_file,
                {**settings_env(settings), "DAGSTER_HOME": str(paths["dagster_home"])},
                DEMO_ENV_HEADER,
            )
            report.env_file = str(env_file)
        definitions = build_definitions({**hardcoded_resources(settings), **shown_progress})
        # The copy's own instance, whatever DAGSTER_HOME says.
        with JobRunner(definitions, paths["dagster_home"]) as runner:
            run_runbook(report, runner, lines=lines)
            # Counts as the migration left them (removing the feature drops the columns).
            _collect_recon_state(report, paths["recon_db"], source)
            if then_remove_feature and report.ok:
                _remove_feature(report, runner, lines)
        _collect_peertube_state(report, pt["dsn"])
    return report


def _progress_resources(live: Listener | None, progress_lines: Listener | None
                        ) -> dict[str, Any]:
    """The `progress` resource when the caller shows progress (else the default's)."""
    if live is None and progress_lines is None:
        return {}
    return {"progress": dg_progress_resource(
        live=[live] if live else [], lines=[progress_lines] if progress_lines else []
    )}


def _rehearse_on(
    target: StagingTarget,
    environment: Settings,
    paths: dict[str, Path],
    source: str,
    report: RehearsalReport,
    then_remove_feature: bool,
    lines: StepLines | None = None,
    shown_progress: dict[str, Any] | None = None,
) -> None:
    """The runbook against the PeerTube at `target.url`, between two reads of every video's
    category through its API; the end must equal the start when the feature was removed."""
    workdir = Path(report.workdir)
    copy = copy_settings(environment, paths, source, None)
    with ReconStore.open(paths["recon_db"], source,
                         accepted_hosts=environment.accepted_hosts) as store:
        copy_ids = copy_video_ids(store)
    with target.client(workdir) as client:
        found = preflight(client, target, copy_ids)
    _write_snapshot(workdir / "peertube-before.json", found.before)
    report.notes.append(found.note(target.url))
    report.peertube = {"url": target.url, "videos_before": len(found.before),
                       "copy_videos": found.copy_videos, "copy_videos_present": found.present,
                       "copy_videos_missing": found.missing}
    settings = target.run_settings(copy, workdir)
    if lines is not None:
        lines.note(f"{found.present} of the copy's videos found at {target.url}; running the "
                   "runbook's steps")
    definitions = build_definitions({**hardcoded_resources(settings), **(shown_progress or {})})
    with JobRunner(definitions, paths["dagster_home"]) as runner:
        run_runbook(report, runner, lines=lines)
        _collect_recon_state(report, paths["recon_db"], source)
        with target.client(workdir) as client:
            mid = every_video_category(client)
        if then_remove_feature and report.ok:
            _remove_feature(report, runner, lines)
    with target.client(workdir) as client:
        end = every_video_category(client)
        plugin_left = client.find_plugin(PLUGIN_NPM_NAME) is not None
    _write_snapshot(workdir / "peertube-after.json", end)
    comparison = compare(found.before, mid, end)
    report.peertube.update(comparison.as_json(), plugin_installed_at_end=plugin_left)
    report.video_categories = end
    report.peertube_histogram = {
        str(c): n for c, n in sorted(Counter(
            c for c in end.values() if c is not None and c >= FIRST_CATEGORY_ID
        ).items())
    }
    if report.removed_feature:
        problem = comparison.problem(target.url)
        if problem is None and plugin_left:
            problem = f"{PLUGIN_NPM_NAME} is still installed on {target.url}"
        if problem is not None:
            report.failed_step, report.failure = "Fully remove feature", problem
    elif comparison.changed or plugin_left:
        report.notes.append(
            f"The PeerTube at {target.url} keeps what this rehearsal did: "
            f"{len(comparison.changed)} video(s) with the categories it pushed"
            + (f", {PLUGIN_NPM_NAME} installed" if plugin_left else "")
            + "; the categories from before are in peertube-before.json. To take them "
            "off, launch remove_feature (confirm: true) in this copy's Dagster UI:\n  "
            + _copy_ui_command(settings, report.dagster_home)
        )


def _copy_ui_command(settings: Settings, dagster_home: str) -> str:
    """`dg dev` on the copy's instance with the copy's settings, for remove_feature
    later. Run from the work folder: `dg dev` lets a `.env` of its folder override the
    environment, and the repository's may name production. PeerTube's password is the
    operator's PEERTUBE_PASSWORD, still to be exported; categories are read through the API
    (PEERTUBE_DB_DSN blank: a DSN is a secret, never printed)."""
    pt = settings.peertube
    names = {
        "DAGSTER_HOME": dagster_home,
        "RECON_DB_PATH": settings.db_path,
        "RECON_CONCEPTS_DIR": settings.concepts_dir,
        "RECON_STREAM_SOURCE": settings.stream_source,
        "RECON_ACCEPTED_HOSTS": ",".join(settings.accepted_hosts),
        "RECON_BACKUP_DIR": settings.backup_dir,
        "RECON_OFFSITE_CONCEPTS_DIR": settings.offsite_concepts_dir,
        "RECON_QUARANTINE_DIR": settings.quarantine_dir,
        "RECON_IS_COPY": "1",
        "PEERTUBE_URL": pt.url,
        "PEERTUBE_HOST_HEADER": pt.host_header or "",
        "PEERTUBE_USERNAME": pt.username,
        "PEERTUBE_TOKEN_CACHE": pt.token_cache,
        "PEERTUBE_DB_DSN": "",
        "PEERTUBE_DB_DUMP_COMMAND": "",
    }
    env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in names.items() if v is not None)
    return (f"cd {shlex.quote(str(Path(dagster_home).parent))} && {env} "
            f"{Path(sys.executable).with_name('dg')} dev -w {REPO_ROOT}/workspace.yaml")


def _write_snapshot(path: Path, snapshot: dict[str, int | None]) -> None:
    path.write_text(json.dumps(snapshot, indent=0, sort_keys=True))


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
    pt = report.peertube
    if pt.get("url"):
        lines.append(f"PeerTube at {pt['url']}: {len(pt.get('changed_by_runbook', {}))} "
                     "video(s) changed by the runbook")
        if report.removed_feature:
            restored = pt.get("restored", [])
            lines.append(f"restored {len(restored)} video(s) to their categories from before: "
                         f"{shown(restored) or 'none'}")
            if pt.get("exact"):
                lines.append(f"every one of its {pt['videos_before']} videos ends with the "
                             "category it had before (read through its API before and after)")
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
    from recon_domains.demo_ui import ui_summary

    lines.append(ui_summary(report))
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
                                 then_remove_feature=args.then_remove_feature,
                                 peertube_url=args.peertube_url,
                                 writes_confirmed=args.i_understand_this_writes)
    except RehearsalRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (RehearsalError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PeerTubeError as exc:  # the staging PeerTube: unreachable, refused the login, …
        print(f"error: PeerTube at {args.peertube_url}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _finish(report, args.report or str(Path(args.workdir) / "report.json"))


def demo_main(args: argparse.Namespace) -> int:
    """`make demo`: generate a corpus, rehearse on it, print a short summary."""
    from recon_domains.sandbox.corpus import generate_corpus

    if getattr(args, "serve", False) or getattr(args, "ui", False):
        from recon_domains.demo_ui import serve_main

        return serve_main(Path(args.workdir), ui=args.ui)
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
        report = _rehearse_shown(summary.recon_db, summary.concepts_dir,
                                 workdir / DEMO_REHEARSAL, env_file=workdir / ".env")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _finish(report, str(workdir / "report.json"))
