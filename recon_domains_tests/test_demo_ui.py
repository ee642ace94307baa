"""The UI from where the demo leaves you: the demo's `.env`, `demo --serve`, and a job run
from the demo folder with nothing in the environment but what a login shell has."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from recon_domains.cli import load_env_file, main
from recon_domains.demo_ui import read_env_file, serve_sandbox, write_env_file
from recon_domains.rehearsal import REPO_ROOT
from recon_domains.settings import DEFAULTS, Benchmarks, PeerTubeSettings, Settings, settings_env

pytestmark = pytest.mark.slow


def test_settings_env_gives_the_same_settings_back(tmp_path: Path) -> None:
    from pydantic import SecretStr

    full = Settings(
        db_path=tmp_path / "recon.db", concepts_dir=tmp_path / "c", stream_source="s.example",
        accepted_hosts=("a.example", "b.example"), backup_dir=tmp_path / "b",
        skip_channels=frozenset({"One", "Two"}),
        benchmarks=Benchmarks(90.1, 9.9, 20.25, 2.5), offsite_max_lag_hours=1.5,
        stage_sizes=(7, 70), lock_timeout_s=2.0, max_window_file_mb=3, is_copy=True,
        peertube=PeerTubeSettings(url="http://127.0.0.1:1", password=SecretStr("pw x"),
                                  db_dsn=SecretStr("postgresql://u:p@h/db"),
                                  push_max_in_flight=3, push_max_rate=2.5),
    )
    for settings in (DEFAULTS, full):
        env = settings_env(settings)
        assert Settings.from_env(env) == settings
        # and through a .env file, read as Dagster and recon-domains read it
        path = tmp_path / ".env"
        write_env_file(path, env, "a header\nof two lines")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_env_file(path) == env


def test_demo_leaves_a_dot_env_the_ui_and_dg_launch_act_with(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "demo"
    assert main(["demo", "--docs", "300", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    env_path = workdir / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    env = read_env_file(env_path)
    password = env["PEERTUBE_PASSWORD"]
    assert password not in out  # the summary names the file, never the secret
    assert f"cd {workdir} && " in out and f"dg dev -w {REPO_ROOT / 'workspace.yaml'}" in out
    assert f"recon-domains demo --ui --workdir {workdir}" in out
    assert env["DAGSTER_HOME"] == str(workdir / "rehearsal" / "dagster_home")
    settings = Settings.from_env(env)
    assert settings.db_path == workdir / "rehearsal" / "recon" / "recon.db"
    assert settings.is_copy and settings.peertube.db_dsn is not None

    # The sandbox stopped with the demo; --serve's sandbox starts again on the kept data,
    # and a job launched from the demo folder (a login shell's environment only) acts on
    # the demo's recon.db, PeerTube and instance through .env alone.
    with serve_sandbox(workdir) as served:
        assert served["PEERTUBE_PASSWORD"] == password
        for job in ("verify_job", "rollback_assignments"):
            result = subprocess.run(
                [str(REPO_ROOT / ".venv" / "bin" / "dg"), "launch", "--job", job,
                 "-m", "recon_domains.definitions"],
                cwd=workdir, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                capture_output=True, text=True, timeout=600,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            assert "RUN_SUCCESS" in result.stderr, result.stderr[-3000:]
            assert "SupersessionWarning" not in result.stderr
            assert password not in result.stderr + result.stdout
        assert "To do it, run " in result.stderr  # rollback_assignments was a dry run
        # recon-domains reads the same file the same way (the CLI's loader)
        for name in env:
            monkeypatch.delenv(name, raising=False)
        loaded = load_env_file(env_path)
        assert loaded is not None and set(loaded.loaded) == set(read_env_file(env_path))
    # Stopped again, its data kept: a second --serve finds the same videos.
    with serve_sandbox(workdir) as served_again:
        assert served_again["PEERTUBE_DB_DSN"]


def test_serve_without_a_demo_says_to_run_one(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--serve", "--workdir", str(tmp_path)]) == 3
    assert "no demo in" in capsys.readouterr().err
