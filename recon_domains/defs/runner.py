"""Run the project's jobs in this process, for callers that do not speak Dagster (the
rehearsal, the benchmarks): job J, maybe partition P, on the persistent instance in one
folder; back come plain outcomes — each gate's verdict and the failure's text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import dagster as dg

# Dagster's console log at CRITICAL (nothing of ours logs there): the caller reports what
# matters — each gate's verdict, a failure's own message — once, without the framework's
# stack traces; every event is still in the instance for the UI.
_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class GateVerdict:
    """One gate evaluated by a run."""

    gate: str  # asset[partition]:check
    passed: bool
    description: str


@dataclass(frozen=True)
class RunOutcome:
    """What one run did: its gates' verdicts, and why it failed when it did."""

    success: bool
    gates: tuple[GateVerdict, ...]
    failure: str | None  # the failed step's message (a refusal, an abort), if any
    seconds: float


class JobRunner:
    """The jobs of `definitions`, run against the instance of `dagster_home` (a folder with
    a dagster.yaml), whatever DAGSTER_HOME says. Close it (or use it as a context manager)."""

    def __init__(self, definitions: dg.Definitions, dagster_home: str | Path) -> None:
        self._definitions = definitions
        self._instance = dg.DagsterInstance.from_config(str(dagster_home))

    def run(self, job: str, partition: str | None = None, *, confirm: bool = False) -> RunOutcome:
        """Run `job` (of `partition`); `confirm`: set `confirm: true` on every op's config
        (the rollback jobs act only then)."""
        job_def = self._definitions.resolve_job_def(job)
        config: dict[str, Any] = dict(_QUIET)
        if confirm:
            config["ops"] = {n.name: {"config": {"confirm": True}} for n in job_def.graph.nodes}
        started = time.monotonic()
        result = job_def.execute_in_process(
            run_config=config, instance=self._instance, partition_key=partition,
            raise_on_error=False,
        )
        return RunOutcome(
            result.success, _gates(result), _failure(result), time.monotonic() - started
        )

    def close(self) -> None:
        self._instance.dispose()

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _gates(result: dg.ExecuteInProcessResult) -> tuple[GateVerdict, ...]:
    out = []
    for evaluation in result.get_asset_check_evaluations():
        partition = getattr(evaluation, "partition", None)
        where = f"[{partition}]" if partition else ""
        gate = f"{evaluation.asset_key.to_user_string()}{where}:{evaluation.check_name}"
        text = evaluation.description or ("passed" if evaluation.passed else "failed")
        out.append(GateVerdict(gate, evaluation.passed, text))
    return tuple(out)


def _failure(result: dg.ExecuteInProcessResult) -> str | None:
    if result.success:
        return None
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            return (error.message or "").strip() if error else event.message or "step failed"
    return "the run failed"
