"""The Definitions as shipped: every asset key, check, partition and job of the contract
(issue 4's table; the groups renamed by issue 12 to sort in runbook order), blast-radius
tags, the writers' pool, the runbook table they derive from, the README's copy of it, and
the instance config files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from recon_domains import runbook
from recon_domains.defs.common import TIER_TAG, WRITES_POOL
from recon_domains.defs.resources import resources_from_settings
from recon_domains.runbook import TIERS
from recon_domains.settings import ConfigError, Settings

REPO = Path(__file__).resolve().parents[2]

# asset key -> (group, blocking check, partitions or None, tier), in runbook order
CONTRACT: dict[str, tuple[str, str | None, tuple[str, ...] | None, str]] = {
    "recon_db_backup": ("step0_predeploy", "backup_verified", None, "read-only"),
    "peertube_db_backup": ("step0_predeploy", "dump_verified", None, "read-only"),
    "offsite_concept_backup": ("step0_predeploy", "backup_fresh", None, "read-only"),
    "recon_idle": ("step0_predeploy", "no_active_workers", None, "read-only"),
    "peertube_plugin": ("step1_plugin", "categories_registered", None, "external-write"),
    "recon_schema": ("step3_schema", "schema_verified", None, "recon-db-reversible"),
    "pass1_dry_run": ("step4_assignment", "distribution_within_benchmarks", None, "read-only"),
    "pass1_assignments": ("step4_assignment", "assigned_spot_check", None, "recon-db-reversible"),
    "tiebreaker_assignments": (
        "step4_assignment",
        "tiebreaker_spot_check",
        None,
        "recon-db-reversible",
    ),
    "push_plan": ("step5_push", None, None, "read-only"),
    "peertube_category_push": (
        "step5_push",
        "stage_verified",
        ("stage-1", "stage-2", "stage-3"),
        "external-write",
    ),
    "rollout_verification": ("step6_verify", "peertube_matches_recon", None, "read-only"),
    "reprocess_batch": (
        "step7_reprocess",
        "requeued",
        ("dry-run", "batch-10", "batch-100", "all"),
        "destructive",
    ),
}
# After the migration: the scheduled re-assignment (issue 15), its own job and group.
AFTER_MIGRATION: dict[str, tuple[str, str, str]] = {
    "reassignment_dry_run": ("step9_reassignment", "reassignment_within_threshold", "read-only"),
    "reassignment": ("step9_reassignment", "reassignment_verified", "external-write"),
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


# The runbook as the operator runs it: (job, partition), in order.
RUNS = (
    ("predeploy_job", None),
    ("plugin_job", None),
    ("schema_job", None),
    ("pass1_dry_run_job", None),
    ("pass1_job", None),
    ("tiebreaker_job", None),
    ("push_plan_job", None),
    ("push_job", "stage-1"),
    ("push_job", "stage-2"),
    ("push_job", "stage-3"),
    ("verify_job", None),
    ("reprocess_job", "dry-run"),
    ("reprocess_job", "batch-10"),
    ("reprocess_job", "batch-100"),
    ("reprocess_job", "all"),
)


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


def test_every_job_runs_its_steps_in_the_run_process(repo):
    """One process per run, as the tests and the rehearsal run them (execute_in_process):
    not Dagster's default of a new process per step, each importing the definitions again."""
    jobs = repo.get_all_jobs()
    assert {"predeploy_job", "steady_state_assignment", "remove_feature"} <= {
        j.name for j in jobs
    }
    assert {j.name: j.executor_def.name for j in jobs} == {j.name: "in_process" for j in jobs}


def test_jobs_bundle_each_step_with_its_gate_checks(repo):
    for name, assets in JOBS.items():
        nodes = {n.name for n in repo.get_job(name).graph.nodes}
        expected = set(assets) | {f"{a}_{CONTRACT[a][1]}" for a in assets if CONTRACT[a][1]}
        assert nodes == expected, name
    assert repo.get_job("push_job").partitions_def is not None
    assert repo.get_job("reprocess_job").partitions_def is not None


