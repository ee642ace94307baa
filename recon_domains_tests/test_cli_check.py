"""`recon-domains check` run as the operator runs it: the installed command in a subprocess,
against a real setup (a migrated sandbox corpus, its off-site copy, a Dagster home, the
sandbox PeerTube with the plugin installed, its real PostgreSQL) and against each thing an
operator gets wrong."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recon_domains.recon.store import ReconStore
from recon_domains.sandbox.corpus import CorpusSummary, generate_corpus
from recon_domains.sandbox.peertube_server import RunningPeerTube, start_server
from recon_domains.sandbox.postgres import create_database, drop_database
from recon_domains.settings import setting_names
from recon_domains.taxonomy import PLUGIN_NPM_NAME
from recon_domains_tests.fixtures.peertube import SANDBOX_ADMIN_PASSWORD, UNLIMITED

REPO = Path(__file__).resolve().parents[1]
COMMAND = str(Path(sys.executable).with_name("recon-domains"))
WRONG_PASSWORD = "Wr0ng-but-Secret-pa55word"


@dataclass(frozen=True)
class World:
    root: Path
    corpus: CorpusSummary  # migrated
    unmigrated: CorpusSummary
    offsite: Path
    dagster_home: Path
    peertube: RunningPeerTube  # the plugin installed
    bare_peertube: RunningPeerTube  # no plugin

    def env(self, *, peertube: RunningPeerTube | None = None, **changes: str | None
            ) -> dict[str, str]:
        """An environment holding only what the check needs (nothing of the developer's);
        a change of None removes that variable."""
        server = peertube or self.peertube
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "DAGSTER_HOME": str(self.dagster_home),
            "RECON_DB_PATH": str(self.corpus.recon_db),
            "RECON_CONCEPTS_DIR": str(self.corpus.concepts_dir),
            "RECON_OFFSITE_CONCEPTS_DIR": str(self.offsite),
            "PEERTUBE_URL": server.url,
            "PEERTUBE_PASSWORD": SANDBOX_ADMIN_PASSWORD,
            "PEERTUBE_DB_DSN": server.dsn,
        }
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env


@pytest.fixture(scope="module")
def bare_peertube(pg_admin_dsn: str) -> Iterator[RunningPeerTube]:
    """A second sandbox PeerTube for this module: no plugin installed."""
    name = f"rd_test_{uuid.uuid4().hex[:12]}"
    dsn = create_database(pg_admin_dsn, name)
    running = start_server(dsn, admin_password=SANDBOX_ADMIN_PASSWORD, **UNLIMITED)
    try:
        yield running
    finally:
        running.stop()
        drop_database(pg_admin_dsn, name)


@pytest.fixture(scope="module")
def world(tmp_path_factory, peertube_module_server, bare_peertube) -> World:
    root = tmp_path_factory.mktemp("check")
    corpus = generate_corpus(root / "corpus", 300, seed=1)
    with ReconStore.open(corpus.recon_db, corpus.source) as store:
        store.migrate()
    unmigrated = generate_corpus(root / "unmigrated", 100, seed=2)
    offsite = root / "offsite"
    shutil.copytree(corpus.concepts_dir, offsite)
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    peertube_module_server.install_plugin(REPO / "peertube-plugin" / PLUGIN_NPM_NAME)
    return World(root, corpus, unmigrated, offsite, home, peertube_module_server, bare_peertube)


def check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, "check"], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def lines_of(proc: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """{subject: (verdict, text)} of the check's lines."""
    found = {}
    for line in proc.stdout.splitlines():
        verdict, subject, text = [*line.split(maxsplit=2), "", ""][:3]
        if verdict in ("OK", "WARN", "FAIL"):
            found[subject] = (verdict, text)
    return found


def test_all_good_is_exit_0_with_every_line_ok(world: World, tmp_path: Path) -> None:
    cache = tmp_path / "tokens.json"
    proc = check(world.env(PEERTUBE_TOKEN_CACHE=str(cache)), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("recon-domains ") and " check" in out[0]
    assert out[-1] == f"{len(out) - 2} OK, 0 WARN, 0 FAIL"
    assert all(line.startswith("OK  ") for line in out[1:-1]), proc.stdout
    lines = lines_of(proc)
    for subject in ("DAGSTER_HOME", "RECON_DB_PATH", "SQLite", "RECON_CONCEPTS_DIR",
                    "RECON_OFFSITE_CONCEPTS_DIR", "PEERTUBE_URL", "PEERTUBE_PASSWORD",
                    "PEERTUBE_USERNAME", "plugin", "categories", "PEERTUBE_DB_DSN", "pg_dump"):
        assert subject in lines, subject
    assert "migrated (runbook Step 3 done)" in lines["RECON_DB_PATH"][1]
    folders = sum(1 for p in world.corpus.concepts_dir.iterdir() if p.is_dir())
    assert f"{folders} concept folders" in lines["RECON_CONCEPTS_DIR"][1]
    assert "all 18 RECON categories 100–117" in lines["categories"][1]
    assert "logged in once" in lines["PEERTUBE_PASSWORD"][1]
    # Every setting of the settings model is named somewhere.
    for name in setting_names():
        assert name in proc.stdout, name
    assert SANDBOX_ADMIN_PASSWORD not in proc.stdout + proc.stderr
    assert cache.is_file()  # the login's token kept for the next run

    again = check(world.env(PEERTUBE_TOKEN_CACHE=str(cache)), tmp_path)
    assert again.returncode == 0, again.stdout
    assert "no login was needed" in lines_of(again)["PEERTUBE_PASSWORD"][1]


def test_wrong_password_fails_naming_it_and_never_prints_it(world: World, tmp_path) -> None:
    proc = check(world.env(PEERTUBE_PASSWORD=WRONG_PASSWORD), tmp_path)
    assert proc.returncode == 3
    verdict, text = lines_of(proc)["PEERTUBE_PASSWORD"]
    assert verdict == "FAIL"
    assert "refused the login of 'root'" in text and "set PEERTUBE_PASSWORD" in text
    assert WRONG_PASSWORD not in proc.stdout + proc.stderr
    # The rest is still checked: one mistake does not hide the others.
    assert lines_of(proc)["RECON_DB_PATH"][0] == "OK"
    assert lines_of(proc)["categories"][0] == "OK"  # read without logging in
    assert proc.stdout.splitlines()[-1].endswith("FAIL: fix each FAIL line, then run "
                                                 "`recon-domains check` again (exit 3)")


@pytest.mark.parametrize(("dagster_home", "expected"), [
    (None, "not set: Dagster would use a throwaway instance"),
    ("relative/home", "is not an absolute path"),
    ("{root}/no-such-home", "does not exist"),
    ("{root}/empty-home", "holds no dagster.yaml"),
    ("{root}/.tmp_dagster_home_x1", "temporary instance"),
])
def test_dagster_home_problems_are_named(world: World, tmp_path, dagster_home, expected) -> None:
    if dagster_home is not None:
        dagster_home = dagster_home.format(root=tmp_path)
        if dagster_home.endswith(("empty-home", "_x1")):
            Path(dagster_home).mkdir()
    proc = check(world.env(DAGSTER_HOME=dagster_home), tmp_path)
    assert proc.returncode == 3
    verdict, text = lines_of(proc)["DAGSTER_HOME"]
    assert verdict == "FAIL" and expected in text, text


def test_a_pool_less_dagster_yaml_is_a_warning(world: World, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = check(world.env(DAGSTER_HOME=str(home)), tmp_path)
    assert proc.returncode == 0, proc.stdout
    verdict, text = lines_of(proc)["DAGSTER_HOME"]
    assert verdict == "WARN" and "default_limit: 1" in text


def test_missing_plugin_after_the_migration_fails(world: World, tmp_path) -> None:
    env = world.env(peertube=world.bare_peertube)
    proc = check(env, tmp_path)
    assert proc.returncode == 3
    verdict, text = lines_of(proc)["plugin"]
    assert verdict == "FAIL"
    assert f"{PLUGIN_NPM_NAME} is not installed" in text and "plugin_job" in text
    assert "categories" not in lines_of(proc)  # the plugin line says it


def test_before_the_migration_missing_plugin_and_schema_are_steps_to_do(world, tmp_path):
    env = world.env(peertube=world.bare_peertube,
                    RECON_DB_PATH=str(world.unmigrated.recon_db),
                    RECON_CONCEPTS_DIR=str(world.unmigrated.concepts_dir),
                    RECON_OFFSITE_CONCEPTS_DIR=None)
    proc = check(env, tmp_path)
    assert proc.returncode == 0, proc.stdout  # warnings only: the runbook's steps to come
    lines = lines_of(proc)
    verdict, text = lines["RECON_DB_PATH"]
    assert verdict == "WARN"
    assert "not migrated yet" in text and "missing column documents.recon_domain" in text
    assert "Step 3 (schema_job)" in text
    verdict, text = lines["plugin"]
    assert verdict == "WARN" and "not installed in PeerTube yet" in text and "Steps 1–2" in text
    verdict, text = lines["RECON_OFFSITE_CONCEPTS_DIR"]
    assert verdict == "WARN" and "Pre-deploy 3" in text


def test_unreachable_peertube_is_named(world: World, tmp_path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = check(world.env(PEERTUBE_URL=f"http://127.0.0.1:{port}"), tmp_path)
    assert proc.returncode == 3
    lines = lines_of(proc)
    verdict, text = lines["PEERTUBE_URL"]
    assert verdict == "FAIL"
    assert f"PeerTube unreachable at http://127.0.0.1:{port}" in text
    assert "Check PEERTUBE_URL" in text and "were not checked" in text
    assert "plugin" not in lines and "categories" not in lines
    assert lines["PEERTUBE_DB_DSN"][0] == "OK"  # the database is checked on its own


def test_invalid_and_missing_settings_are_each_named(world: World, tmp_path) -> None:
    env = world.env(RECON_PUSH_STAGE1_SIZE="lots", RECON_BENCHMARK_TIED_PCT="101",
                    RECON_CONCEPTS_DIR=None)
    proc = check(env, tmp_path)
    assert proc.returncode == 3
    lines = lines_of(proc)
    assert lines["RECON_PUSH_STAGE1_SIZE"][0] == "FAIL"
    assert "'lots', which is not valid" in lines["RECON_PUSH_STAGE1_SIZE"][1]
    assert lines["RECON_BENCHMARK_TIED_PCT"][0] == "FAIL"
    verdict, text = lines["RECON_CONCEPTS_DIR"]
    assert verdict == "FAIL" and text.startswith("not set")
    assert lines["RECON_DB_PATH"][0] == "OK"


def test_without_a_dsn_the_dump_command_is_checked_never_run(world: World, tmp_path) -> None:
    marker = tmp_path / "the-dump-ran"
    proc = check(world.env(PEERTUBE_DB_DSN=None,
                           PEERTUBE_DB_DUMP_COMMAND=f"touch {marker}"), tmp_path)
    assert proc.returncode == 0, proc.stdout
    lines = lines_of(proc)
    verdict, text = lines["PEERTUBE_DB_DSN"]
    assert verdict == "WARN" and "through PeerTube's API" in text
    verdict, text = lines["PEERTUBE_DB_DUMP_COMMAND"]
    assert verdict == "OK" and "its program touch is" in text
    assert not marker.exists()

    proc = check(world.env(PEERTUBE_DB_DSN=None,
                           PEERTUBE_DB_DUMP_COMMAND="PGPASSWORD=x no-such-dumper -Fc"), tmp_path)
    assert proc.returncode == 3
    verdict, text = lines_of(proc)["PEERTUBE_DB_DUMP_COMMAND"]
    assert verdict == "FAIL" and "'no-such-dumper' is not found" in text

    proc = check(world.env(PEERTUBE_DB_DSN=None), tmp_path)
    assert proc.returncode == 3
    verdict, text = lines_of(proc)["PEERTUBE_DB_DUMP_COMMAND"]
    assert verdict == "FAIL" and "Pre-deploy 2 cannot dump" in text


def test_a_wrong_dsn_fails_without_its_password(world: World, tmp_path) -> None:
    dsn = "postgresql://peertube:Db-Secret-42@127.0.0.1:1/peertube_prod"
    proc = check(world.env(PEERTUBE_DB_DSN=dsn), tmp_path)
    assert proc.returncode == 3
    verdict, text = lines_of(proc)["PEERTUBE_DB_DSN"]
    assert verdict == "FAIL" and "cannot connect to PeerTube's database" in text
    assert "Db-Secret-42" not in proc.stdout + proc.stderr


def test_check_reads_dot_env_and_imports_no_dagster(world: World, tmp_path) -> None:
    env = world.env()
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"RECON_DB_PATH={env.pop('RECON_DB_PATH')}\n"
                      "PEERTUBE_PASSWORD=not-this-one\n")
    dotenv.chmod(0o600)
    script = ("import sys; from recon_domains.cli import main; "
              "sys.argv = ['recon-domains', 'check']; code = main(); "
              "print('dagster imported:', 'dagster' in sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("dagster imported: False")
    lines = lines_of(proc)
    verdict, text = lines[".env"]
    assert verdict == "OK"
    assert text == (f"{dotenv}: 1 variable(s) set from it; PEERTUBE_PASSWORD also set in the "
                    "environment, which wins")
    assert lines["RECON_DB_PATH"][0] == "OK"  # from .env
    assert lines["PEERTUBE_PASSWORD"][0] == "OK"  # the environment's, not .env's
    assert "not-this-one" not in proc.stdout


def test_a_dot_env_others_can_read_is_a_warning(world: World, tmp_path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("RECON_IS_COPY=0\n")
    dotenv.chmod(0o644)
    proc = check(world.env(), tmp_path)
    assert proc.returncode == 0, proc.stdout
    verdict, text = lines_of(proc)[".env"]
    assert verdict == "WARN" and f"chmod 600 {dotenv}" in text
