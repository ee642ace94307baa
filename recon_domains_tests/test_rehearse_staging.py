"""`recon-domains rehearse --peertube-url`: the rehearsal against a PeerTube that exists.

Each test runs against the `staging` fixture's PeerTube, twice:

- "sandbox process": the sandbox PeerTube started as its own process
  (`recon-domains sandbox peertube`, as if it were a remote PeerTube) on its own PostgreSQL
  database, seeded with the videos of a generated RECON corpus, PeerTube's default API and
  login limits; the dump is a real `pg_dump -Fc` of that database through
  PEERTUBE_DB_DUMP_COMMAND, and no PEERTUBE_DB_DSN (categories through the API);
- "PEERTUBE_E2E_URL": a real PeerTube, when PEERTUBE_E2E_URL is set (skipped otherwise,
  with the reason in `pytest -rs`), with PEERTUBE_E2E_PASSWORD (PEERTUBE_E2E_USERNAME,
  default root), PEERTUBE_E2E_PLUGIN_PATH (the plugin folder on that PeerTube's host),
  PEERTUBE_E2E_DUMP_COMMAND or PEERTUBE_E2E_DB_DSN, and a RECON copy whose videos that
  PeerTube holds: PEERTUBE_E2E_RECON_DB and PEERTUBE_E2E_CONCEPTS (PEERTUBE_E2E_SOURCE: its
  stream source, default RECON_STREAM_SOURCE's). It writes to that PeerTube and restores it.

Every video's category is read through the API, by the test's own client, before and after.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recon_domains.backups import choose_pg_dump, server_version_num
from recon_domains.cli import main
from recon_domains.peertube.client import PeerTubeClient
from recon_domains.rehearsal import PLUGIN_DIR
from recon_domains.sandbox.postgres import pg_bin_dir
from recon_domains.staging import every_video_category
from recon_domains.taxonomy import DEFAULT_STREAM_SOURCE, FIRST_CATEGORY_ID, PLUGIN_NPM_NAME

SANDBOX_PASSWORD = "staging-admin-password"
E2E_REQUIRED = ("PEERTUBE_E2E_PASSWORD", "PEERTUBE_E2E_PLUGIN_PATH", "PEERTUBE_E2E_RECON_DB",
                "PEERTUBE_E2E_CONCEPTS")


@dataclass
class Staging:
    """A PeerTube to rehearse against, and a RECON copy whose videos it holds."""

    kind: str
    url: str
    username: str
    password: str
    env: dict[str, str]  # the PEERTUBE_* settings the rehearsal reads
    recon_db: Path
    concepts: Path
    source: str
    # The last lines the sandbox process printed (for a failure's message).
    said: list[str] = field(default_factory=list)

    def client(self) -> PeerTubeClient:
        return PeerTubeClient(self.url, self.username, self.password)

    def state(self) -> tuple[dict[str, int | None], bool]:
        """(every video's category, whether our plugin is installed), through the API."""
        with self.client() as client:
            return every_video_category(client), client.find_plugin(PLUGIN_NPM_NAME) is not None


class _SandboxProcess:
    """`recon-domains sandbox peertube` in its own process; stopped by its pid."""

    def __init__(self, dsn: str, recon_db: Path, source: str, cwd: Path) -> None:
        argv = [sys.executable, "-u", "-m", "recon_domains.cli", "sandbox", "peertube",
                "--port", "0", "--db-dsn", dsn, "--admin-password", SANDBOX_PASSWORD,
                "--videos-from", str(recon_db), "--source", source]
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.said: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.said.append(line.rstrip())
            if line.startswith("PeerTube sandbox listening on "):
                self.url = line.split()[-1]
                return
        self.stop()
        raise RuntimeError("the sandbox PeerTube did not start: " + " | ".join(self.said))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _e2e(monkeypatch: pytest.MonkeyPatch) -> Staging:
    url = os.environ.get("PEERTUBE_E2E_URL", "").strip()
    if not url:
        pytest.skip("PEERTUBE_E2E_URL is not set: set it, with " + ", ".join(E2E_REQUIRED)
                    + " and PEERTUBE_E2E_DUMP_COMMAND or PEERTUBE_E2E_DB_DSN, to rehearse "
                    "against a real PeerTube (it writes there and restores it)")
    missing = [n for n in E2E_REQUIRED if not os.environ.get(n)]
    if not (os.environ.get("PEERTUBE_E2E_DUMP_COMMAND") or os.environ.get("PEERTUBE_E2E_DB_DSN")):
        missing.append("PEERTUBE_E2E_DUMP_COMMAND or PEERTUBE_E2E_DB_DSN")
    if missing:
        pytest.fail(f"PEERTUBE_E2E_URL is set but not {', '.join(missing)}")
    username = os.environ.get("PEERTUBE_E2E_USERNAME") or "root"
    password = os.environ["PEERTUBE_E2E_PASSWORD"]
    env = {
        "PEERTUBE_USERNAME": username,
        "PEERTUBE_PASSWORD": password,
        "PEERTUBE_PLUGIN_PATH": os.environ["PEERTUBE_E2E_PLUGIN_PATH"],
        "PEERTUBE_DB_DUMP_COMMAND": os.environ.get("PEERTUBE_E2E_DUMP_COMMAND", ""),
        "PEERTUBE_DB_DSN": os.environ.get("PEERTUBE_E2E_DB_DSN", ""),
    }
    source = (os.environ.get("PEERTUBE_E2E_SOURCE") or os.environ.get("RECON_STREAM_SOURCE")
              or DEFAULT_STREAM_SOURCE)
    return Staging("e2e", url, username, password, env,
                   Path(os.environ["PEERTUBE_E2E_RECON_DB"]),
                   Path(os.environ["PEERTUBE_E2E_CONCEPTS"]), source)


@pytest.fixture(params=["sandbox process", "PEERTUBE_E2E_URL"])
def staging(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Iterator[Staging]:
    """The PeerTube of this run (see the module docstring), the rehearsal's environment set."""
    monkeypatch.chdir(tmp_path)  # no .env of the operator's
    for name in ("PEERTUBE_DB_DSN", "PEERTUBE_DB_DUMP_COMMAND", "PEERTUBE_TOKEN_CACHE",
                 "PEERTUBE_HOST_HEADER", "PEERTUBE_PLUGIN_PATH"):
        monkeypatch.delenv(name, raising=False)
    # The operator's PEERTUBE_URL (production, say) is not where the rehearsal goes.
    monkeypatch.setenv("PEERTUBE_URL", "http://127.0.0.1:9/production-must-not-be-used")
    monkeypatch.setenv("RECON_PUSH_STAGE1_SIZE", "30")
    process = None
    if request.param == "PEERTUBE_E2E_URL":
        target = _e2e(monkeypatch)
    else:
        corpus = request.getfixturevalue("corpus_factory")(docs=150, seed=3)
        dsn = request.getfixturevalue("pg_database_factory")("staging")
        process = _SandboxProcess(dsn, corpus.recon_db, corpus.source, tmp_path)
        # What an operator puts in PEERTUBE_DB_DUMP_COMMAND (ssh staging 'pg_dump -Fc …'):
        # here a pg_dump fit for the test PostgreSQL, printing that database to stdout.
        tool = choose_pg_dump(server_version_num(dsn), pg_bin_dir())
        env = {
            "PEERTUBE_USERNAME": "root",
            "PEERTUBE_PASSWORD": SANDBOX_PASSWORD,
            # The PeerTube host's folder: the sandbox runs on this machine.
            "PEERTUBE_PLUGIN_PATH": str(PLUGIN_DIR),
            "PEERTUBE_DB_DUMP_COMMAND":
                f"{shlex.quote(str(tool.path))} -Fc --no-password {shlex.quote(dsn)}",
            "RECON_PG_BIN_DIR": str(Path(tool.path).parent),
        }
        target = Staging("sandbox", process.url, "root", SANDBOX_PASSWORD, env,
                         corpus.recon_db, corpus.concepts_dir, corpus.source, process.said)
    for name, value in target.env.items():
        if value:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("RECON_STREAM_SOURCE", target.source)
    try:
        yield target
    finally:
        if process is not None:
            process.stop()


def _rehearse(staging: Staging, workdir: Path, *extra: str,
              recon_db: Path | None = None, concepts: Path | None = None) -> int:
    return main(["rehearse", "--recon-db", str(recon_db or staging.recon_db),
                 "--concepts", str(concepts or staging.concepts), "--workdir", str(workdir),
                 "--peertube-url", staging.url, *extra])


def test_without_the_confirmation_nothing_is_written(staging: Staging, tmp_path: Path,
                                                    capsys, monkeypatch) -> None:
    before = staging.state()
    assert before[1] is False, "the plugin must not be installed before a rehearsal"
    work = tmp_path / "refused"
    assert _rehearse(staging, work, "--then-remove-feature") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"error: refusing to write to the PeerTube at {staging.url}")
    assert "--i-understand-this-writes" in err
    assert not work.exists()  # not even the copy was made
    assert staging.state() == before

    # A setting the rehearsal needs: refused before anything too, exit 3, one line.
    monkeypatch.delenv("PEERTUBE_PLUGIN_PATH")
    assert _rehearse(staging, work, "--i-understand-this-writes") == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "PEERTUBE_PLUGIN_PATH is not set" in err
    assert not work.exists()
    assert staging.state() == before


def test_a_peertube_without_the_copys_videos_is_refused(staging: Staging, tmp_path: Path,
                                                       corpus_factory, capsys) -> None:
    # Another corpus: its videos' UUIDs are none of that PeerTube's.
    stranger = corpus_factory(docs=100, seed=77)
    before = staging.state()
    code = _rehearse(staging, tmp_path / "w", "--i-understand-this-writes",
                     recon_db=stranger.recon_db, concepts=stranger.concepts_dir)
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert err.count("\n") == 0
    assert "none of the copy's" in err and "nothing was written" in err
    assert staging.state() == before


def test_rehearse_against_it_then_remove_feature_restores_it_exactly(
    staging: Staging, tmp_path: Path, capsys
) -> None:
    before, plugin_before = staging.state()
    assert not plugin_before
    work = tmp_path / "work"
    code = _rehearse(staging, work, "--i-understand-this-writes", "--then-remove-feature")
    out = capsys.readouterr()
    assert code == 0, out.err + "\n" + "\n".join(staging.said)
    report = json.loads((work / "report.json").read_text())
    assert report["ok"] and report["removed_feature"]
    gates = {g["gate"] for g in report["gates"]}
    assert "peertube_db_backup:dump_verified" in gates
    assert "peertube_plugin:categories_registered" in gates
    assert "peertube_category_push[stage-3]:stage_verified" in gates
    pt = report["peertube"]
    assert pt["url"] == staging.url and pt["copy_videos_present"] > 0
    # The push changed videos of that PeerTube; each was restored, and nothing else moved.
    changed = pt["changed_by_runbook"]
    assert changed and all(v["pushed"] >= FIRST_CATEGORY_ID for v in changed.values())
    assert sorted(pt["restored"]) == sorted(changed)
    assert pt["exact"] and pt["differences"] == {} and not pt["plugin_installed_at_end"]
    # Our own read through the API, before and after: every video exactly as before.
    after, plugin_after = staging.state()
    assert after == before
    assert not plugin_after
    assert json.loads((work / "peertube-before.json").read_text()) == before
    assert f"restored {len(changed)} video(s)" in out.out
    if staging.kind == "sandbox":
        # A few seeded videos carried a built-in category: it is back, not cleared.
        assert any(before[u] is not None for u in changed)
        # One login for the whole rehearsal (PeerTube allows 15 per 5 minutes per IP).
        assert (work / "peertube-token.json").stat().st_mode & 0o077 == 0


def test_a_database_that_is_not_that_peertubes_is_refused(
    staging: Staging, tmp_path: Path, pg_database_factory, capsys, monkeypatch
) -> None:
    from recon_domains.sandbox.peertube_store import SandboxStore

    # Another PeerTube's database (same tables, none of these videos), then no PeerTube's.
    other = pg_database_factory("other")
    SandboxStore(other, max_connections=1).close()
    empty = pg_database_factory("empty")
    before = staging.state()
    for dsn, said in ((other, "is not the database of"), (empty, "cannot be read as")):
        monkeypatch.setenv("PEERTUBE_DB_DSN", dsn)
        work = tmp_path / said.replace(" ", "-")
        assert _rehearse(staging, work, "--i-understand-this-writes") == 3
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and said in err, err
        assert "PEERTUBE_DB_DSN" in err
        assert staging.state() == before
