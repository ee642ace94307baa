"""The one settings model (recon_domains.settings): every variable of the README's table, its
default, invalid values, secrets, and the settings reaching the Dagster definitions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pydantic import SecretStr

from recon_domains.defs.resources import resources_from_settings
from recon_domains.settings import (
    DEFAULTS,
    Benchmarks,
    ConfigError,
    PeerTubeSettings,
    ReviewSettings,
    Settings,
    require,
    setting_names,
)

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "pt-secret-password-1"
TOKEN = "review-token-0123456789abcdef"
DSN_PASSWORD = "dsn-secret-password-2"

# Every variable of the model, each set to a value other than its default.
FULL_ENV = {
    "RECON_DB_PATH": "/srv/recon/recon.db",
    "RECON_CONCEPTS_DIR": "/srv/recon/concepts",
    "RECON_STREAM_SOURCE": "video.example",
    "RECON_ACCEPTED_HOSTS": "old-name.example, Bücher.example",
    "RECON_BACKUP_DIR": "/srv/backups",
    "RECON_OFFSITE_CONCEPTS_DIR": "/mnt/offsite/concepts",
    "RECON_QUARANTINE_DIR": "/srv/quarantine",
    "RECON_SKIP_CHANNELS": "Transcript, Uploads ,",
    "RECON_BENCHMARK_ASSIGNED_PCT": "90",
    "RECON_BENCHMARK_TIED_PCT": "7.5",
    "RECON_BENCHMARK_NEEDS_REPROCESS_PCT": "20",
    "RECON_BENCHMARK_TOLERANCE_PP": "3",
    "RECON_OFFSITE_MAX_LAG_HOURS": "12",
    "RECON_PUSH_STAGE1_SIZE": "50",
    "RECON_PUSH_STAGE2_SIZE": "2000",
    "RECON_MAX_WINDOW_FILE_MB": "64",
    "RECON_REASSIGN_MAX_CHANGE_PCT": "12.5",
    "RECON_IS_COPY": "1",
    "RECON_LOCK_TIMEOUT_S": "12.5",
    "RECON_REVIEW_HOSTS": "review.example, proxy.example",
    "RECON_REVIEW_TOKEN": TOKEN,
    "RECON_REVIEW_URL": " https://recon.example/review/ ",
    "RECON_NODE": "/opt/node/bin/node",
    "RECON_PG_BIN_DIR": "/usr/lib/postgresql/16/bin",
    "PEERTUBE_URL": "http://192.168.1.170:9000",
    "PEERTUBE_HOST_HEADER": "stream.echo6.co",
    "PEERTUBE_USERNAME": "admin",
    "PEERTUBE_PASSWORD": PASSWORD,
    "PEERTUBE_TOKEN_CACHE": "/srv/recon/token-cache.json",
    "PEERTUBE_DB_DSN": f"postgresql://peertube:{DSN_PASSWORD}@10.0.0.5:5432/peertube_prod",
    "PEERTUBE_DB_DUMP_COMMAND": "ssh root@pve 'pct exec 110 -- pg_dump -Fc peertube_prod'",
    "PEERTUBE_PLUGIN_PATH": "/var/www/peertube/plugins/peertube-plugin-recon-domains",
    "PEERTUBE_PUSH_MAX_IN_FLIGHT": "4",
    "PEERTUBE_PUSH_MAX_RATE": "12.5",
}


def readme_variables() -> set[str]:
    """The variables of the README's configuration table."""
    text = (REPO / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


# -- reading and defaults ------------------------------------------------------------------
def test_the_model_covers_every_variable_of_the_readme_table():
    dagster_own = {n for n in readme_variables() if n.startswith("DAGSTER_")}
    tests_only = {"PEERTUBE_TEST_PG_DSN", "PEERTUBE_E2E_URL"}
    assert readme_variables() - dagster_own - tests_only == set(FULL_ENV)
    for name, value in FULL_ENV.items():  # and each one is read
        assert Settings.from_env({name: value}) != DEFAULTS, name


def test_an_empty_environment_gives_every_default():
    s = Settings.from_env({})
    assert s == DEFAULTS == Settings()
    assert (s.db_path, s.concepts_dir, s.backup_dir, s.offsite_concepts_dir) == (None,) * 4
    assert (s.quarantine_dir, s.pg_bin_dir) == (None, None)
    assert s.stream_source == "stream.echo6.co"
    assert s.accepted_hosts == ()
    assert s.skip_channels == {"Transcript"}
    assert s.benchmarks == Benchmarks(94.8, 5.2, 19.5, 5.0)
    assert s.offsite_max_lag_hours == 6.0
    assert s.stage_sizes == (100, 1000)
    assert s.max_window_file_mb == 16
    assert s.reassign_max_change_pct == 5.0
    assert s.is_copy is False
    assert s.lock_timeout_s == 30.0
    assert s.node == "node"
    assert s.review == ReviewSettings("http://127.0.0.1:8765/", (), None)
    assert s.peertube == PeerTubeSettings(
        url=None, host_header=None, username="root", password=None, token_cache=None,
        plugin_path=None, db_dsn=None, db_dump_command=None, push_max_in_flight=8,
        push_max_rate=None,
    )


SECRET_VARIABLES = ("PEERTUBE_PASSWORD", "RECON_REVIEW_TOKEN", "PEERTUBE_DB_DSN")


def test_blank_values_are_unset():
    blank = {name: "  " for name in FULL_ENV if name not in SECRET_VARIABLES}
    assert Settings.from_env(blank) == DEFAULTS
    empty = dict.fromkeys(SECRET_VARIABLES, "")
    assert Settings.from_env(empty) == DEFAULTS


def test_every_variable_is_parsed():
    s = Settings.from_env(FULL_ENV)
    assert s.db_path == Path("/srv/recon/recon.db")
    assert s.concepts_dir == Path("/srv/recon/concepts")
    assert s.stream_source == "video.example"
    assert s.accepted_hosts == ("old-name.example", "Bücher.example")
    assert s.backup_dir == Path("/srv/backups")
    assert s.offsite_concepts_dir == Path("/mnt/offsite/concepts")
    assert s.quarantine_dir == Path("/srv/quarantine")
    assert s.skip_channels == {"Transcript", "Uploads"}
    assert s.benchmarks == Benchmarks(assigned=90, tied=7.5, needs_reprocess=20, tolerance=3)
    assert s.offsite_max_lag_hours == 12
    assert s.stage_sizes == (50, 2000)
    assert s.max_window_file_mb == 64
    assert s.is_copy is True
    assert s.lock_timeout_s == 12.5
    assert s.node == "/opt/node/bin/node"
    assert s.pg_bin_dir == Path("/usr/lib/postgresql/16/bin")
    assert s.review.url == "https://recon.example/review/"
    assert s.review.hosts == ("review.example", "proxy.example")
    assert s.review.token is not None and s.review.token.get_secret_value() == TOKEN
    pt = s.peertube
    assert (pt.url, pt.host_header, pt.username) == (
        "http://192.168.1.170:9000", "stream.echo6.co", "admin"
    )
    assert pt.password is not None and pt.password.get_secret_value() == PASSWORD
    assert pt.token_cache == Path("/srv/recon/token-cache.json")
    assert pt.db_dsn is not None and DSN_PASSWORD in pt.db_dsn.get_secret_value()
    assert pt.db_dump_command == FULL_ENV["PEERTUBE_DB_DUMP_COMMAND"]
    assert pt.plugin_path == FULL_ENV["PEERTUBE_PLUGIN_PATH"]
    assert pt.push_max_in_flight == 4
    assert pt.push_max_rate == 12.5


def test_review_url_defaults_to_the_review_commands_bind():
    assert DEFAULTS.review.url == "http://127.0.0.1:8765/"
    assert Settings.from_env({}).review.url == DEFAULTS.review.url
    assert Settings.from_env({"RECON_REVIEW_URL": "  "}).review.url == DEFAULTS.review.url


def test_review_url_from_recon_review_url():
    env = {"RECON_REVIEW_URL": " https://recon.example/review/ "}
    assert Settings.from_env(env).review.url == "https://recon.example/review/"


def test_paths_expand_the_home_folder(monkeypatch):
    monkeypatch.setenv("HOME", "/home/operator")
    assert Settings.from_env({"RECON_DB_PATH": "~/recon.db"}).db_path == Path(
        "/home/operator/recon.db"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("yes", True), ("TRUE", True), ("on", True), ("0", False), ("no", False),
     ("off", False), ("", False)],
)
def test_recon_is_copy_flag(value, expected):
    assert Settings.from_env({"RECON_IS_COPY": value}).is_copy is expected


