"""The operator's console for the project's jobs: the project's messages first, and once.

Dagster's default console logger prints every failure with the framework's stack trace, and
the run's failure repeats the step's (a gate refusal: ~80 lines around a 5-line message).
This logger, registered as `console` (Definitions `loggers`) and chosen by default in the
run config of the project's jobs (defs/jobs.py), prints instead:

- the run's start and end, each asset materialized, each gate (check) with its verdict and
  description, the project's own log lines (progress, summaries, gates open / closed);
- a failed step as the project's text: a refusal, abort or failed gate (`dg.Failure`, a
  failed blocking check) by its description; a configuration error raised while starting
  a resource by its own message; anything else (a bug) by its class and message, and, at
  log_level DEBUG only, its stack trace (always kept in the run's event log, in the UI);
- a failed run as one line, without repeating the step's error.

`log_level: DEBUG` (run config `loggers: console: config: log_level: DEBUG`) shows every
Dagster event, as the default console does, plus stack traces.

Dagster applies a logger only to runs whose run config names it ("It's not currently
possible to globally configure the logger for all jobs", Dagster docs): `dagster asset
materialize` and `dg launch --assets` run Dagster's implicit asset job with its default
console; the project's jobs (`dg launch --job J`) default to this one.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import dagster as dg

# Dagster events worth a line at INFO (the rest are the engine's own bookkeeping).
_SHOWN_EVENTS = frozenset(
    {"RUN_START", "RUN_SUCCESS", "RUN_FAILURE", "STEP_FAILURE", "ASSET_MATERIALIZATION",
     "ASSET_CHECK_EVALUATION"}
)
_RUN_EVENTS = frozenset({"RUN_START", "RUN_SUCCESS", "RUN_FAILURE"})
# Errors whose message is the whole story: the project's refusals and aborts, failed gates.
_OPERATOR_ERRORS = frozenset({"Failure", "DagsterAssetCheckFailedError", "ConfigError"})


def _error_text(error: Any, *, with_stack: bool) -> str:
    """An error's message (its innermost cause's, for a user-code wrapper), maybe with the
    stack trace."""
    inner = error
    while inner.cause is not None and inner.cls_name in (
        "DagsterExecutionStepExecutionError", "DagsterResourceFunctionError",
        "DagsterUserCodeExecutionError",
    ):
        inner = inner.cause
    message = inner.message.strip()
    if inner.cls_name in _OPERATOR_ERRORS:
        # "dagster._core.definitions.events.Failure: Refusing …" → "Refusing …"
        _, sep, rest = message.partition(f"{inner.cls_name}: ")
        return rest.strip() if sep else message
    if with_stack:
        return error.to_string().rstrip()
    return f"{message}\n  (the stack trace is in the run's event log, or rerun with " \
        "log_level DEBUG)"


def _kind(event: Any) -> str:
    """The event's type by its current name (a run's events may carry the older
    PIPELINE_START / PIPELINE_SUCCESS / PIPELINE_FAILURE)."""
    return str(event.event_type_value).replace("PIPELINE_", "RUN_", 1)


def _event_text(event: Any, orig_message: str, *, debug: bool) -> str:
    kind = _kind(event)
    if kind == "STEP_FAILURE":
        data = event.step_failure_data
        user = data.user_failure_data if data is not None else None
        if user is not None and user.description:
            if debug and data.error is not None:
                return f"{user.description}\n{data.error.to_string().rstrip()}"
            return user.description
        if data is not None and data.error is not None:
            return _error_text(data.error, with_stack=debug)
        return orig_message
    if kind == "RUN_FAILURE":
        data = event.event_specific_data
        error = getattr(data, "error", None)
        first_step = getattr(data, "first_step_failure_event", None)
        if error is not None and first_step is None and not _is_step_repeat(orig_message):
            return f"{orig_message}\n{_error_text(error, with_stack=debug)}"
        return orig_message
    if kind == "ASSET_CHECK_EVALUATION":
        evaluation = event.asset_check_evaluation_data
        verdict = "PASSED" if evaluation.passed else "FAILED"
        text = f"gate {evaluation.asset_key.to_user_string()}:{evaluation.check_name} {verdict}"
        return f"{text}: {evaluation.description}" if evaluation.description else text
    return orig_message


def _is_step_repeat(message: str) -> bool:
    return "Steps failed" in message


class OperatorFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL step - text`, the text as described in the module docstring."""

    def __init__(self, *, debug: bool) -> None:
        super().__init__()
        self._debug = debug

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        orig = meta.get("orig_message", record.getMessage())
        text = _event_text(event, orig, debug=self._debug) if event is not None else orig
        if event is not None and _kind(event) in _RUN_EVENTS:
            # The run's verdict by Dagster's own name, which logs and cron mails are searched for.
            text = f"{_kind(event)} - {text}"
        where = meta.get("step_key") or meta.get("job_name") or ""
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname:<7} {where} - {text}"


class OperatorFilter(logging.Filter):
    """The project's lines at or above the level; of Dagster's events, those an operator
    acts on (all of them at DEBUG)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if self._level <= logging.DEBUG or event is None or record.levelno >= self._level:
            return record.levelno >= self._level
        # Dagster logs the events an operator acts on at DEBUG: shown at INFO, not above
        # (the rehearsal's runner asks for CRITICAL and says each step itself).
        return self._level <= logging.INFO and _kind(event) in _SHOWN_EVENTS


class _StderrHandler(logging.StreamHandler):
    """sys.stderr as it is at each line (pytest and the CLI swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO", is_required=False,
                              description="INFO: the operator's view; DEBUG: every event "
                              "and stack traces"),
        "name": dg.Field(str, default_value="dagster", is_required=False),
    },
    description="The operator's console: the project's messages, once, without the "
    "framework's stack traces (recon_domains.defs.console).",
)
def operator_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    level = logging.getLevelName(str(config["log_level"]).upper())
    level = level if isinstance(level, int) else logging.INFO
    logger = logging.Logger(config["name"], level=logging.DEBUG)
    handler = _StderrHandler()
    handler.setFormatter(OperatorFormatter(debug=level <= logging.DEBUG))
    handler.addFilter(OperatorFilter(level))
    logger.addHandler(handler)
    return logger


LOGGERS = {"console": operator_console}
# The project's jobs choose it by default (an operator's run config may still set it).
DEFAULT_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
