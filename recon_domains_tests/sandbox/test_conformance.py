"""``recon-domains sandbox conformance``: the replayer anyone can run against a PeerTube."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recon_domains import cli
from recon_domains.sandbox import conformance

RECORD = Path(conformance.__file__).with_name("data") / "real-peertube-8.0.1.json"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["sandbox", "conformance", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def private_video(peertube_server):
    return peertube_server.add_video("conformance video", privacy=3)


def test_the_packaged_record_is_the_shared_one_verbatim():
    """The record real PeerTube 8.0.1 answered, copied into the project as data."""
    steps = conformance.load_sequence()
    assert len(steps) == 26
    assert steps[0] == {"step": "oauth_client", "status": 200, "ctype": "json",
                        "keys": ["client_id", "client_secret"]}
    assert steps[-1] == {"step": "put_orphaned_category", "status": 400,
                         "ctype": "problem+json"}


def test_against_a_url_no_difference_and_the_answers_written(
    peertube_server, private_video, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PEERTUBE_PASSWORD", peertube_server.admin_password)
    out_file = tmp_path / "observed.json"
    code, out, _ = _run(capsys, "--against", peertube_server.url, "--video",
                        private_video["uuid"], "--plugin-dir", str(tmp_path / "plugins"),
                        "--write", str(out_file))
    assert code == 0, out
    assert "26 steps replayed against" in out and "same answers as PeerTube 8.0.1" in out
    assert json.loads(out_file.read_text()) == json.loads(RECORD.read_text())
    assert peertube_server.admin_password not in out


def test_differences_are_printed_field_by_field(
    peertube_server, private_video, tmp_path, monkeypatch, capsys
):
    steps = json.loads(RECORD.read_text())
    by_name = {s["step"]: s for s in steps}
    by_name["put_malformed_id"]["status"] = 404
    by_name["video_get"]["extra_fact"] = 1
    del by_name["token_refresh"]["keys"]
    sequence = tmp_path / "changed.json"
    sequence.write_text(json.dumps(steps))
    monkeypatch.setenv("PEERTUBE_PASSWORD", peertube_server.admin_password)
    code, out, _ = _run(capsys, "--against", peertube_server.url, "--video",
                        str(private_video["id"]), "--plugin-dir", str(tmp_path / "p"),
                        "--sequence", str(sequence))
    assert code == 1
    lines = [line.strip() for line in out.splitlines()[1:]]
    keys = ["access_token", "expires_in", "refresh_token", "refresh_token_expires_in",
            "token_type"]
    assert lines == [
        'video_get.extra_fact: expected 1, got "<missing>"',
        "put_malformed_id.status: expected 404, got 400",
        f'token_refresh.keys: expected "<missing>", got {json.dumps(keys)}',
    ]
    assert "3 difference(s)" in out.splitlines()[0]


def test_against_a_sandbox_it_starts_itself(pg_dsn, tmp_path):
    """The whole command as an operator runs it, in its own process."""
    env = {k: v for k, v in os.environ.items() if k != "PEERTUBE_PASSWORD"}
    proc = subprocess.run(
        [sys.executable, "-m", "recon_domains.cli", "sandbox", "conformance", "--against",
         "sandbox", "--db-dsn", pg_dsn, "--plugin-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "26 steps replayed against the sandbox: same answers" in proc.stdout


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--against", "http://127.0.0.1:9", "--video", "1"], {},
     "PEERTUBE_PASSWORD is not set"),
    (["--against", "http://127.0.0.1:9"], {"PEERTUBE_PASSWORD": "pw"},
     "--video is required"),
    (["--against", "ftp://x", "--video", "1"], {"PEERTUBE_PASSWORD": "pw"},
     "neither an http(s) URL nor 'sandbox'"),
    (["--against", "http://127.0.0.1:9", "--video", "1"], {"PEERTUBE_PASSWORD": "pw"},
     "PeerTube at http://127.0.0.1:9 did not answer"),
])
def test_what_stops_a_replay_is_said_plainly(capsys, monkeypatch, argv, env, message):
    monkeypatch.delenv("PEERTUBE_PASSWORD", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = _run(capsys, *argv)
    assert code == 3
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not JSON"),
    ('{"step": "x"}', "must hold a JSON list"),
    ('[{"step": "upload_video"}]', "names steps the replayer does not know: upload_video"),
])
def test_a_bad_sequence_file_is_refused(tmp_path, capsys, content, message):
    sequence = tmp_path / "seq.json"
    sequence.write_text(content)
    code, _, err = _run(capsys, "--against", "sandbox", "--sequence", str(sequence))
    assert code == 3
    assert message in err
