"""The runbook as one table: every step of the migration, in order, with its gate.

Each row is one asset of the Dagster graph: the operator's label for it, its gate (a
blocking asset check), the steps whose gates must be open before it runs, what to do when
its own gate refuses a later step, its job, its UI group, its partitions and its
blast-radius tier. Everything else is derived from this table: the assets' `deps`, the
in-asset guards (`recon_domains.defs.gates.require_gates`), the jobs, the rehearsal's order
and the README's table (a test compares them).

Plain core: no Dagster import.
"""

from __future__ import annotations

from dataclasses import dataclass

from recon_domains.taxonomy import CATEGORY_ID_RANGE, DOMAIN_BY_ID

# Blast-radius tiers (runbook deploy-blast-radius), mildest first.
READ_ONLY = "read-only"
RECON_DB_REVERSIBLE = "recon-db-reversible"
EXTERNAL_WRITE = "external-write"
DESTRUCTIVE = "destructive"
TIERS = (READ_ONLY, RECON_DB_REVERSIBLE, EXTERNAL_WRITE, DESTRUCTIVE)


@dataclass(frozen=True)
class Partition:
    """One partition of a step: one run each, in order."""

    key: str
    label: str  # the operator's words for this run
    limit: int | None = None  # how many items one run takes (None: all there are)
    dry_run: bool = False  # writes nothing, so it needs no gate


@dataclass(frozen=True)
class Gate:
    """An upstream gate: an asset check (of one partition, for a partitioned asset)."""

    asset: str
    check: str
    partition: str | None = None
    # What the operator should do when this gate refuses (named in the refusal).
    remedy: str = ""

    @property
    def label(self) -> str:
        """asset[partition]:check, as the refusals, logs and reports name it."""
        where = f"[{self.partition}]" if self.partition else ""
        return f"{self.asset}{where}:{self.check}"


@dataclass(frozen=True)
class Step:
    """One row of the runbook: an asset and its gate."""

    label: str  # the operator's words, e.g. "Step 4: pass 1"
    asset: str
    check: str | None  # its gate; None for a step nothing waits on
    job: str
    group: str  # UI group; the names sort in runbook order
    tier: str
    # Steps whose gates must be open before this one runs (a partitioned step: its last
    # partition, which needs all before it).
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # upstream lineage that gates nothing
    remedy: str = ""  # what to do when this step's gate refuses; {partition} is filled in
    partitions: tuple[Partition, ...] = ()  # in order: partition N needs N-1 and its gate

    @property
    def deps(self) -> tuple[str, ...]:
        """The asset keys upstream of this one."""
        return (*self.requires, *self.after)

    @property
    def writes(self) -> bool:
        return self.tier != READ_ONLY

    @property
    def partition_keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.partitions)

    def partition(self, key: str) -> Partition:
        for p in self.partitions:
            if p.key == key:
                return p
        raise KeyError(f"{self.asset} has no partition {key!r}; it has {self.partition_keys}")

    def gate(self, partition: str | None = None) -> Gate:
        """This step's gate (of `partition`; default: the last, which needs every one)."""
        assert self.check is not None, f"{self.asset} has no gate"
        if self.partitions and partition is None:
            partition = self.partitions[-1].key
        remedy = self.remedy.format(partition=partition)
        return Gate(self.asset, self.check, partition, remedy)

    def refusal_name(self, partition: str | None = None) -> str:
        """How a refusal names this step: "pass1_assignments (Step 4: pass 1)"."""
        if partition is None:
            return f"{self.asset} ({self.label})"
        return f"{self.asset} {partition} ({self.partition(partition).label})"


@dataclass(frozen=True)
class Run:
    """One run of the runbook as the rehearsal and cron make it: a job, maybe a partition."""

    label: str
    job: str
    partition: str | None = None


_PREDEPLOY = ("recon_db_backup", "peertube_db_backup", "offsite_concept_backup", "recon_idle")

