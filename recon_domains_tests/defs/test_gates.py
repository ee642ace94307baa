"""The gate helper against a real (SQLite) Dagster instance, with toy assets and checks:
every way a gate can be closed, and the one way it is open."""

import dagster as dg
import pytest

from recon_domains.defs.gates import gate_state, require_open
from recon_domains.runbook import Gate

# Toy graph: `upstream` with a check whose verdict is config, `downstream` guarded by it.
parts = dg.StaticPartitionsDefinition(["p1", "p2"])


class Verdict(dg.Config):
    passed: bool = True


@dg.asset
def upstream() -> None:
    return None


@dg.asset_check(asset=upstream, blocking=True)
def upstream_ok(config: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=config.passed, description="fine" if config.passed else "it is broken"
    )


GATE = Gate("upstream", "upstream_ok", remedy="fix upstream")


@dg.asset(deps=[upstream])
def downstream(context: dg.AssetExecutionContext) -> None:
    require_open(context, [GATE], step="downstream")


@dg.asset(partitions_def=parts)
def staged() -> None:
    return None


@dg.asset_check(asset=staged, partitions_def=parts, blocking=True)
def staged_ok(config: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=config.passed)


ASSETS = [upstream, downstream, staged]
CHECKS = [upstream_ok, staged_ok]


ASSET_KEYS = {"upstream", "downstream", "staged"}
CHECK_KEYS = {
    "upstream_ok": dg.AssetCheckKey(dg.AssetKey("upstream"), "upstream_ok"),
    "staged_ok": dg.AssetCheckKey(dg.AssetKey("staged"), "staged_ok"),
}


def _run(instance, select, *, passed=True, partition=None):
    """One run of exactly the selected assets and checks (a check's verdict is `passed`)."""
    selection = dg.AssetSelection.assets(*[k for k in select if k in ASSET_KEYS]).without_checks()
    selection = selection | dg.AssetSelection.checks(
        *[CHECK_KEYS[k] for k in select if k in CHECK_KEYS]
    )
    job = dg.define_asset_job("toy", selection=selection)
    defs = dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=[job])
    ops = {
        f"{CHECK_KEYS[k].asset_key.path[0]}_{k}": {"config": {"passed": passed}}
        for k in select
        if k in CHECK_KEYS
    }
    return defs.resolve_job_def("toy").execute_in_process(
        instance=instance, run_config={"ops": ops}, partition_key=partition, raise_on_error=False
    )


@pytest.fixture
def instance():
    # In-memory SQL storage: same event-log code as the SQLite files (the e2e tests use a
    # persistent SQLite instance, test_postgres_storage a PostgreSQL one), much faster.
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_closed_until_materialized_and_checked(instance):
    s = gate_state(instance, GATE)
    assert not s.ok and "never been materialized" in s.reason

    _run(instance, ["upstream"])
    s = gate_state(instance, GATE)
    assert not s.ok and "never been evaluated" in s.reason

    _run(instance, ["upstream", "upstream_ok"])
    s = gate_state(instance, GATE)
    assert s.ok, s.reason


def test_failed_check_closes_and_names_the_gate(instance):
    _run(instance, ["upstream", "upstream_ok"], passed=False)
    s = gate_state(instance, GATE)
    assert not s.ok and "FAILED" in s.reason and "it is broken" in s.reason

    # A later run with only the downstream asset is refused by the guard.
    res = _run(instance, ["downstream"])
    assert not res.success
    failure = next(e for e in res.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "Refusing downstream" in message
    assert "upstream:upstream_ok" in message and "What to do: fix upstream" in message


def test_rematerialized_upstream_makes_an_old_pass_stale(instance):
    _run(instance, ["upstream", "upstream_ok"])
    assert gate_state(instance, GATE).ok
    _run(instance, ["upstream"])  # new materialization, its check not run
    s = gate_state(instance, GATE)
    assert not s.ok and "older materialization" in s.reason
    res = _run(instance, ["downstream"])
    assert not res.success

    _run(instance, ["upstream_ok"])  # the check alone, against the current materialization
    assert gate_state(instance, GATE).ok
    assert _run(instance, ["downstream"]).success


def test_latest_evaluation_wins(instance):
    _run(instance, ["upstream", "upstream_ok"], passed=False)
    _run(instance, ["upstream_ok"], passed=True)
    assert gate_state(instance, GATE).ok
    _run(instance, ["upstream_ok"], passed=False)
    assert not gate_state(instance, GATE).ok


def test_partitioned_gates_are_per_partition(instance):
    g1 = Gate("staged", "staged_ok", partition="p1")
    g2 = Gate("staged", "staged_ok", partition="p2")
    _run(instance, ["staged", "staged_ok"], partition="p1")
    assert gate_state(instance, g1).ok
    s2 = gate_state(instance, g2)
    assert not s2.ok and "never been materialized" in s2.reason

    _run(instance, ["staged", "staged_ok"], partition="p2", passed=False)
    assert gate_state(instance, g1).ok
    assert not gate_state(instance, g2).ok


def test_a_project_job_on_an_ephemeral_instance_refuses_naming_dagster_home():
    """Without a persistent instance every gate would look never-run: the guard says what
    is wrong instead (here: execute_in_process's in-memory instance)."""
    from recon_domains.definitions import MIGRATION, build_definitions
    from recon_domains.defs.resources import PeerTubeDbResource, PeerTubeResource, ReconResource

    resources = {
        "recon": ReconResource(db_path="/nonexistent/recon.db", concepts_dir="/nonexistent"),
        "peertube": PeerTubeResource(url="http://127.0.0.1:9", password="unused"),
        "peertube_db": PeerTubeDbResource(),
    }
    job = build_definitions(resources, MIGRATION).resolve_job_def("schema_job")
    result = job.execute_in_process(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("Refusing recon_schema (Step 3: schema migration): ")
    assert "throwaway Dagster instance" in message and "set DAGSTER_HOME" in message
    assert "never" not in message.split("What to do")[0]