def test_benchmarks_expected_are_keyed_like_the_pass1_percentages():
    assert Benchmarks(1.0, 2.0, 3.0, 4.0).expected() == {
        "assigned": 1.0, "tied": 2.0, "needs_reprocess": 3.0
    }


# -- invalid values ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECON_BENCHMARK_ASSIGNED_PCT", "ninety"),
        ("RECON_BENCHMARK_ASSIGNED_PCT", "101"),
        ("RECON_BENCHMARK_TIED_PCT", "-1"),
        ("RECON_BENCHMARK_NEEDS_REPROCESS_PCT", "nan"),
        ("RECON_BENCHMARK_TOLERANCE_PP", "-0.5"),
        ("RECON_BENCHMARK_TOLERANCE_PP", "inf"),
        ("RECON_OFFSITE_MAX_LAG_HOURS", "six"),
        ("RECON_OFFSITE_MAX_LAG_HOURS", "-6"),
        ("RECON_PUSH_STAGE1_SIZE", "-100"),
        ("RECON_PUSH_STAGE1_SIZE", "0"),
        ("RECON_PUSH_STAGE2_SIZE", "1e3"),
        ("RECON_PUSH_STAGE2_SIZE", "100.5"),
        ("PEERTUBE_PUSH_MAX_IN_FLIGHT", "0"),
        ("PEERTUBE_PUSH_MAX_IN_FLIGHT", "800"),
        ("PEERTUBE_PUSH_MAX_IN_FLIGHT", "eight"),
        ("PEERTUBE_PUSH_MAX_RATE", "0"),
        ("PEERTUBE_PUSH_MAX_RATE", "-5"),
        ("PEERTUBE_PUSH_MAX_RATE", "inf"),
        ("PEERTUBE_PUSH_MAX_RATE", "fast"),
        ("RECON_MAX_WINDOW_FILE_MB", "0"),
        ("RECON_MAX_WINDOW_FILE_MB", "-16"),
        ("RECON_MAX_WINDOW_FILE_MB", "16MB"),
        ("RECON_IS_COPY", "maybe"),
        ("RECON_LOCK_TIMEOUT_S", "soon"),
        ("RECON_LOCK_TIMEOUT_S", "-1"),
        ("RECON_ACCEPTED_HOSTS", "https://stream.example"),
        ("RECON_ACCEPTED_HOSTS", "stream.example:443"),
        ("RECON_ACCEPTED_HOSTS", "ok.example, user@stream.example"),
        ("RECON_ACCEPTED_HOSTS", "stream..example"),
        ("RECON_ACCEPTED_HOSTS", "ｓｔｒｅａｍ.example"),
        ("RECON_ACCEPTED_HOSTS", "stream.example/w"),
    ],
)
def test_an_invalid_value_names_the_variable_what_it_got_and_what_to_set(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name} is {value!r}")
    assert "expected" in message and f"Set {name}" in message and "unset it" in message
    assert caught.value.variable == name


