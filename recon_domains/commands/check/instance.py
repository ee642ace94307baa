"""The check's lines on where the settings come from (`.env`) and on the Dagster instance in
DAGSTER_HOME, judged from its folder and its dagster.yaml read as files: the plain core
never imports dagster."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from recon_domains.commands.check.report import Report

if TYPE_CHECKING:
    from recon_domains.cli import EnvFile

DAGSTER_TEMP_HOME_PREFIX = ".tmp_dagster_home_"  # what `dagster dev` makes without one


def env_file_line(report: Report, env_file: EnvFile | None, cwd: Path) -> None:
    """Where the settings came from: the `.env` read (and its mode), or none."""
    path = cwd / ".env"
    if env_file is None:
        if path.is_file():
            report.warn(".env", f"{path} was not read (recon-domains was called from Python "
                        "with arguments, not as the command)")
        else:
            report.ok(".env", f"none in {cwd}: the settings come from the environment alone")
        return
    text = f"{env_file.path}: {len(env_file.loaded)} variable(s) set from it"
    if env_file.kept:
        text += f"; {', '.join(env_file.kept)} also set in the environment, which wins"
    if env_file.path.stat().st_mode & 0o077:
        report.warn(".env", f"{text}; readable by other users, and it holds the settings "
                    f"(PEERTUBE_PASSWORD among them): chmod 600 {env_file.path}")
    else:
        report.ok(".env", text)


def dagster_home(report: Report, env: Mapping[str, str]) -> None:
    """DAGSTER_HOME: set, absolute, persistent, writable, holding a usable dagster.yaml."""
    subject = "DAGSTER_HOME"
    value = (env.get(subject) or "").strip()
    if not value:
        report.fail(subject, "not set: Dagster would use a throwaway instance, so every gate "
                    "would look never passed and the jobs refuse. Set DAGSTER_HOME to a "
                    "persistent folder holding a copy of the repository's dagster.yaml "
                    "(`make ui` makes ./dagster_home)")
        return
    home = Path(value)
    fix = f"mkdir -p {home} && cp dagster.yaml {home}/"
    if not home.is_absolute():
        report.fail(subject, f"{value} is not an absolute path, which Dagster requires: set "
                    "it to the folder's full path")
    elif home.name.startswith(DAGSTER_TEMP_HOME_PREFIX):
        report.fail(subject, f"{home} is a temporary instance `dagster dev` made; it is "
                    "deleted when dagster dev stops: set DAGSTER_HOME to a persistent folder")
    elif not home.is_dir():
        what = "is not a folder" if home.exists() else "does not exist"
        report.fail(subject, f"{home} {what}: {fix}")
    elif not os.access(home, os.W_OK | os.X_OK):
        report.fail(subject, f"{home} is not writable by this user: Dagster records every "
                    "run and gate result there")
    elif not (home / "dagster.yaml").is_file():
        report.fail(subject, f"{home} holds no dagster.yaml: cp dagster.yaml {home}/ (its "
                    "concurrency pool lets only one writing step run at a time)")
    else:
        _dagster_yaml(report, home, env)


def _dagster_yaml(report: Report, home: Path, env: Mapping[str, str]) -> None:
    subject = "DAGSTER_HOME"
    path = home / "dagster.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        report.fail(subject, f"{path} cannot be read as YAML ({exc}): copy the repository's "
                    "dagster.yaml there again")
        return
    if not isinstance(config, dict):
        report.fail(subject, f"{path} is not a YAML mapping: copy the repository's "
                    "dagster.yaml there again")
        return
    if any("InMemory" in text for text in _strings(config)):
        report.fail(subject, f"{path} configures in-memory storage: nothing would persist, "
                    "so the gates could not be read back. Remove it (SQLite files under "
                    "DAGSTER_HOME are the default)")
        return
    unset = [name for name in _env_references(config) if not (env.get(name) or "").strip()]
    if unset:
        report.fail(subject, f"{path} reads {', '.join(unset)} from the environment, and "
                    f"{'it is' if len(unset) == 1 else 'they are'} not set: set "
                    f"{'it' if len(unset) == 1 else 'them'} (see dagster.postgres.yaml)")
        return
    storage = config.get("storage")
    postgres = isinstance(storage, dict) and "postgres" in storage
    kind = "PostgreSQL storage" if postgres else "SQLite files in it"
    if not postgres:
        history = "runs recorded" if (home / "history" / "runs.db").is_file() else "no run yet"
        kind += f", {history}"
    pools = (config.get("concurrency") or {}).get("pools") or {}
    if pools.get("default_limit") != 1:
        report.warn(subject, f"{home}: a persistent instance ({kind}), but its dagster.yaml "
                    "sets no writers' limit (concurrency: pools: default_limit: 1), so two "
                    "runs could write at once: copy the repository's dagster.yaml there")
        return
    report.ok(subject, f"{home}: a persistent instance ({kind}); dagster.yaml lets one "
              "writing step run at a time")


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed YAML document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _env_references(value: Any) -> list[str]:
    """The variables a dagster.yaml reads (`{env: NAME}`), in order."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return [value["env"]]
        return [name for item in value.values() for name in _env_references(item)]
    if isinstance(value, list):
        return [name for item in value for name in _env_references(item)]
    return []
