"""The gates' verdicts, decided in the plain core.

Each gate of the runbook (a blocking asset check in the Dagster layer) is one function here
that measures what it needs and returns a `Verdict`: passed or not, the operator's
description, and metadata — plain numbers and text, `Table`s (shown as native tables in the
UI), paths and JSON-able lists or dicts. The Dagster layer only wraps a Verdict in an
`AssetCheckResult`.

One module per area of the runbook: predeploy, plugin, schema, assignment, push, verify,
reprocess. No Dagster import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Cell = str | int | float | bool | None


@dataclass(frozen=True)
class Table:
    """Rows under named columns (a native table in the Dagster UI)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...] = ()

    @classmethod
    def of(cls, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
        """A Table; cells that are not str/int/float/bool/None become text."""
        cols = tuple(columns)
        out = []
        for row in rows:
            cells = tuple(_cell(v) for v in row)
            if len(cells) != len(cols):
                raise ValueError(f"row {cells!r} has {len(cells)} cells for columns {cols!r}")
            out.append(cells)
        return cls(cols, tuple(out))

    def records(self) -> list[dict[str, Cell]]:
        """The rows as {column: cell} dicts."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _cell(value: Any) -> Cell:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


@dataclass(frozen=True)
class Verdict:
    """A gate's decision: passed, why (the operator's text), and what it measured."""

    passed: bool
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def counts_table(counts: Mapping[str, int], key: str = "status") -> Table:
    """Counts by key, largest first (ties by name)."""
    return Table.of([key, "count"], sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def fmt_top(counts: Sequence[tuple[str, int]]) -> str:
    """("Medical", 12), ("Water", 3) -> "Medical 12, Water 3"."""
    return ", ".join(f"{d} {n}" for d, n in counts)


def human_size(n: int) -> str:
    """Bytes for a reader: 512 B, 3.4 MiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