STEPS: tuple[Step, ...] = (
    Step(
        "Pre-deploy 1",
        "recon_db_backup",
        "backup_verified",
        "predeploy_job",
        "step0_predeploy",
        READ_ONLY,
        remedy="run predeploy_job (or materialize recon_db_backup) and fix what "
        "backup_verified reports",
    ),
    Step(
        "Pre-deploy 2",
        "peertube_db_backup",
        "dump_verified",
        "predeploy_job",
        "step0_predeploy",
        READ_ONLY,
        remedy="run predeploy_job (or materialize peertube_db_backup); check PEERTUBE_DB_DSN / "
        "PEERTUBE_DB_DUMP_COMMAND",
    ),
    Step(
        "Pre-deploy 3",
        "offsite_concept_backup",
        "backup_fresh",
        "predeploy_job",
        "step0_predeploy",
        READ_ONLY,
        remedy="rsync the concepts off-site, then materialize offsite_concept_backup again",
    ),
    Step(
        "Pre-deploy 4",
        "recon_idle",
        "no_active_workers",
        "predeploy_job",
        "step0_predeploy",
        READ_ONLY,
        remedy="wait until RECON's workers are idle (no extracting/enriching/embedding "
        "documents), then materialize recon_idle again",
    ),
    Step(
        "Steps 1–2: plugin",
        "peertube_plugin",
        "categories_registered",
        "plugin_job",
        "step1_plugin",
        EXTERNAL_WRITE,
        # Only an install writes, so only an install waits for the backups.
        requires=_PREDEPLOY,
        remedy="install the plugin (set PEERTUBE_PLUGIN_PATH and run plugin_job, or install "
        "it in PeerTube's admin UI and run plugin_job), until all "
        f"{len(DOMAIN_BY_ID)} categories {CATEGORY_ID_RANGE} show",
    ),
    Step(
        "Step 3: schema migration",
        "recon_schema",
        "schema_verified",
        "schema_job",
        "step3_schema",
        RECON_DB_REVERSIBLE,
        requires=(*_PREDEPLOY, "peertube_plugin"),
        remedy="run schema_job and fix what schema_verified reports (Rollback: 'Schema "
        "migration revert', or restore the pre-deploy backup)",
    ),
    Step(
        "Step 4: pass-1 dry run",
        "pass1_dry_run",
        "distribution_within_benchmarks",
        "pass1_dry_run_job",
        "step4_assignment",
        READ_ONLY,
        requires=("recon_schema",),
        remedy="halt and investigate the deviation (see the check's expected-vs-actual "
        "table); re-run pass1_dry_run_job once it is explained (benchmarks: RECON_BENCHMARK_*)",
    ),
    Step(
        "Step 4: pass 1",
        "pass1_assignments",
        "assigned_spot_check",
        "pass1_job",
        "step4_assignment",
        RECON_DB_REVERSIBLE,
        requires=("recon_schema", "pass1_dry_run"),
        remedy="inspect the disagreeing samples; if assignments are wrong, clear them "
        "(Rollback: 'Clear wrong backfill assignments') and re-run pass1_job",
    ),
    Step(
        "Step 4: tiebreaker",
        "tiebreaker_assignments",
        "tiebreaker_spot_check",
        "tiebreaker_job",
        "step4_assignment",
        RECON_DB_REVERSIBLE,
        requires=("recon_schema", "pass1_assignments"),
        remedy="inspect the disagreeing samples; if wrong, reset tiebreaker results to "
        "tied_pass_1 (Rollback) and re-run tiebreaker_job",
    ),
    Step(
        "Step 5: push plan (dry run: confirm counts)",
        "push_plan",
        None,
        "push_plan_job",
        "step5_push",
        READ_ONLY,
        after=("tiebreaker_assignments",),
    ),
    Step(
        "Step 5: push",
        "peertube_category_push",
        "stage_verified",
        "push_job",
        "step5_push",
        EXTERNAL_WRITE,
        requires=("tiebreaker_assignments", "peertube_plugin"),
        after=("push_plan",),
        remedy="push {partition} (push_job --partition {partition}) and pass its "
        "stage_verified check first; fix what the check reports",
        partitions=(
            Partition("stage-1", "Step 5: push stage 1"),
            Partition("stage-2", "Step 5: push stage 2"),
            Partition("stage-3", "Step 5: push stage 3"),
        ),
    ),
    Step(
        "Step 6: verify",
        "rollout_verification",
        "peertube_matches_recon",
        "verify_job",
        "step6_verify",
        READ_ONLY,
        requires=("peertube_category_push",),
        remedy="run verify_job after stage-3 and fix what peertube_matches_recon reports",
    ),
    Step(
        "Step 7: reprocess",
        "reprocess_batch",
        "requeued",
        "reprocess_job",
        "step7_reprocess",
        DESTRUCTIVE,
        requires=("rollout_verification", "offsite_concept_backup", "recon_idle"),
        remedy="run reprocess_job for {partition} and let its requeued check pass (for a "
        "batch: wait until RECON has picked the documents up)",
        partitions=(
            Partition("dry-run", "Step 7: reprocess dry run", dry_run=True),
            Partition("batch-10", "Step 7: reprocess batch of 10", limit=10),
            Partition("batch-100", "Step 7: reprocess batch of 100", limit=100),
            Partition("all", "Step 7: reprocess the rest"),
        ),
    ),
)

