"""The README's crontab lines, executed as cron would: a shell, a minimal environment.

The migration runs first (through Dagster, against the sandbox PeerTube and a real
PostgreSQL), so the steady-state job finds its gates; new documents then arrive, and the
documented cron commands must categorize and push them, run the drift check and the
scheduled re-assignment, none printing Dagster's SupersessionWarning. (The README's
`dg launch` block of the migration itself runs in test_runbook_cli.py.)
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from recon_domains.definitions import build_definitions
from recon_domains.defs.runner import JobRunner
from recon_domains.rehearsal import PLUGIN_DIR, REPO_ROOT, RehearsalReport, run_runbook
from recon_domains.runbook import runs
from recon_domains.sandbox.corpus import add_completed_documents
from recon_domains.sandbox.postgres import pg_bin_dir
from recon_domains_tests.fixtures.peertube import SANDBOX_ADMIN_PASSWORD

SOURCE = "stream.echo6.co"
INSTALL_PLACEHOLDER = "/opt/recon_domains"


def crontab_from_readme() -> tuple[dict[str, str], list[str]]:
    """(environment lines, commands) of the README's crontab block."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("<!-- crontab:begin -->", 1)[1].split("<!-- crontab:end -->", 1)[0]
    env: dict[str, str] = {}
    commands: list[str] = []
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "```")):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, value = line.split("=", 1)
            env[name] = value
        else:
            fields = line.split(None, 5)
            assert len(fields) == 6, f"not a crontab entry: {line}"
            commands.append(fields[5])
    return env, commands


def test_readme_crontab_lines_run_the_steady_state_drift_check_and_reassignment(
    tmp_path: Path, corpus_factory, peertube_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = corpus_factory(docs=300)
    peertube_server.seed_videos_from_recon(corpus.recon_db, SOURCE)

    # The operator's folder: this checkout's venv, a .env, the Dagster instance, logs.
    install = tmp_path / "recon_domains"
    install.mkdir()
    (install / ".venv").symlink_to(REPO_ROOT / ".venv")
    (install / "logs").mkdir()
    home = install / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    offsite = tmp_path / "offsite"
    shutil.copytree(corpus.concepts_dir, offsite)
    settings = {
        "RECON_DB_PATH": str(corpus.recon_db),
        "RECON_CONCEPTS_DIR": str(corpus.concepts_dir),
        "RECON_STREAM_SOURCE": SOURCE,
        "RECON_BACKUP_DIR": str(tmp_path / "backups"),
        "RECON_OFFSITE_CONCEPTS_DIR": str(offsite),
        "RECON_QUARANTINE_DIR": str(tmp_path / "quarantine"),
        "RECON_IS_COPY": "1",  # the generated corpus has stale mid-pipeline statuses
        "PEERTUBE_URL": peertube_server.url,
        "PEERTUBE_PASSWORD": SANDBOX_ADMIN_PASSWORD,
        "PEERTUBE_DB_DSN": peertube_server.dsn,
        "PEERTUBE_PLUGIN_PATH": str(PLUGIN_DIR),
        "RECON_PG_BIN_DIR": str(pg_bin_dir()),  # the test PostgreSQL may be the embedded one
    }
    env_file = install / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env_file.chmod(0o600)

    # The migration, through Dagster, against the same instance cron will use.
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    migration = [r for r in runs() if r.job != "reprocess_job"]
    report = RehearsalReport(str(tmp_path), str(home))
    with JobRunner(build_definitions(), home) as runner:
        run_runbook(report, runner, migration)
    assert report.ok, report.failure
    for name in settings:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME")

    new = add_completed_documents(corpus.recon_db, corpus.concepts_dir, 6, seed=99,
                                  source=SOURCE)
    peertube_server.seed_videos_from_recon(corpus.recon_db, SOURCE)

    cron_env, commands = crontab_from_readme()
    assert len(commands) == 3
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOGNAME": "root"}
    env.update({k: v.replace(INSTALL_PLACEHOLDER, str(install)) for k, v in cron_env.items()})
    assert env["DAGSTER_HOME"] == str(home)
    for command in commands:
        result = subprocess.run(
            [env.get("SHELL", "/bin/sh"), "-c", command], env=env, capture_output=True,
            text=True, timeout=300,
        )
        logs = "".join(p.read_text() for p in (install / "logs").iterdir())
        assert result.returncode == 0, logs[-3000:]
        assert SANDBOX_ADMIN_PASSWORD not in logs
        assert "SupersessionWarning" not in logs + result.stderr, command

    logs = {p.name: p.read_text() for p in (install / "logs").iterdir()}
    assert "RUN_SUCCESS" in logs["steady_state.log"]
    assert "RUN_SUCCESS" in logs["drift.log"]
    # The re-assignment after them: nothing changed in RECON's files, nothing to change.
    assert "RUN_SUCCESS" in logs["reassignment.log"]
    assert "0 change(s)" in logs["reassignment.log"]
    with sqlite3.connect(corpus.recon_db) as conn:
        rows = conn.execute(
            "SELECT recon_domain_status, peertube_category_pushed_at FROM documents "
            f"WHERE hash IN ({','.join('?' * len(new))})",
            new,
        ).fetchall()
    assert all(status is not None for status, _ in rows)  # every new document decided
    categorized = [p for s, p in rows if s in ("assigned", "tied_pass_2")]
    assert categorized and all(p is not None for p in categorized)  # and pushed


def test_readme_crontab_line_without_dagster_home_refuses_naming_it(tmp_path: Path) -> None:
    """The usual cron mistake: no DAGSTER_HOME. Dagster then runs on a throwaway instance
    where every gate looks never-run; the job must say so, not send the operator back to
    re-run a migration that passed."""
    install = tmp_path / "recon_domains"
    (install / "logs").mkdir(parents=True)
    (install / ".venv").symlink_to(REPO_ROOT / ".venv")
    # Every setting present (placeholders: the refusal comes before anything is opened).
    settings = {
        "RECON_DB_PATH": str(tmp_path / "recon.db"),
        "RECON_CONCEPTS_DIR": str(tmp_path / "concepts"),
        "PEERTUBE_URL": "http://127.0.0.1:9",
        "PEERTUBE_PASSWORD": "not-used-here",
        "PEERTUBE_DB_DSN": "postgresql://127.0.0.1:9/peertube",
    }
    (install / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    cron_env, commands = crontab_from_readme()
    steady = next(c for c in commands if "steady_state_assignment" in c)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOGNAME": "root"}
    env.update({k: v.replace(INSTALL_PLACEHOLDER, str(install)) for k, v in cron_env.items()})
    del env["DAGSTER_HOME"]
    result = subprocess.run(
        [env.get("SHELL", "/bin/sh"), "-c", steady], env=env, capture_output=True, text=True,
        timeout=300,
    )
    log = (install / "logs" / "steady_state.log").read_text()
    assert result.returncode != 0, log[-3000:]
    assert "Refusing steady_state_assignment" in log
    assert "DAGSTER_HOME is not set" in log
    assert "set DAGSTER_HOME to the instance the migration ran against" in log
    assert "CLOSED" not in log and "never materialized" not in log
    assert not [p for p in install.iterdir() if p.name.startswith(".tmp_dagster_home_")]
