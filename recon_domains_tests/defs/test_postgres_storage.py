"""The documented PostgreSQL instance storage (dagster.postgres.yaml, dagster-postgres): a
gated step runs, and its cross-run gates are read back from PostgreSQL, against the
machine's server (a database created for the test and dropped after it)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from psycopg2.extensions import parse_dsn

from recon_domains.defs.gates import gate_state
from recon_domains.runbook import Gate
from recon_domains_tests.defs.conftest import failure_text

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def postgres_instance(pg_database_factory, tmp_path, monkeypatch):
    """A Dagster instance configured by dagster.postgres.yaml exactly as shipped, with the
    DAGSTER_PG_* variables pointing at a fresh database."""
    parts = parse_dsn(pg_database_factory("dagster"))
    monkeypatch.setenv("DAGSTER_PG_HOST", parts.get("host", "127.0.0.1"))
    monkeypatch.setenv("DAGSTER_PG_PORT", parts.get("port", "5432"))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", parts.get("user", "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", parts.get("password", ""))
    monkeypatch.setenv("DAGSTER_PG_DB", parts["dbname"])
    config = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    home = tmp_path / "dagster_home_pg"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=config) as instance:
        yield instance, parts


def test_gates_read_back_from_postgres_storage(postgres_instance, rollout_factory):
    instance, parts = postgres_instance
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"

    r = rollout_factory(docs=300, instance=instance)
    r.through("predeploy_job", "plugin_job")
    # A gated step in a later run: recon_schema reads five gates from PostgreSQL.
    res = r.job("schema_job")
    assert res.success, failure_text(res)
    with r.store() as s:
        assert s.is_migrated()
    state = gate_state(instance, Gate("recon_schema", "schema_verified"))
    assert state.ok, state.reason

    # The evaluations really live in PostgreSQL.
    conn = psycopg2.connect(
        host=parts.get("host"),
        port=parts.get("port"),
        user=parts.get("user"),
        password=parts.get("password") or None,
        dbname=parts["dbname"],
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT check_name, execution_status FROM asset_check_executions "
                "WHERE check_name = 'schema_verified'"
            )
            assert cur.fetchall() == [("schema_verified", "SUCCEEDED")]
    finally:
        conn.close()

    # And a closed gate is read back too: pass 1 without a dry run is refused.
    res = r.assets_alone(["pass1_assignments"])
    assert not res.success
    assert "pass1_dry_run:distribution_within_benchmarks" in failure_text(res)
    assert set(r.status_counts()) == {"unassigned"}
