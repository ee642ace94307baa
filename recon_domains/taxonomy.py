"""The 18 RECON knowledge domains and their PeerTube category ids: the single source of truth.

The PeerTube plugin (peertube-plugin/peertube-plugin-recon-domains/main.js) registers the
same ids and labels; a test runs its register() under Node and compares with this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

# SPEC §2. PeerTube's built-in categories 1–18 are never touched.
DOMAIN_IDS: MappingProxyType[str, int] = MappingProxyType(
    {
        "Agriculture & Livestock": 100,
        "Civil Organization": 101,
        "Communications": 102,
        "Food Systems": 103,
        "Foundational Skills": 104,
        "Logistics": 105,
        "Medical": 106,
        "Navigation": 107,
        "Operations": 108,
        "Power Systems": 109,
        "Preservation & Storage": 110,
        "Security": 111,
        "Shelter & Construction": 112,
        "Technology": 113,
        "Tools & Equipment": 114,
        "Vehicles": 115,
        "Water Systems": 116,
        "Wilderness Skills": 117,
    }
)
DOMAINS: tuple[str, ...] = tuple(DOMAIN_IDS)
DOMAIN_BY_ID: MappingProxyType[int, str] = MappingProxyType({i: d for d, i in DOMAIN_IDS.items()})
FIRST_CATEGORY_ID = 100
LAST_CATEGORY_ID = 117

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
    """True when value is exactly one of the 18 domain names."""
    return isinstance(value, str) and value in DOMAIN_IDS


def category_id(domain: str) -> int:
    """The PeerTube category id of a domain; KeyError names the unknown domain."""
    try:
        return DOMAIN_IDS[domain]
    except KeyError:
        raise KeyError(f"not one of the 18 RECON domains: {domain!r}") from None


def parse_skip_channels(text: str | None) -> frozenset[str]:
    """Parse a comma-separated skip list (RECON_SKIP_CHANNELS); None or blank → the default."""
    if text is None or not text.strip():
        return DEFAULT_SKIP_CHANNELS
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def fallback_domain(tied: Iterable[str]) -> str:
    """The alphabetically first tied domain: shown for tied_manual rows, never pushed."""
    return min(tied)
