"""The check's lines: each a verdict (OK, WARN, FAIL), what was checked and what was found,
with the helpers the checks share to say it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SUBJECT_WIDTH = 27  # the longest setting name, PEERTUBE_PUSH_MAX_IN_FLIGHT


@dataclass(frozen=True)
class Line:
    """One verdict: what was checked, and what was found (with what to do)."""

    verdict: str  # OK, WARN or FAIL
    subject: str  # a setting's name, or what was checked (plugin, categories, …)
    text: str

    def render(self) -> str:
        return f"{self.verdict:<4}  {self.subject:<{SUBJECT_WIDTH}} {self.text}"


@dataclass
class Report:
    """The lines so far; each is scrubbed of `secrets` and handed to `echo` as it comes."""

    secrets: tuple[str, ...] = ()
    echo: Callable[[Line], None] | None = None
    lines: list[Line] = field(default_factory=list)

    def add(self, verdict: str, subject: str, text: str) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        line = Line(verdict, subject, text)
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def ok(self, subject: str, text: str) -> None:
        self.add(OK, subject, text)

    def warn(self, subject: str, text: str) -> None:
        self.add(WARN, subject, text)

    def fail(self, subject: str, text: str) -> None:
        self.add(FAIL, subject, text)

    @property
    def failed(self) -> bool:
        return any(line.verdict == FAIL for line in self.lines)

    def summary(self) -> str:
        counts = {v: sum(line.verdict == v for line in self.lines) for v in (OK, WARN, FAIL)}
        text = f"{counts[OK]} OK, {counts[WARN]} WARN, {counts[FAIL]} FAIL"
        if counts[FAIL]:
            return text + ": fix each FAIL line, then run `recon-domains check` again (exit 3)"
        return text


def default_mark(env: Mapping[str, str], name: str) -> str:
    """The mark " (default)" when `name` is not set in `env`, else nothing."""
    return "" if (env.get(name) or "").strip() else " (default)"


def shown(env: Mapping[str, str], name: str, value: str) -> str:
    """`name value`, marked when it is the default."""
    return f"{name} {value}{default_mark(env, name)}"


def nearest_existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
