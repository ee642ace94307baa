"""The RECON knowledge domains and their PeerTube category ids, plus statuses and the skip list.

The ids and labels live in one data file, the plugin's own
``peertube-plugin/peertube-plugin-recon-domains/categories.json`` (one ``"<id>": "<label>"``
line per domain): the plugin's main.js registers its entries and this module reads the same
file, packaged as ``recon_domains/categories.json`` (a symlink in the source tree that the
wheel build copies). Adding a domain is one line there; everything here is derived from it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any

PLUGIN_NPM_NAME = "peertube-plugin-recon-domains"

# PeerTube's own categories (8.0.1, as GET /api/v1/videos/categories lists them): never
# changed by us; the plugin's ids must not collide with them.
PEERTUBE_BUILT_IN_CATEGORIES: MappingProxyType[int, str] = MappingProxyType(
    {
        1: "Music",
        2: "Films",
        3: "Vehicles",
        4: "Art",
        5: "Sports",
        6: "Travels",
        7: "Gaming",
        8: "People",
        9: "Comedy",
        10: "Entertainment",
        11: "News & Politics",
        12: "How To",
        13: "Education",
        14: "Activism",
        15: "Science & Technology",
        16: "Animals",
        17: "Kids",
        18: "Food",
    }
)

CATEGORIES_FILE = "categories.json"
_ID_RE = re.compile(r"[1-9][0-9]*")


class TaxonomyError(ValueError):
    """The domain list (categories.json) cannot be used: names the file and every problem."""


def read_categories(path: Traversable) -> dict[int, str]:
    """The categories (id → label, in id order) of a categories.json file.

    Raises TaxonomyError naming the file and every problem: unreadable, not JSON, not one
    object, an id listed twice or that is not a whole number above PeerTube's built-in
    ids, a label that is empty, padded or used twice.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(
            f"The RECON domain list {path} cannot be read ({exc}). In a source checkout "
            f"recon_domains/{CATEGORIES_FILE} is a symlink to the plugin's {CATEGORIES_FILE}: "
            "restore it (git checkout), or reinstall the recon_domains package."
        ) from None
    repeated: list[str] = []

    def keep_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        repeated.extend(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=keep_repeats)
    except json.JSONDecodeError as exc:
        problems = [f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]
    else:
        problems = [f"id {k!r} is listed more than once" for k in repeated]
        problems += _category_problems(data)
    if problems:
        raise TaxonomyError(
            f"The RECON domain list {path} is malformed: {'; '.join(problems)}. It must be one "
            'JSON object with one line per domain, "<category id>": "<label>" (e.g. '
            '"118": "New Domain"); fix the file, then run again.'
        )
    return {int(k): v for k, v in sorted(data.items(), key=lambda kv: int(kv[0]))}


def _category_problems(data: object) -> list[str]:
    """What is wrong with the parsed content of a categories.json (empty when usable)."""
    if not isinstance(data, dict):
        return [f"it holds a JSON {type(data).__name__}, not an object of id → label"]
    if not data:
        return ["it lists no domain"]
    problems: list[str] = []
    for key, label in data.items():
        if not _ID_RE.fullmatch(key):
            problems.append(f"{key!r} is not a category id (a whole number, e.g. \"118\")")
        elif int(key) in PEERTUBE_BUILT_IN_CATEGORIES:
            problems.append(
                f"id {key} is PeerTube's built-in category "
                f"{PEERTUBE_BUILT_IN_CATEGORIES[int(key)]!r}; RECON ids must not collide with "
                f"PeerTube's 1–{max(PEERTUBE_BUILT_IN_CATEGORIES)}"
            )
        if not isinstance(label, str) or not label.strip() or label != label.strip():
            problems.append(
                f"the label of {key!r} must be a non-empty string without surrounding spaces, "
                f"found {json.dumps(label)}"
            )
    labels = Counter(v for v in data.values() if isinstance(v, str))
    problems += [f"label {x!r} is used by more than one id" for x, n in labels.items() if n > 1]
    return problems


# SPEC §2, read once at import: a malformed file stops everything with TaxonomyError.
DOMAIN_BY_ID: MappingProxyType[int, str] = MappingProxyType(
    read_categories(resources.files("recon_domains") / CATEGORIES_FILE)
)
DOMAIN_IDS: MappingProxyType[str, int] = MappingProxyType({d: i for i, d in DOMAIN_BY_ID.items()})
DOMAINS: tuple[str, ...] = tuple(DOMAIN_IDS)
FIRST_CATEGORY_ID: int = min(DOMAIN_BY_ID)
LAST_CATEGORY_ID: int = max(DOMAIN_BY_ID)
# For operator messages: "100–117".
CATEGORY_ID_RANGE = f"{FIRST_CATEGORY_ID}–{LAST_CATEGORY_ID}"


class Status:
    """Values of documents.recon_domain_status (SPEC §4)."""

    ASSIGNED = "assigned"
    TIED_PASS_1 = "tied_pass_1"
    TIED_PASS_2 = "tied_pass_2"
    TIED_MANUAL = "tied_manual"
    NEEDS_REPROCESS = "needs_reprocess"
    MANUAL_ASSIGNED = "manual_assigned"


ALL_STATUSES: tuple[str, ...] = (
    Status.ASSIGNED,
    Status.TIED_PASS_1,
    Status.TIED_PASS_2,
    Status.TIED_MANUAL,
    Status.NEEDS_REPROCESS,
    Status.MANUAL_ASSIGNED,
)

# Only these are pushed to PeerTube. tied_manual carries a display-only fallback domain and
# waits for a human (the original system pushed it: a bug).
CATEGORIZED: frozenset[str] = frozenset(
    {Status.ASSIGNED, Status.TIED_PASS_2, Status.MANUAL_ASSIGNED}
)

# Non-topical catch-all channels whose tiebreaker is skipped. A list, not a size rule: a
# ">500 videos" rule wrongly skipped large coherent channels in the original system.
DEFAULT_SKIP_CHANNELS: frozenset[str] = frozenset({"Transcript"})

# RECON's documents.status values while a worker holds the document (runbook pre-deploy 4).
MID_PIPELINE_STATUSES: frozenset[str] = frozenset({"extracting", "enriching", "embedding"})

DEFAULT_STREAM_SOURCE = "stream.echo6.co"


def is_domain(value: object) -> bool:
    """True when value is exactly one of the RECON domain names."""
    return isinstance(value, str) and value in DOMAIN_IDS


def category_id(domain: str) -> int:
    """The PeerTube category id of a domain; KeyError names the unknown domain."""
    try:
        return DOMAIN_IDS[domain]
    except KeyError:
        raise KeyError(f"not one of the {len(DOMAINS)} RECON domains: {domain!r}") from None


def describe_category(category: int | None) -> str:
    """A category as reports name it: "15 Science & Technology" (PeerTube's built-in ones),
    "105 Medical" (RECON's), "no category" (NULL), "205 (not a RECON or built-in category)"."""
    if category is None:
        return "no category"
    label = PEERTUBE_BUILT_IN_CATEGORIES.get(category) or DOMAIN_BY_ID.get(category)
    return f"{category} {label}" if label else f"{category} (not a RECON or built-in category)"


def parse_skip_channels(text: str | None) -> frozenset[str]:
    """Parse a comma-separated skip list (RECON_SKIP_CHANNELS); None or blank → the default."""
    if text is None or not text.strip():
        return DEFAULT_SKIP_CHANNELS
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def fallback_domain(tied: Iterable[str]) -> str:
    """The alphabetically first tied domain: shown for tied_manual rows, never pushed."""
    return min(tied)