def test_require_names_the_unset_variable():
    assert require(Path("/x"), "RECON_DB_PATH") == Path("/x")
    with pytest.raises(ConfigError, match="RECON_DB_PATH is not set") as caught:
        require(DEFAULTS.db_path, "RECON_DB_PATH")
    assert caught.value.variable == "RECON_DB_PATH"


def test_setting_names_are_the_variables_the_model_reads():
    assert set(setting_names()) == set(FULL_ENV)


# -- secrets -------------------------------------------------------------------------------
SECRETS = (PASSWORD, TOKEN, DSN_PASSWORD)


def test_secrets_never_in_the_repr_or_str_of_the_settings():
    s = Settings.from_env(FULL_ENV)
    for shown in (repr(s), str(s), repr(s.peertube), str(s.review), f"{s.peertube.password}"):
        assert not any(secret in shown for secret in SECRETS), shown
    assert "**********" in repr(s.peertube.password)


def test_secrets_never_in_an_error():
    env = {**FULL_ENV, "RECON_PUSH_STAGE1_SIZE": "lots"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert not any(secret in str(caught.value) for secret in SECRETS)
    assert "RECON_PUSH_STAGE1_SIZE" in str(caught.value)


def test_a_password_is_kept_exactly():
    s = Settings.from_env({"PEERTUBE_PASSWORD": " spaced password "})
    assert s.peertube.password == SecretStr(" spaced password ")


# -- the settings reach the Dagster resources and definitions ------------------------------
def test_resources_carry_the_settings_and_keep_secrets_and_required_paths_env_vars():
    res = resources_from_settings(Settings.from_env(FULL_ENV))
    recon, peertube, db = res["recon"], res["peertube"], res["peertube_db"]
    for value, variable in [
        (recon.db_path, "RECON_DB_PATH"),
        (recon.concepts_dir, "RECON_CONCEPTS_DIR"),
        (peertube.url, "PEERTUBE_URL"),
        (peertube.password, "PEERTUBE_PASSWORD"),
        (db.dsn, "PEERTUBE_DB_DSN"),
        (db.dump_command, "PEERTUBE_DB_DUMP_COMMAND"),
    ]:
        assert isinstance(value, dg.EnvVar) and value.env_var_name == variable
    assert recon.benchmarks() == Benchmarks(90, 7.5, 20, 3)
    assert recon.push_stage_sizes == (50, 2000)
    assert recon.max_window_file_mb == 64
    assert recon.offsite_max_lag_hours == 12
    assert recon.skip_channel_set == {"Transcript", "Uploads"}
    assert (recon.stream_source, recon.is_copy) == ("video.example", True)
    assert recon.lock_timeout_s == 12.5
    assert recon.accepted_hosts == ["old-name.example", "Bücher.example"]
    assert (recon.backup_dir, recon.quarantine_dir) == ("/srv/backups", "/srv/quarantine")
    assert recon.review_url == "https://recon.example/review/"
    assert (peertube.push_max_in_flight, peertube.node) == (4, "/opt/node/bin/node")
    assert (peertube.username, peertube.host_header) == ("admin", "stream.echo6.co")
    assert db.pg_bin_dir == "/usr/lib/postgresql/16/bin"
    assert not any(secret in repr(res) for secret in SECRETS)


def test_resources_of_an_empty_environment_take_the_defaults():
    res = resources_from_settings(Settings.from_env({}))
    assert res["recon"].benchmarks() == Benchmarks(94.8, 5.2, 19.5, 5.0)
    assert res["recon"].push_stage_sizes == (100, 1000)
    assert res["recon"].lock_timeout_s == 30.0
    assert res["recon"].max_window_file_mb == 16
    assert res["peertube"].push_max_in_flight == 8
    assert res["peertube_db"].dump_command == ""  # unset: not even an EnvVar


def test_resources_with_values_for_a_definitions_of_its_own():
    """The rehearsal's copy: every value concrete, none from the environment."""
    env = {k: v for k, v in FULL_ENV.items() if k != "PEERTUBE_DB_DUMP_COMMAND"}
    res = resources_from_settings(Settings.from_env(env), env_vars=False)
    assert res["recon"].db_path == "/srv/recon/recon.db"
    assert res["peertube"].password == PASSWORD
    assert DSN_PASSWORD in res["peertube_db"].dsn
    paths_only = Settings.from_env({"RECON_DB_PATH": "/a", "RECON_CONCEPTS_DIR": "/b"})
    with pytest.raises(ConfigError, match="PEERTUBE_URL is not set"):
        resources_from_settings(paths_only, env_vars=False)


PROBE = """
import json
from recon_domains.definitions import defs
d = defs()
checks = {s.key.name: s.description for c in d.asset_checks for s in c.check_specs}
assets = {s.key.to_user_string(): s.description for a in d.assets for s in a.specs}
recon, peertube = d.resources["recon"], d.resources["peertube"]
print(json.dumps({
    "checks": checks,
    "assets": assets,
    "benchmark_assigned_pct": recon.benchmark_assigned_pct,
    "push_stage_sizes": recon.push_stage_sizes,
    "push_max_in_flight": peertube.push_max_in_flight,
}))
"""


def _load_definitions(env: dict[str, str]) -> dict:
    """The Definitions as a code location loads them: a fresh process with `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "PEERTUBE_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, cwd=REPO,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_check_descriptions_state_the_configured_values():
    env = {
        "RECON_BENCHMARK_ASSIGNED_PCT": "90",
        "RECON_BENCHMARK_TIED_PCT": "7.5",
        "RECON_BENCHMARK_NEEDS_REPROCESS_PCT": "21",
        "RECON_BENCHMARK_TOLERANCE_PP": "3",
        "RECON_OFFSITE_MAX_LAG_HOURS": "12",
        "RECON_PUSH_STAGE1_SIZE": "50",
        "RECON_PUSH_STAGE2_SIZE": "2000",
        "PEERTUBE_PUSH_MAX_IN_FLIGHT": "4",
    }
    loaded = _load_definitions(env)
    distribution = loaded["checks"]["distribution_within_benchmarks"]
    assert "assigned ≈ 90 %" in distribution and "tied ≈ 7.5 %" in distribution
    assert "needs_reprocess ≈ 21 %" in distribution and "more than 3 points" in distribution
    assert "94.8" not in distribution
    assert "within 12 h" in loaded["checks"]["backup_fresh"]
    assert "first 50 categorized" in loaded["assets"]["push_plan"]
    assert "next 2,000" in loaded["assets"]["push_plan"]
    # The resources of the same definitions carry the same values.
    assert loaded["benchmark_assigned_pct"] == 90
    assert loaded["push_stage_sizes"] == [50, 2000]
    assert loaded["push_max_in_flight"] == 4

    shipped = _load_definitions({})
    assert "assigned ≈ 94.8 % and tied ≈ 5.2 %" in shipped["checks"][
        "distribution_within_benchmarks"
    ]
    assert "needs_reprocess ≈ 19.5 %" in shipped["checks"]["distribution_within_benchmarks"]
    assert "more than 5 points" in shipped["checks"]["distribution_within_benchmarks"]
    assert "within 6 h" in shipped["checks"]["backup_fresh"]
    assert "first 100 categorized" in shipped["assets"]["push_plan"]
    assert "next 1,000" in shipped["assets"]["push_plan"]


def test_an_invalid_setting_stops_the_definitions_loading_with_its_name():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "PEERTUBE_"))}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, "RECON_PUSH_STAGE1_SIZE": "-1"},
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode != 0
    assert "RECON_PUSH_STAGE1_SIZE is '-1'" in proc.stderr
