"""The Definitions as shipped: every asset key, check, partition and job of the contract
(issue 4's table), blast-radius tags, the writers' pool, and the instance config files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from recon_domains.defs.common import TIER_TAG, TIERS, WRITES_POOL
from recon_domains.defs.resources import resources_from_settings
from recon_domains.settings import Settings

REPO = Path(__file__).resolve().parents[2]

# asset key -> (group, blocking check, partitions or None, tier)
CONTRACT: dict[str, tuple[str, str | None, tuple[str, ...] | None, str]] = {
    "recon_db_backup": ("predeploy", "backup_verified", None, "read-only"),
    "peertube_db_backup": ("predeploy", "dump_verified", None, "read-only"),
    "offsite_concept_backup": ("predeploy", "backup_fresh", None, "read-only"),
    "recon_idle": ("predeploy", "no_active_workers", None, "read-only"),
    "peertube_plugin": ("plugin", "categories_registered", None, "external-write"),
    "recon_schema": ("schema", "schema_verified", None, "recon-db-reversible"),
    "pass1_dry_run": ("assignment", "distribution_within_benchmarks", None, "read-only"),
    "pass1_assignments": ("assignment", "assigned_spot_check", None, "recon-db-reversible"),
    "tiebreaker_assignments": (
        "assignment",
        "tiebreaker_spot_check",
        None,
        "recon-db-reversible",
    ),
    "push_plan": ("push", None, None, "read-only"),
    "peertube_category_push": (
        "push",
        "stage_verified",
        ("stage-1", "stage-2", "stage-3"),
        "external-write",
    ),
    "rollout_verification": ("verify", "peertube_matches_recon", None, "read-only"),
    "reprocess_batch": (
        "reprocess",
        "requeued",
        ("dry-run", "batch-10", "batch-100", "all"),
        "destructive",
    ),
}
WRITERS = {
    "peertube_plugin",
    "recon_schema",
    "pass1_assignments",
    "tiebreaker_assignments",
    "peertube_category_push",
    "reprocess_batch",
}
JOBS = {
    "predeploy_job": {
        "recon_db_backup",
        "peertube_db_backup",
        "offsite_concept_backup",
        "recon_idle",
    },
    "plugin_job": {"peertube_plugin"},
    "schema_job": {"recon_schema"},
    "pass1_dry_run_job": {"pass1_dry_run"},
    "pass1_job": {"pass1_assignments"},
    "tiebreaker_job": {"tiebreaker_assignments"},
    "push_plan_job": {"push_plan"},
    "push_job": {"peertube_category_push"},
    "verify_job": {"rollout_verification"},
    "reprocess_job": {"reprocess_batch"},
}


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    from recon_domains.definitions import defs

    return defs().get_repository_def()


def test_every_contract_asset_with_group_tier_and_partitions(repo):
    graph = repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(CONTRACT) <= keys
    for key, (group, _check, partitions, tier) in CONTRACT.items():
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == group, key
        assert node.tags.get(TIER_TAG) == tier, key
        if partitions is None:
            assert node.partitions_def is None, key
        else:
            assert tuple(node.partitions_def.get_partition_keys()) == partitions, key
        assert "Runbook" in (node.description or ""), f"{key}: description cites the runbook"


def test_every_asset_has_a_tier_tag(repo):
    for key in repo.asset_graph.get_all_asset_keys():
        assert repo.asset_graph.get(key).tags.get(TIER_TAG) in TIERS, key


def test_every_gate_is_a_blocking_check_with_the_contract_partitions(repo):
    graph = repo.asset_graph
    found = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for key, (_group, check, partitions, _tier) in CONTRACT.items():
        if check is None:
            continue
        assert (key, check) in found
        spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(key), check))
        assert spec.blocking, f"{key}:{check} must be blocking"
        if partitions is None:
            assert spec.partitions_def is None
        else:
            assert tuple(spec.partitions_def.get_partition_keys()) == partitions


def test_writers_share_one_pool_and_readers_do_not(repo):
    for key in CONTRACT:
        assets_def = repo.assets_defs_by_key[dg.AssetKey(key)]
        pools = {op.pool for op in assets_def.node_def.iterate_op_defs()}
        assert pools == ({WRITES_POOL} if key in WRITERS else {None}), key


def test_jobs_bundle_each_step_with_its_gate_checks(repo):
    for name, assets in JOBS.items():
        nodes = {n.name for n in repo.get_job(name).graph.nodes}
        expected = set(assets) | {f"{a}_{CONTRACT[a][1]}" for a in assets if CONTRACT[a][1]}
        assert nodes == expected, name
    assert repo.get_job("push_job").partitions_def is not None
    assert repo.get_job("reprocess_job").partitions_def is not None


def resources_from_env(env: dict[str, str]) -> dict[str, dg.ConfigurableResource]:
    return resources_from_settings(Settings.from_env(env))


def test_resources_from_env_keep_the_password_an_env_var():
    res = resources_from_env({"RECON_STREAM_SOURCE": "video.example", "RECON_IS_COPY": "1"})
    # Secrets and required settings stay EnvVars: resolved at run start, never in the UI.
    assert isinstance(res["peertube"].password, dg.EnvVar)
    assert res["peertube"].password == "PEERTUBE_PASSWORD"
    assert isinstance(res["peertube_db"].dsn, dg.EnvVar)
    assert isinstance(res["recon"].db_path, dg.EnvVar)
    assert res["recon"].stream_source == "video.example"
    assert res["recon"].is_copy is True


def test_resources_from_env_review_url():
    assert resources_from_env({})["recon"].review_url == "http://127.0.0.1:8765/"
    res = resources_from_env({"RECON_REVIEW_URL": "http://review.example:9999/"})
    assert res["recon"].review_url == "http://review.example:9999/"


def test_shipped_instance_config():
    cfg = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert cfg["concurrency"]["pools"] == {"granularity": "op", "default_limit": 1}
    assert cfg["telemetry"] == {"enabled": False}
    assert "storage" not in cfg  # SQLite under $DAGSTER_HOME by default
    pg = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    assert set(pg["storage"]["postgres"]["postgres_db"]) >= {"hostname", "username", "db_name"}
    assert pg["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_instance_reads_pool_limit(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.instance_for_test(
        temp_dir=str(tmp_path), overrides=yaml.safe_load((REPO / "dagster.yaml").read_text())
    ) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity.value == "op"


def test_dagster_definitions_validate(tmp_path):
    """What CI runs: the workspace loads in a fresh process with the shipped dagster.yaml."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All code locations passed validation" in proc.stdout + proc.stderr