# After the migration: the steady state (SPEC §9) runs only once the last gate passed.
STEADY_STATE = Step(
    "steady state",
    "steady_state_assignment",
    None,
    "steady_state_assignment",
    "",
    EXTERNAL_WRITE,
    requires=("rollout_verification",),
)

# After the migration too: the scheduled re-assignment (reassignment_job: the dry run, its
# gate, the apply and its verification in one run). Not runbook steps: in none of the
# migration's tables or runs, but gated the same way.
REASSIGNMENT_GROUP = "step9_reassignment"  # sorts after the migration's groups in the UI
AFTER_MIGRATION: tuple[Step, ...] = (
    Step(
        "re-assignment dry run",
        "reassignment_dry_run",
        "reassignment_within_threshold",
        "reassignment_job",
        REASSIGNMENT_GROUP,
        READ_ONLY,
        requires=("rollout_verification",),
        remedy="look at reassignment_dry_run's changes by domain pair and its sample: a mass "
        "change means RECON's model or taxonomy changed; if the changes are right, raise "
        "RECON_REASSIGN_MAX_CHANGE_PCT for one run, then run reassignment_job again",
    ),
    Step(
        "re-assignment",
        "reassignment",
        "reassignment_verified",
        "reassignment_job",
        REASSIGNMENT_GROUP,
        EXTERNAL_WRITE,
        requires=("reassignment_dry_run", "rollout_verification"),
        remedy="fix what reassignment_verified reports (peertube_drift_check lists videos "
        "changed in PeerTube), then run reassignment_job again",
    ),
)

_BY_NAME = {s.asset: s for s in (*STEPS, STEADY_STATE, *AFTER_MIGRATION)}


def step(name: str) -> Step:
    """The row of an asset (or of the steady state's job)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a step of the runbook") from None


def required_gates(name: str, partition: str | None = None) -> tuple[Gate, ...]:
    """The gates that must be open before `name` (of `partition`) runs: the previous
    partition's first (its nearest prerequisite), then every required step's. A dry-run
    partition needs none."""
    s = step(name)
    if partition is not None and s.partition(partition).dry_run:
        return ()
    previous = previous_partition(name, partition)
    own = (s.gate(previous),) if previous is not None else ()
    return (*own, *(step(r).gate() for r in s.requires))


def required_partitions(name: str, partition: str | None = None) -> tuple[Gate, ...]:
    """The gates of partitions that must also be *materialized* before `name` runs (the
    previous partition; a required partitioned step's last one)."""
    return tuple(g for g in required_gates(name, partition) if g.partition is not None)


def previous_partition(name: str, partition: str | None) -> str | None:
    """The partition before `partition` of `name` (None for the first, or unpartitioned)."""
    keys = step(name).partition_keys
    if partition is None or keys.index(partition) == 0:
        return None
    return keys[keys.index(partition) - 1]


def jobs() -> dict[str, tuple[Step, ...]]:
    """Each job of the migration, in runbook order, with the steps it materializes."""
    out: dict[str, tuple[Step, ...]] = {}
    for s in STEPS:
        out[s.job] = (*out.get(s.job, ()), s)
    return out


def job_label(steps: tuple[Step, ...]) -> str:
    """One label for a job's steps: its step's ("Step 3: schema migration"), or for steps
    numbered alike the span ("Pre-deploy 1" … "Pre-deploy 4": "Pre-deploy 1–4")."""
    if len(steps) == 1:
        return steps[0].label
    return f"{steps[0].label}–{steps[-1].label.rpartition(' ')[2]}"


def runs() -> tuple[Run, ...]:
    """The whole migration as the operator runs it: each job once, a partitioned one once
    per partition, in runbook order."""
    out: list[Run] = []
    for job, steps in jobs().items():
        partitions = steps[0].partitions
        if partitions:
            out += [Run(p.label, job, p.key) for p in partitions]
        else:
            out.append(Run(job_label(steps), job))
    return tuple(out)
