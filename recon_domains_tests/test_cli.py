"""The command line itself: --version, help for every command and option, the exit codes,
`.env` in the current directory, and the operator messages of a busy port and a folder
given as recon.db."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from recon_domains.cli import _build_parser, main
from recon_domains.recon.store import ReconStore

REPO = Path(__file__).resolve().parents[1]
COMMAND = str(Path(sys.executable).with_name("recon-domains"))


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """The installed command, with only PATH (and `env`) in its environment."""
    return subprocess.run([COMMAND, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_version_is_the_package_version(tmp_path: Path) -> None:
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == f"recon-domains {expected}\n"


def _parsers(parser: argparse.ArgumentParser, path: str = "recon-domains"):
    """(command path, parser, its subcommand action or None) for every parser in the tree."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, subs[0] if subs else None
    for action in subs:
        for name, child in action.choices.items():
            yield from _parsers(child, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    commands = list(_parsers(_build_parser()))
    names = {path for path, _, _ in commands}
    for expected in ("check", "status", "demo", "rehearse", "review", "sandbox",
                     "sandbox corpus", "sandbox peertube", "sandbox conformance"):
        assert f"recon-domains {expected}" in names
    for path, parser, subcommands in commands:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)
        if subcommands is not None:
            helped = {choice.dest for choice in subcommands._choices_actions if choice.help}
            assert helped == set(subcommands.choices), path


def test_help_documents_exit_codes_and_dot_env(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for line in ("0  done as asked", "1  a gate failed or refused", "2  usage",
                 "3  configuration", "a .env file in the current", "environment wins"):
        assert line in proc.stdout, line


@pytest.mark.parametrize("argv", [(), ("status", "--no-such-option"), ("sandbox",),
                                  ("review", "--port", "eighty")])
def test_usage_errors_exit_2(tmp_path: Path, argv) -> None:
    proc = run(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: recon-domains" in proc.stderr


def test_configuration_errors_exit_3(tmp_path: Path) -> None:
    proc = run("status", cwd=tmp_path)
    assert proc.returncode == 3
    assert "RECON_DB_PATH is not set" in proc.stderr and "Traceback" not in proc.stderr
    # A setting read outside a command's own error handling exits 3 too, in one line.
    proc = run("sandbox", "peertube", cwd=tmp_path, env={"RECON_IS_COPY": "maybe"})
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "recon-domains sandbox peertube: RECON_IS_COPY is 'maybe', which is not valid: expected 1 "
        "(yes) or 0 (no). Set RECON_IS_COPY to such a value, or unset it for the default (0)."
    ]


def test_status_reads_dot_env_and_the_environment_wins(tmp_path: Path, small_corpus) -> None:
    db = small_corpus.recon_db
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"# the operator's settings\nRECON_DB_PATH='{db}'\n")
    proc = run("status", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert f"RECON database: {db}" in proc.stdout

    (work / ".env").write_text(f"RECON_DB_PATH={tmp_path / 'from-dot-env.db'}\n")
    proc = run("status", cwd=work, env={"RECON_DB_PATH": str(db)})
    assert proc.returncode == 0, proc.stderr
    assert f"RECON database: {db}" in proc.stdout

    proc = run("status", cwd=work)  # .env alone again: its (missing) file is the one named
    assert proc.returncode == 3
    assert f"RECON database not found at {tmp_path / 'from-dot-env.db'}" in proc.stderr


def test_a_busy_review_port_says_which_and_what_to_do(small_corpus, monkeypatch,
                                                      capsys) -> None:
    with ReconStore.open(small_corpus.recon_db, small_corpus.source) as store:
        store.migrate()
    monkeypatch.setenv("RECON_CONCEPTS_DIR", str(small_corpus.concepts_dir))
    monkeypatch.delenv("PEERTUBE_URL", raising=False)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["review", "--db", str(small_corpus.recon_db), "--port", str(port)])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"recon-domains review: port {port} on 127.0.0.1 is already in use: another process "
        "(maybe another `recon-domains review`) holds it. Stop that one, or choose a free port "
        "with --port."
    ]


def test_a_folder_given_as_recon_db_is_named_as_such(tmp_path: Path, capsys) -> None:
    assert main(["status", "--db", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert f"{tmp_path} is a folder, not RECON's database" in err
    assert "the recon.db file itself" in err and "not found" not in err


def test_sandbox_peertube_takes_the_capacity_knobs(tmp_path: Path, pg_database_factory) -> None:
    """`sandbox peertube --capacity --service-time --serialization-conflict-rate` serve a
    PeerTube with that capacity (what the bench and a hand-run push test need)."""
    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [COMMAND, "sandbox", "peertube", "--db-dsn", pg_database_factory(), "--port",
         str(port), "--capacity", "1", "--service-time", "0.2",
         "--serialization-conflict-rate", "0.0025"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},  # its lines as printed
    )
    try:
        lines = []
        assert proc.stdout is not None
        while not any(line.startswith("test knobs:") for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        knobs = next(line for line in lines if line.startswith("test knobs:"))
        for shown in ("'capacity': 1", "'service_time_s': 0.2",
                      "'serialization_conflict_rate': 0.0025"):
            assert shown in knobs
        answer = requests.get(f"http://127.0.0.1:{port}/api/v1/videos/categories", timeout=30)
        assert answer.status_code == 200
        assert answer.elapsed.total_seconds() >= 0.2  # worked on for the service time
    finally:
        proc.terminate()
        proc.wait(timeout=30)
