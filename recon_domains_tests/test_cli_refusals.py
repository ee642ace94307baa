"""The operator's message first, and once: a gate refusal and a missing setting from the
Dagster CLI (`dg launch --job`, as the README and cron run the project's jobs) are the
project's text, near the top, with no framework stack trace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from recon_domains.rehearsal import REPO_ROOT

VENV = REPO_ROOT / ".venv"


def _dg_launch(job: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`dg launch --job JOB`, started (the caller waits: two launches may overlap)."""
    return subprocess.Popen(
        [str(VENV / "bin" / "dg"), "launch", "--job", job],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _operator_env(tmp_path: Path, corpus) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("RECON_", "PEERTUBE_", "DAGSTER_"))}
    return {
        **keep,
        "VIRTUAL_ENV": str(VENV),  # the project's venv is the active one: no dg warning
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "RECON_DB_PATH": str(corpus.recon_db),
        "RECON_CONCEPTS_DIR": str(corpus.concepts_dir),
        "PEERTUBE_URL": "http://127.0.0.1:9",  # never reached: the steps refuse first
        "PEERTUBE_PASSWORD": "unused",
    }


def test_a_gate_refusal_and_an_unset_password_are_the_project_text_without_stack_traces(
    tmp_path: Path, corpus_factory
) -> None:
    corpus = corpus_factory(docs=100)
    refused = _dg_launch("pass1_job", _operator_env(tmp_path / "a", corpus))
    env = _operator_env(tmp_path / "b", corpus)
    del env["PEERTUBE_PASSWORD"]
    unset = _dg_launch("plugin_job", env)

    # A gate refusal: the project's text first, once.
    code, out = _finished(refused)
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines)
                 if "Refusing pass1_assignments (Step 4: pass 1): 2 upstream gate(s) not "
                 "passed." in line)
    assert first <= 2, out  # at most Dagster's own "step worker started" line before it
    assert "- gate recon_schema:schema_verified: recon_schema has never been materialized." \
        in lines[first + 1]
    assert "What to do: run schema_job" in lines[first + 2]
    assert out.count("Refusing pass1_assignments") == 1, out  # not repeated by the run
    assert "schema_verified: CLOSED" not in out  # the closed gates are said in the refusal
    for noise in ("Traceback", "Stack Trace", "dagster._core", "site-packages"):
        assert noise not in out, out

    # PEERTUBE_PASSWORD unset: one line naming it, not Dagster's config traceback.
    code, out = _finished(unset)
    assert code == 1, out
    named = [line for line in out.splitlines() if "PEERTUBE_PASSWORD" in line]
    assert len(named) == 1, out
    assert named[0].endswith("peertube_plugin (Steps 1–2: plugin) failed: PEERTUBE_PASSWORD is "
                             "not set. Set it in the environment or in .env."), out
    assert len([line for line in out.splitlines() if line.strip()]) <= 8, out
    for noise in ("Traceback", "Stack Trace", "DagsterInvalidConfigError", "site-packages"):
        assert noise not in out, out
