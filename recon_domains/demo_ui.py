"""The Dagster UI on the demo's result: `recon-domains demo --ui` (and `make ui`).

The demo leaves, in its work folder, a `.env` with the settings of its copy (paths, the
sandbox PeerTube's URL, password and database, `DAGSTER_HOME` = the demo's instance) and the
sandbox's PostgreSQL data. One mechanism serves every command: `.env` in the current
directory, which `dg dev`, `dg launch` and `recon-domains` all read. So from the demo folder
the UI (`dg dev -w <checkout>/workspace.yaml`) can materialize every asset and run every job,
as long as the sandbox PeerTube answers; it stops with the demo, and `demo --serve` starts
it again on the same data (and the same port, when that is free), `demo --ui` starts it and
then the UI, and Ctrl-C stops both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from recon_domains.commands import EXIT_CONFIG, EXIT_OK

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ".env"
SANDBOX_DATABASE = "peertube"  # the rehearsal's database in the sandbox's PostgreSQL


class DemoUIError(RuntimeError):
    """No demo to open, or its sandbox cannot start; the message says what to do."""


def venv_program(name: str) -> Path:
    """`name` beside the running Python (this installation's .venv/bin)."""
    return Path(sys.executable).with_name(name)


def ui_command(workdir: Path) -> str:
    """The shell command that opens the Dagster UI on `workdir`'s `.env` and instance."""
    return f"cd {workdir} && {venv_program('dg')} dev -w {REPO_ROOT / 'workspace.yaml'}"


def write_env_file(path: Path, env: Mapping[str, str], header: str) -> None:
    """`env` as a `.env` (mode 0600: it holds the sandbox's password), each value in single
    quotes so python-dotenv (Dagster's and `recon-domains`' reader) takes it literally."""
    lines = [f"# {line}" for line in header.splitlines()]
    for name, value in env.items():
        if "'" in value or "\n" in value:
            raise DemoUIError(f"{name} holds a quote or a line break ({path} cannot say it); "
                              "choose a --workdir path without one")
        lines.append(f"{name}='{value}'")
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")


def read_env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def serve_sandbox(workdir: Path) -> Iterator[dict[str, str]]:
    """Start the demo's sandbox again (its PostgreSQL on the kept data, the PeerTube on the
    port `.env` names, else a free one) and yield `.env`'s settings, rewritten to match."""
    from recon_domains.rehearsal import DEMO_MARKER, DEMO_REHEARSAL, sandbox_pgdata
    from recon_domains.sandbox.peertube_server import start_server
    from recon_domains.sandbox.postgres import dsn_for_database, persistent_postgres

    env_path = workdir / ENV_FILE
    if not (workdir / DEMO_MARKER).exists() or not env_path.is_file():
        raise DemoUIError(f"no demo in {workdir}: run `recon-domains demo` (make demo) first")
    env = read_env_file(env_path)
    pgdata = sandbox_pgdata(workdir / DEMO_REHEARSAL)
    if not (pgdata / "PG_VERSION").is_file():
        raise DemoUIError(f"{workdir} holds no sandbox database ({pgdata}); it was made by "
                          "an older demo: run `recon-domains demo` again")
    with persistent_postgres(pgdata) as admin_dsn:
        dsn = dsn_for_database(admin_dsn, SANDBOX_DATABASE)
        port = urlsplit(env.get("PEERTUBE_URL", "")).port or 0
        if port and not _port_free(port):
            print(f"port {port} of the demo's PeerTube is in use (another `recon-domains demo "
                  "--serve`?); using a free one and rewriting .env", file=sys.stderr)
            port = 0
        with start_server(dsn, port=port, admin_password=env["PEERTUBE_PASSWORD"]) as server:
            if env.get("PEERTUBE_URL") != server.url or env.get("PEERTUBE_DB_DSN") != dsn:
                env.update(PEERTUBE_URL=server.url, PEERTUBE_DB_DSN=dsn)
                write_env_file(env_path, env, DEMO_ENV_HEADER)
            yield env


DEMO_ENV_HEADER = (
    "Written by `recon-domains demo`: the settings of the demo's copy and its sandbox\n"
    "PeerTube (a throwaway password). Read by dg dev / dg launch / recon-domains run from\n"
    "this folder; `recon-domains demo --serve` (or --ui) starts the sandbox again."
)


def serve_main(workdir: Path, *, ui: bool) -> int:
    """`recon-domains demo --serve` / `--ui`: the demo's sandbox (and the UI) until Ctrl-C."""
    from recon_domains.sandbox.peertube_server import wait_for_stop

    workdir = workdir.resolve()
    try:
        with serve_sandbox(workdir) as env:
            print(f"the demo's sandbox PeerTube answers at {env['PEERTUBE_URL']} "
                  f"(settings: {workdir / ENV_FILE}; instance: {env['DAGSTER_HOME']})",
                  flush=True)
            if not ui:
                print(f"open the Dagster UI on it, in another terminal:\n  {ui_command(workdir)}"
                      "\nCtrl-C stops the sandbox.", flush=True)
                wait_for_stop()
                return EXIT_OK
            print(f"starting the Dagster UI: {ui_command(workdir)}\nCtrl-C stops both.",
                  flush=True)
            return _run_ui(workdir)
    except DemoUIError as exc:
        print(f"recon-domains demo: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _run_ui(workdir: Path) -> int:
    command = [str(venv_program("dg")), "dev", "-w", str(REPO_ROOT / "workspace.yaml")]
    environ = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # .env says it
    process = subprocess.Popen(command, cwd=workdir, env=environ)
    try:
        return process.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to dg dev too; let it finish
        try:
            return process.wait(timeout=30)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.terminate()
            return process.wait()


def ui_summary(report) -> str:
    """The rehearsal summary's last lines: how to open the Dagster UI on its result."""
    if report.env_file:
        workdir = Path(report.env_file).parent
        again = "" if workdir == (REPO_ROOT / ".demo") else f" --workdir {workdir}"
        return (
            "Open the Dagster UI on this result; it can materialize every asset and run every "
            f"job (settings: {report.env_file}). The sandbox PeerTube stopped with the demo; "
            "this starts it again, then the UI (Ctrl-C stops both):\n"
            f"  cd {REPO_ROOT} && .venv/bin/recon-domains demo --ui{again}"
            + ("      # or: make ui" if not again else "")
            + f"\nor start the sandbox alone (`recon-domains demo --serve{again}`) and, in another "
            f"terminal:\n  {ui_command(workdir)}"
        )
    workdir = Path(report.workdir)
    if report.peertube.get("url"):  # a staging PeerTube: its runs need the copy's settings
        return (
            "Browse the Dagster UI on this result (runs started there need the copy's "
            f"settings: see the note above):\n  cd {workdir} && "
            f"DAGSTER_HOME={report.dagster_home} {venv_program('dg')} dev -w "
            f"{REPO_ROOT / 'workspace.yaml'}"
        )
    return (
        "Browse the Dagster UI on this result (its sandbox PeerTube has stopped: runs "
        f"started there fail):\n  cd {workdir} && DAGSTER_HOME={report.dagster_home} "
        f"{venv_program('dg')} dev -w {REPO_ROOT / 'workspace.yaml'}"
    )