def test_the_runbook_table_is_the_contract():
    rows = {
        s.asset: (s.group, s.check, s.partition_keys or None, s.tier) for s in runbook.STEPS
    }
    assert list(rows) == list(CONTRACT)  # same steps, same order
    assert rows == CONTRACT
    assert {job: {s.asset for s in steps} for job, steps in runbook.jobs().items()} == JOBS
    assert [(r.job, r.partition) for r in runbook.runs()] == list(RUNS)
    assert runbook.runs()[0].label == "Pre-deploy 1–4"
    assert {s.asset for s in runbook.STEPS if s.writes} == WRITERS


def test_groups_sort_in_runbook_order(repo):
    graph = repo.asset_graph
    in_order = []
    for key in CONTRACT:
        group = graph.get(dg.AssetKey(key)).group_name
        if group not in in_order:
            in_order.append(group)
    in_order += sorted({group for group, _check, _tier in AFTER_MIGRATION.values()})
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert sorted(groups) == in_order  # the UI lists groups alphabetically


def test_the_reassignment_job_gates_its_apply_and_shares_the_writers_pool(repo):
    graph = repo.asset_graph
    for key, (group, check, tier) in AFTER_MIGRATION.items():
        node = graph.get(dg.AssetKey(key))
        assert (node.group_name, node.tags.get(TIER_TAG)) == (group, tier), key
        spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(key), check))
        assert spec.blocking, key
        pools = {op.pool for op in repo.assets_defs_by_key[dg.AssetKey(key)].node_def
                 .iterate_op_defs()}
        assert pools == ({WRITES_POOL} if tier != "read-only" else {None}), key
    nodes = {n.name for n in repo.get_job("reassignment_job").graph.nodes}
    assert nodes == set(AFTER_MIGRATION) | {f"{k}_{v[1]}" for k, v in AFTER_MIGRATION.items()}
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("reassignment")).parent_keys} \
        >= {"reassignment_dry_run", "rollout_verification"}
    assert {g.label for g in runbook.required_gates("reassignment")} == {
        "reassignment_dry_run:reassignment_within_threshold",
        "rollout_verification:peertube_matches_recon",
    }
    schedule = repo.get_schedule_def("reassignment_nightly")
    assert schedule.job_name == "reassignment_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


def readme_runbook_table() -> list[list[str]]:
    """The README's runbook table: each row's cells, code marks stripped."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- runbook:begin -->", 1)[1].split("<!-- runbook:end -->", 1)[0]
    lines = [ln for ln in block.strip().splitlines() if ln.startswith("|")]
    return [[c.strip().replace("`", "") for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_readme_table_is_the_runbook_table():
    expected = [
        [
            s.label,
            s.asset,
            s.group,
            s.check or "—",
            s.job,
            ", ".join(s.partition_keys) or "—",
            s.tier,
        ]
        for s in runbook.STEPS
    ]
    assert readme_runbook_table() == expected


def test_writing_assets_depend_on_the_gates_they_read(repo):
    graph = repo.asset_graph
    # What the guards read and what the graph shows are the same edges.
    for key in CONTRACT:
        parents = {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}
        gated = {g.asset for part in (None, *(CONTRACT[key][2] or ()))
                 for g in runbook.required_gates(key, part)} - {key}
        assert gated <= parents, key
    assert {g.label for g in runbook.required_gates("peertube_category_push", "stage-2")} == {
        "peertube_category_push[stage-1]:stage_verified",
        "tiebreaker_assignments:tiebreaker_spot_check",
        "peertube_plugin:categories_registered",
    }
    assert runbook.required_gates("reprocess_batch", "dry-run") == ()
    assert {g.label for g in runbook.required_gates("reprocess_batch", "batch-10")} == {
        "reprocess_batch[dry-run]:requeued",
        "rollout_verification:peertube_matches_recon",
        "offsite_concept_backup:backup_fresh",
        "recon_idle:no_active_workers",
    }
    assert [g.label for g in runbook.required_gates("rollout_verification")] == [
        "peertube_category_push[stage-3]:stage_verified"
    ]


def resources_from_env(env: dict[str, str]) -> dict[str, dg.ConfigurableResource]:
    return resources_from_settings(Settings.from_env(env))


def test_resources_from_env_keep_the_password_an_env_var():
    res = resources_from_env({"RECON_STREAM_SOURCE": "video.example", "RECON_IS_COPY": "1",
                              "PEERTUBE_PASSWORD": "pw", "RECON_DB_PATH": "/srv/recon.db"})
    # Secrets and required settings stay EnvVars: resolved at run start, never in the UI.
    assert isinstance(res["peertube"].password, dg.EnvVar)
    assert res["peertube"].password == "PEERTUBE_PASSWORD"
    assert isinstance(res["recon"].db_path, dg.EnvVar)
    assert res["recon"].stream_source == "video.example"
    # Unset where the definitions load: no EnvVar (it would fail every run at its start with
    # Dagster's traceback); the step that needs it names it (see test_cli_refusals).
    unset = resources_from_env({"PEERTUBE_URL": "http://127.0.0.1:9"})
    assert unset["peertube"].password == "" and unset["recon"].db_path == ""
    with pytest.raises(ConfigError, match=r"^PEERTUBE_PASSWORD is not set"):
        unset["peertube"].client()
    assert res["recon"].is_copy is True
    # PEERTUBE_DB_DSN is optional: unset, no EnvVar (one would fail every run at its start);
    # set, an EnvVar (it may carry a password).
    assert res["peertube_db"].dsn == ""
    with_dsn = resources_from_env({"PEERTUBE_DB_DSN": "postgresql://pt:secret@db/peertube"})
    assert isinstance(with_dsn["peertube_db"].dsn, dg.EnvVar)
    assert with_dsn["peertube_db"].dsn == "PEERTUBE_DB_DSN"


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


def readme_rollback_confirm_table() -> dict[str, dict]:
    """{job: the confirm run config} of the README's rollback table."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- rollback-confirm:begin -->", 1)[1]
    block = block.split("<!-- rollback-confirm:end -->", 1)[0]
    rows = [ln for ln in block.strip().splitlines() if ln.startswith("|")][2:]
    table = {}
    for row in rows:
        job, config = (c.strip().strip("`") for c in row.strip("|").split("|")[:2])
        table[job] = yaml.safe_load(config)
    return table


def test_readme_confirm_config_of_every_rollback_job_is_accepted_by_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from recon_domains.definitions import build_definitions
    from recon_domains.defs.rollback.jobs import jobs

    # The resources' required variables (only their presence is validated here).
    for name in ("RECON_DB_PATH", "RECON_CONCEPTS_DIR", "PEERTUBE_URL", "PEERTUBE_PASSWORD"):
        monkeypatch.setenv(name, str(tmp_path / name))

    table = readme_rollback_confirm_table()
    assert sorted(table) == sorted(j.name for j in jobs)  # every rollback job, once
    defs = build_definitions()
    for job_name, run_config in table.items():
        job = defs.resolve_job_def(job_name)
        (op_name,) = run_config["ops"]
        assert op_name == job.graph.node_defs[0].name
        assert run_config["ops"][op_name]["config"]["confirm"] is True
        result = dg.validate_run_config(job, run_config)  # raises when the job refuses it
        assert result["ops"][op_name]["config"]["confirm"] is True
    with pytest.raises(dg.DagsterInvalidConfigError):  # the check can fail
        dg.validate_run_config(
            defs.resolve_job_def("rollback_assignments"),
            {"ops": {"rollback_assignments_step": {"config": {"confirm": True, "mode": "x"}}}},
        )
