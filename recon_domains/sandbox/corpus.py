"""A synthetic RECON corpus: `recon.db` with RECON's own tables plus a concepts folder.

The point is realism, so everything downstream is exercised on the mess real data has:
power-law channel sizes, the `Transcript` catch-all channel, legacy and list-valued domains,
malformed / empty / non-list window files, non-object items, files that readers must ignore,
missing folders, documents still in the pipeline or failed, non-stream documents (books,
web pages, another PeerTube host), and watch URLs in every shape RECON stored (short UUIDs,
full UUIDs, query strings, fragments, trailing slashes, garbage).

The complete stream documents are built from exact quotas, not independent coin flips, so
pass 1 over them lands on the mix asked for: by default the runbook's Step 4 benchmarks
(assigned ≈ 94.8 % and tied ≈ 5.2 % of the documents with valid concepts, needs_reprocess
≈ 19.5 % of all candidates); `skewed=True` lands far from them, to prove the gate halts.
Everything is derived from one `random.Random(seed)`: same seed, same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recon_domains.commands import EXIT_CONFIG, EXIT_OK
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.taxonomy import DEFAULT_STREAM_SOURCE, DOMAINS, is_domain

# RECON's own table definitions (SPEC §3). RECON creates these; we never do in production.
CATALOGUE_DDL = (
    "CREATE TABLE catalogue (hash TEXT PRIMARY KEY, filename TEXT, path TEXT, "
    "size_bytes INTEGER, source TEXT, category TEXT, status TEXT, discovered_at TEXT, "
    "path_updated_at TEXT)"
)
DOCUMENTS_DDL = (
    "CREATE TABLE documents (hash TEXT PRIMARY KEY, filename TEXT, path TEXT, "
    "size_bytes INTEGER, page_count INTEGER, book_title TEXT, book_author TEXT, "
    "collection TEXT, status TEXT, pages_extracted INTEGER, concepts_extracted INTEGER, "
    "vectors_inserted INTEGER, discovered_at TEXT, extracted_at TEXT, enriched_at TEXT, "
    "embedded_at TEXT, error_message TEXT, retry_count INTEGER, organized_at TEXT)"
)
RECON_SCHEMA: tuple[str, ...] = (CATALOGUE_DDL, DOCUMENTS_DDL)

CATALOGUE_COLUMNS: tuple[str, ...] = (
    "hash", "filename", "path", "size_bytes", "source", "category", "status",
    "discovered_at", "path_updated_at",
)
DOCUMENTS_COLUMNS: tuple[str, ...] = (
    "hash", "filename", "path", "size_bytes", "page_count", "book_title", "book_author",
    "collection", "status", "pages_extracted", "concepts_extracted", "vectors_inserted",
    "discovered_at", "extracted_at", "enriched_at", "embedded_at", "error_message",
    "retry_count", "organized_at",
)

TRANSCRIPT_CHANNEL = "Transcript"
OTHER_PEERTUBE_SOURCE = "tube.example.org"

# Names from older taxonomies: never valid, and never near-misses of the 18 (a reader that
# normalised case would otherwise disagree with SPEC §4's exact match).
LEGACY_DOMAINS: tuple[str, ...] = (
    "Survival", "Homesteading", "Energy", "Health", "Firearms", "Cooking", "Radio",
    "Bushcraft", "Self-Reliance", "Engineering", "Misc", "General Knowledge", "Farming",
    "First Aid", "Comms", "Transportation", "Prepping", "DIY",
)

# Pipeline statuses of stream documents that are not complete yet.
_INCOMPLETE_STATUSES: tuple[str, ...] = (
    "queued", "extracting", "extracted", "enriching", "enriched", "embedding", "failed",
)
_INCOMPLETE_WEIGHTS: tuple[int, ...] = (4, 1, 2, 1, 3, 1, 3)

# Concept names, channel names and book titles are made from the domain's own label, so a
# domain added to the taxonomy needs nothing here.
_TERM_FORMS: tuple[str, ...] = ("{} basics", "{} field notes", "{} repairs", "{} planning")
_CHANNEL_WORDS: tuple[str, ...] = (
    "Backyard", "Off-Grid", "Practical", "Rural", "Northern", "Frontier", "Prairie",
    "Mountain", "Coastal", "Desert", "Urban", "Old School", "Homestead", "Field", "Bench",
    "Workshop", "Ridge", "Valley", "Harbor", "Timber",
)
_CHANNEL_SUFFIXES: tuple[str, ...] = ("Lab", "Academy", "Notes", "TV", "Works", "Guide", "Hub")


def _term(domain: str, n: int) -> str:
    """The n-th (mod 4) concept name of a domain, e.g. "water systems repairs"."""
    return _TERM_FORMS[n % len(_TERM_FORMS)].format(domain.lower())


class CorpusError(RuntimeError):
    """The corpus cannot be written (operator-readable: what, where, what to do)."""


@dataclass(frozen=True)
class CorpusMix:
    """Proportions of the generated corpus. Rates are fractions (0.195 = 19.5 %)."""

    needs_reprocess: float = 0.195  # of the complete stream documents (the candidates)
    tied: float = 0.052  # of the candidates that have valid concepts
    missing_folder_share: float = 0.45  # of needs_reprocess: no folder at all
    channel_tie_share: float = 0.05  # of ties: designed to stay tied at channel level
    transcript_share: float = 0.41  # of stream documents: the catch-all channel
    non_stream_rate: float = 0.07  # of documents: books, web pages, another PeerTube host
    incomplete_rate: float = 0.10  # of stream documents: still in the pipeline, or failed
    no_channel_rate: float = 0.004  # of stream documents: catalogue.category NULL or ''
    catalogue_only_rate: float = 0.02  # catalogue rows never queued (no documents row)
    docs_per_channel: int = 18  # topical channels ≈ topical documents / this


DEFAULT_MIX = CorpusMix()
SKEWED_MIX = CorpusMix(needs_reprocess=0.45, tied=0.20)


@dataclass(frozen=True)
class CorpusSummary:
    """What generate_corpus wrote. `expected_*` are the pass-1 outcomes it designed."""

    out_dir: Path
    recon_db: Path
    concepts_dir: Path
    source: str
    seed: int
    skewed: bool
    docs: int  # documents rows
    catalogue_rows: int
    catalogue_only: int  # catalogue rows without a documents row (never queued)
    stream_docs: int  # documents whose catalogue.source is `source`
    complete_stream_docs: int  # the backfill candidates
    incomplete_stream_docs: int
    non_stream_docs: int
    channels: int  # distinct channel names among stream documents
    transcript_docs: int
    no_channel_docs: int
    channel_tie_pairs: int
    missing_folders: int  # candidates without a concept folder
    zero_valid_folders: int  # candidates whose folder has no valid domain at all
    expected_needs_reprocess: int
    expected_tied: int
    expected_assigned: int
    window_files: int
    messy: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def expected_valid(self) -> int:
        """Candidates with at least one valid domain."""
        return self.expected_tied + self.expected_assigned

    def expected_rates(self) -> dict[str, float]:
        """The three benchmark percentages this corpus was designed to produce."""
        return {
            "assigned_pct": 100.0 * self.expected_assigned / max(1, self.expected_valid),
            "tied_pct": 100.0 * self.expected_tied / max(1, self.expected_valid),
            "needs_reprocess_pct": 100.0 * self.expected_needs_reprocess
            / max(1, self.complete_stream_docs),
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (paths as strings)."""
        data = asdict(self)
        for key in ("out_dir", "recon_db", "concepts_dir"):
            data[key] = str(data[key])
        data["expected_rates"] = {k: round(v, 2) for k, v in self.expected_rates().items()}
        return data


# --------------------------------------------------------------------------------------
# Planning: every document is decided before anything is written.


@dataclass
class _Doc:
    hash: str
    source: str
    channel: str | None
    status: str  # documents.status (catalogue.status mirrors it)
    kind: str  # clear | tied | pair | missing | zero:<variant> | partial | none
    counts: dict[str, int] = field(default_factory=dict)  # planned valid-domain counts
    path: str | None = None
    filename: str = ""
    is_video: bool = True
    book: tuple[str, str] | None = None


def _quota(total: int, rate: float, minimum: int = 0) -> int:
    return max(minimum, round(total * rate))


def _hash(seed: int, label: str) -> str:
    return hashlib.sha256(f"recon-corpus:{seed}:{label}".encode()).hexdigest()


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Channel:
    """A topical channel: 1–3 dominant domains with weights."""

    def __init__(self, name: str, dominants: list[str], weights: list[float]) -> None:
        self.name = name
        self.dominants = dominants
        self.weights = weights


def _make_channels(rng: random.Random, n_docs: int, per_channel: int) -> list[tuple[_Channel, int]]:
    """Topical channels with power-law (Zipf-like) sizes summing to n_docs."""
    if n_docs <= 0:
        return []
    n_channels = max(3, min(n_docs, round(n_docs / per_channel)))
    weights = [1.0 / (i + 1) ** 1.4 for i in range(n_channels)]
    total_w = sum(weights)
    shares = [n_docs * w / total_w for w in weights]
    sizes = [max(1, int(x)) for x in shares]
    # Largest remainders get the documents the floors left over; if the minimum of 1 per
    # channel overshot, take the excess from the largest channels.
    by_remainder = sorted(range(n_channels), key=lambda i: (int(shares[i]) - shares[i], i))
    k = 0
    while sum(sizes) < n_docs:
        sizes[by_remainder[k % n_channels]] += 1
        k += 1
    k = 0
    while sum(sizes) > n_docs:
        if sizes[k % n_channels] > 1:
            sizes[k % n_channels] -= 1
        k += 1
    used_names: set[str] = set()
    channels: list[tuple[_Channel, int]] = []
    for size in sizes:
        k = rng.choices((1, 2, 3), weights=(3, 4, 3))[0]
        dominants = rng.sample(DOMAINS, k)
        weights_k = [0.62, 0.26, 0.12][:k]
        while True:
            term = _term(dominants[0], rng.randrange(4)).title()
            name = f"{rng.choice(_CHANNEL_WORDS)} {term} {rng.choice(_CHANNEL_SUFFIXES)}"
            if name not in used_names:
                break
            name = f"{name} {rng.randint(2, 99)}"
            if name not in used_names:
                break
        used_names.add(name)
        channels.append((_Channel(name, dominants, weights_k), size))
    return channels


def _clear_counts(rng: random.Random, winner: str) -> dict[str, int]:
    top = rng.randint(3, 12)
    counts = {winner: top}
    for d in rng.sample(DOMAINS, rng.randint(0, 4)):
        if d != winner:
            counts[d] = rng.randint(1, top - 1)
    return counts


def _tied_counts(rng: random.Random, tied: list[str]) -> dict[str, int]:
    top = rng.randint(2, 8)
    counts = dict.fromkeys(tied, top)
    for d in rng.sample(DOMAINS, rng.randint(0, 3)):
        if d not in counts:
            counts[d] = rng.randint(1, top - 1)
    return counts


def _pick_winner(rng: random.Random, channel: _Channel | None) -> str:
    if channel is None or rng.random() < 0.12:
        return rng.choice(DOMAINS)
    return rng.choices(channel.dominants, weights=channel.weights)[0]


def _tied_set(rng: random.Random, channel: _Channel | None) -> list[str]:
    size = 3 if rng.random() < 0.15 else 2
    if channel is None:
        return rng.sample(DOMAINS, size)
    # One dominant domain against non-dominant ones: channel context settles it (pass 2).
    first = rng.choices(channel.dominants, weights=channel.weights)[0]
    others = [d for d in DOMAINS if d not in channel.dominants]
    return [first, *rng.sample(others, size - 1)]


# Variants of "folder exists, zero valid domains" (needs_reprocess with a folder).
_ZERO_VARIANTS: tuple[str, ...] = (
    "legacy",  # old taxonomy only: the common case
    "legacy",
    "legacy",
    "malformed",
    "empty_lists",
    "no_window_files",  # only meta.json and files readers must ignore
    "non_objects",
    "empty_folder",
)

_PATH_STYLES: tuple[tuple[str, float, int], ...] = (
    # style, rate, minimum count
    ("full_uuid", 0.08, 2),
    ("upper_uuid", 0.005, 1),
    ("videos_watch", 0.03, 2),
    ("query", 0.03, 2),
    ("fragment", 0.02, 2),
    ("trailing_slash", 0.015, 2),
    ("garbage", 0.006, 4),
)
_GARBAGE_PATHS: tuple[str | None, ...] = (
    None,
    "",
    "not a url",
    "https://{host}/c/some_channel/videos",
    "https://{host}/w/",
    "https://{host}/w/p/k8mQZHTJKUcohGWKxxzwvX",
    "https://{host}/w/0OIl0OIl0OIl0OIl0OIl0O",
    "https://{host}/w/" + "Z" * 22,
    "/mnt/media/stream/{n}.mp4",
)


def _watch_path(rng: random.Random, style: str, host: str, n: int) -> str | None:
    u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    short = uuid_to_short(u)
    base = f"https://{host}"
    if style == "short":
        return f"{base}/w/{short}"
    if style == "full_uuid":
        return f"{base}/w/{u}"
    if style == "upper_uuid":
        return f"{base}/w/{u.upper()}"
    if style == "videos_watch":
        return f"{base}/videos/watch/{u}"
    if style == "query":
        return f"{base}/w/{short}?" + rng.choice(("start=42", "playlistPosition=3", "t=1m5s"))
    if style == "fragment":
        return f"{base}/w/{short}#" + rng.choice(("t=30", "comments", "description"))
    if style == "trailing_slash":
        return f"{base}/w/{short}/"
    garbage = _GARBAGE_PATHS[n % len(_GARBAGE_PATHS)]
    return None if garbage is None else garbage.format(host=host, n=n)


def _slug(text: str) -> str:
    return "".join(ch.lower() if ch.isalnum() else "_" for ch in text).strip("_")[:40]


def _plan(rng: random.Random, docs: int, seed: int, mix: CorpusMix, source: str) -> list[_Doc]:
    n_non_stream = _quota(docs, mix.non_stream_rate, 4)
    n_stream = docs - n_non_stream
    n_incomplete = _quota(n_stream, mix.incomplete_rate, len(_INCOMPLETE_STATUSES))
    n_complete = n_stream - n_incomplete
    n_nr = round(n_complete * mix.needs_reprocess)
    n_valid = n_complete - n_nr
    n_tied = round(n_valid * mix.tied)
    n_pairs = max(1, round(n_tied * mix.channel_tie_share / 2)) if n_tied >= 4 else 0
    n_missing = round(n_nr * mix.missing_folder_share)
    n_zero = n_nr - n_missing
    n_transcript = round(n_stream * mix.transcript_share)
    n_no_channel = _quota(n_stream, mix.no_channel_rate, 2)
    n_topical = n_stream - n_transcript - n_no_channel - 2 * n_pairs
    if min(n_valid - n_tied, n_topical, n_zero, n_missing) < 1:
        raise CorpusError(
            f"{docs} documents are too few for a corpus with every case present; use at "
            "least 100"
        )

    topical = _make_channels(rng, n_topical, mix.docs_per_channel)
    channel_slots: list[_Channel | str | None] = []
    for channel, size in topical:
        channel_slots += [channel] * size
    channel_slots += [TRANSCRIPT_CHANNEL] * n_transcript
    channel_slots += [None if i % 2 == 0 else "" for i in range(n_no_channel)]
    rng.shuffle(channel_slots)

    incomplete = rng.choices(_INCOMPLETE_STATUSES, weights=_INCOMPLETE_WEIGHTS, k=n_incomplete)
    incomplete[: len(_INCOMPLETE_STATUSES)] = list(_INCOMPLETE_STATUSES)  # each at least once
    zero_kinds = [f"zero:{_ZERO_VARIANTS[i % len(_ZERO_VARIANTS)]}" for i in range(n_zero)]
    kinds: list[str] = (
        ["clear"] * (n_valid - n_tied)
        + ["tied"] * (n_tied - 2 * n_pairs)
        + ["missing"] * n_missing
        + zero_kinds
        + [f"incomplete:{s}" for s in incomplete]
    )
    rng.shuffle(kinds)

    planned: list[_Doc] = []
    index = 0

    def new_hash() -> str:
        nonlocal index
        index += 1
        return _hash(seed, f"doc{index}")

    for slot, kind in zip(channel_slots, kinds, strict=True):
        channel = slot if isinstance(slot, _Channel) else None
        name = slot.name if isinstance(slot, _Channel) else slot
        doc = _Doc(new_hash(), source, name, "complete", kind)
        if kind == "clear":
            doc.counts = _clear_counts(rng, _pick_winner(rng, channel))
        elif kind == "tied":
            doc.counts = _tied_counts(rng, _tied_set(rng, channel))
        elif kind.startswith("incomplete:"):
            doc.status = kind.split(":", 1)[1]
            if doc.status in ("enriched", "embedding", "enriching") or (
                doc.status == "failed" and rng.random() < 0.5
            ):
                doc.kind = "partial" if doc.status in ("enriching", "failed") else "clear"
                doc.counts = _clear_counts(rng, _pick_winner(rng, channel))
            else:
                doc.kind = "none"
        planned.append(doc)

    # Channel-level ties: two-document channels whose documents tie on the same domains
    # with the same counts, so each one's channel context is tied too (pass 3 → manual).
    for p in range(n_pairs):
        a, b = rng.sample(DOMAINS, 2)
        top = rng.randint(2, 6)
        name = f"Pair Channel {p + 1:03d} ({a.split()[0]}/{b.split()[0]})"
        for _ in range(2):
            planned.append(_Doc(new_hash(), source, name, "complete", "pair", {a: top, b: top}))

    # Non-stream documents: books, web pages, and videos of another PeerTube host whose
    # channel names collide with ours (pass 2 must stay within one source).
    for i in range(n_non_stream):
        which = i % 4
        status = "complete" if rng.random() < 0.85 else rng.choice(("queued", "failed"))
        counts = _clear_counts(rng, rng.choice(DOMAINS)) if status == "complete" else {}
        kind = "clear" if counts else "none"
        if which in (0, 1):
            author = rng.choice(("A. Smith", "J. Doe", "US Army", "FEMA", "R. Kephart"))
            title = f"The {_term(rng.choice(DOMAINS), rng.randrange(4)).title()} Handbook"
            doc = _Doc(new_hash(), "library", "Books", status, kind, counts, is_video=False)
            doc.book = (title, author)
            doc.filename = f"{_slug(title)}.pdf"
            doc.path = f"/opt/recon/library/{doc.filename}"
        elif which == 2:
            doc = _Doc(new_hash(), "web", "Web Pages", status, kind, counts, is_video=False)
            doc.filename = f"page_{i}.html"
            doc.path = f"https://example.org/articles/{i}?ref=rss#top"
        else:
            chan = TRANSCRIPT_CHANNEL if i % 8 == 3 else "Off-Grid Power Lab"
            doc = _Doc(new_hash(), OTHER_PEERTUBE_SOURCE, chan, status, kind, counts)
        planned.append(doc)

    rng.shuffle(planned)
    return planned


# --------------------------------------------------------------------------------------
# Concept files.


class _FileWriter:
    """Writes one document's concept folder and tallies the mess it contains."""

    def __init__(self, rng: random.Random, concepts_dir: Path, tally: Counter[str]) -> None:
        self.rng = rng
        self.root = concepts_dir
        self.tally = tally

    def _concept(self, domain: Any, n: int) -> dict[str, Any]:
        term_domain = domain if is_domain(domain) else None
        if term_domain is None and isinstance(domain, list):
            term_domain = next((d for d in domain if is_domain(d)), None)
        term = _term(term_domain, n) if term_domain else f"topic {n}"
        return {
            "concept": term,
            "domain": domain,
            "summary": f"Discussion of {term} (segment {n}).",
            "confidence": round(0.5 + (n % 50) / 100, 2),
        }

    def _items(self, counts: dict[str, int], messy: bool) -> list[Any]:
        """Concept items whose valid-domain counts are exactly `counts`."""
        rng = self.rng
        units = [d for d in counts for _ in range(counts[d])]
        rng.shuffle(units)
        items: list[Any] = []
        i = 0
        while i < len(units):
            d = units[i]
            # Old data: a list-valued domain. Its valid elements are distinct, so "each
            # valid element once" and "each distinct valid element once" agree.
            if messy and i + 1 < len(units) and units[i + 1] != d and rng.random() < 0.3:
                pair = [d, units[i + 1]]
                if rng.random() < 0.5:
                    pair.append(rng.choice(LEGACY_DOMAINS))
                items.append(self._concept(pair, len(items)))
                self.tally["list_domain_items"] += 1
                i += 2
                continue
            if messy and rng.random() < 0.1:
                items.append(self._concept([d, rng.choice(LEGACY_DOMAINS)], len(items)))
                self.tally["list_domain_items"] += 1
            else:
                items.append(self._concept(d, len(items)))
            i += 1
        if messy:
            for _ in range(rng.randint(1, 3)):
                items.insert(rng.randrange(len(items) + 1), self._legacy_item(len(items)))
        return items

    def _legacy_item(self, n: int) -> dict[str, Any]:
        rng = self.rng
        self.tally["legacy_domain_items"] += 1
        r = rng.random()
        if r < 0.7:
            return self._concept(rng.choice(LEGACY_DOMAINS), n)
        if r < 0.85:
            return self._concept(rng.sample(LEGACY_DOMAINS, 2), n)
        item = self._concept(None, n)
        if r < 0.93:
            del item["domain"]
        else:
            item["domain"] = 42
        return item

    def _non_object_items(self) -> list[Any]:
        self.tally["non_object_items"] += 3
        # A bare domain string is not a concept object: it must not count.
        return [DOMAINS[0], 7, None] if self.rng.random() < 0.5 else [[DOMAINS[-1]], 1.5, True]

    def write(self, doc: _Doc, messy: set[str]) -> int:
        """Write the folder of doc now; return the number of window files."""
        n_windows, files = self.render(doc, messy)
        if files is not None:
            _write_folder(str(self.root / doc.hash), files)
        return n_windows

    def render(self, doc: _Doc, messy: set[str]) -> tuple[int, list[tuple[str, bytes]] | None]:
        """(window files, [(file name, content)]) of doc's folder; None: no folder.

        All randomness is drawn here, in document order, so the bytes do not depend on the
        order in which folders are later written.
        """
        rng = self.rng
        kind = doc.kind
        if kind in ("missing", "none"):
            return 0, None
        files: list[tuple[str, bytes]] = []
        windows: list[bytes] = []  # contents in window order
        extra: dict[str, bytes] = {}  # files readers must ignore
        if kind.startswith("zero:"):
            variant = kind.split(":", 1)[1]
            if variant == "legacy":
                items = [self._legacy_item(n) for n in range(rng.randint(4, 20))]
                per = rng.randint(2, 5)
                windows = [_dump(items[i : i + per]) for i in range(0, len(items), per)]
            elif variant == "malformed":
                windows = [self._malformed() for _ in range(rng.randint(1, 4))]
            elif variant == "empty_lists":
                windows = [b"[]"] * rng.randint(1, 3)
                self.tally["empty_list_files"] += len(windows)
            elif variant == "non_objects":
                windows = [_dump(self._non_object_items()) for _ in range(rng.randint(1, 3))]
            elif variant == "no_window_files":
                extra[rng.choice(("concepts.json", "window_0001.json.bak", "window-1.json"))] = (
                    _dump([self._concept(rng.choice(DOMAINS), 0)])
                )
                self.tally["ignored_files"] += 1
            # empty_folder: nothing but (maybe) meta.json
        else:
            items = self._items(doc.counts, messy="messy_items" in messy)
            if kind == "partial":  # mid-pipeline or failed: only some windows are there
                items = items[: max(1, len(items) // 2)]
            per = rng.randint(1, 3)
            windows = [_dump(items[i : i + per]) for i in range(0, len(items), per)]
            # Noise that must not change the counts, inserted between real windows.
            noise: list[bytes] = []
            if "malformed" in messy:
                noise.append(self._malformed())
            if "empty_list" in messy:
                noise.append(b"[]")
                self.tally["empty_list_files"] += 1
            if "object_json" in messy:
                # Valid-looking concepts wrapped in an object: not a list, so ignored.
                wrapped = {"concepts": [self._concept(rng.choice(DOMAINS), 0)] * 3}
                noise.append(_dump(wrapped))
                self.tally["object_files"] += 1
            if "non_object" in messy:
                noise.append(_dump(self._non_object_items()))
            for blob in noise:
                windows.insert(rng.randrange(len(windows) + 1), blob)
            if "ignored_file" in messy:
                # Valid concepts in files that are not window_*.json: a reader that counts
                # them would change this document's winner.
                name = rng.choice(
                    ("window_0001.json.bak", "concepts_merged.json", "window_0099.tmp",
                     "summary.json", "window_0002.json~")
                )
                bogus = [self._concept(rng.choice(DOMAINS), n) for n in range(15)]
                extra[name] = _dump(bogus)
                self.tally["ignored_files"] += 1
        for n, blob in enumerate(windows, start=1):
            files.append((f"window_{n:04d}.json", blob))
        for name, blob in extra.items():
            files.append((name, blob))
        if "no_meta" in messy:
            self.tally["missing_meta"] += 1
        else:
            meta = {
                "hash": doc.hash,
                "windows": len(windows),
                "model": "recon-enricher-v3",
                "source": doc.source,
                # A "domain" in meta.json is not a concept: readers must not count it.
                "domain": rng.choice(DOMAINS),
            }
            files.append(("meta.json", _dump(meta)))
        return len(windows), files

    def _malformed(self) -> bytes:
        self.tally["malformed_files"] += 1
        first, last = (json.dumps(d).encode() for d in (DOMAINS[0], DOMAINS[-1]))
        options = (
            b'[{"concept": "field notes", "domain": ' + first + b', "summary": "trunc',
            b"",
            b"{not json at all",
            b'[{"domain": ' + last + b"},]",
            b"\xff\xfe\x00[binary\x00garbage",
            b"NaN-ish: [1, 2",
        )
        return options[self.rng.randrange(len(options))]


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _write_folder(folder: str, files: list[tuple[str, bytes]]) -> None:
    """Create folder and its files (O_EXCL: never overwrite a file that is already there)."""
    os.mkdir(folder)
    for name, blob in files:
        fd = os.open(os.path.join(folder, name), _CREATE_FLAGS, 0o644)
        try:
            os.write(fd, blob)
        finally:
            os.close(fd)


class _ParallelWriter:
    """Writes concept folders on a few threads.

    Creating ~160,000 small files is bound by file-system latency, not CPU; a handful of
    threads overlap that latency (the GIL is released during the system calls). Contents
    are fixed before submission, so the output stays byte-identical.
    """

    def __init__(self, threads: int = 6, max_pending: int = 2000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="corpus-write")
        self._pending: deque[Future[None]] = deque()
        self._max_pending = max_pending

    def submit(self, folder: str, files: list[tuple[str, bytes]]) -> None:
        self._pending.append(self._pool.submit(_write_folder, folder, files))
        while len(self._pending) > self._max_pending:
            self._pending.popleft().result()  # re-raises a write error here

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


# Per-document file noise: (flag, rate among folders written, minimum count).
_NOISE: tuple[tuple[str, float, int], ...] = (
    ("messy_items", 0.25, 3),
    ("malformed", 0.04, 3),
    ("empty_list", 0.03, 3),
    ("object_json", 0.02, 3),
    ("non_object", 0.02, 3),
    ("ignored_file", 0.03, 3),
    ("no_meta", 0.05, 3),
)


def _flags(rng: random.Random, n: int, specs: tuple[tuple[str, float, int], ...]) -> list[set[str]]:
    """Per-item flag sets from exact quotas (each flag at least its minimum)."""
    out: list[set[str]] = [set() for _ in range(n)]
    for flag, rate, minimum in specs:
        k = min(n, _quota(n, rate, minimum))
        for i in rng.sample(range(n), k):
            out[i].add(flag)
    return out


# --------------------------------------------------------------------------------------
# Writing.


def _check_out_dir(out_dir: Path) -> None:
    db = out_dir / "recon.db"
    if db.exists() and db.stat().st_size > 0:
        raise CorpusError(
            f"{db} already exists; refusing to overwrite a RECON database. Choose another "
            "--out folder or delete that one first."
        )
    concepts = out_dir / "concepts"
    if concepts.exists() and any(concepts.iterdir()):
        raise CorpusError(
            f"{concepts} already holds concept folders; refusing to mix corpora. Choose "
            "another --out folder or delete that one first."
        )


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def write_recon_db(
    db_path: str | os.PathLike[str],
    catalogue_rows: Iterable[Sequence[Any]],
    documents_rows: Iterable[Sequence[Any]],
    *,
    catalogue_columns: Sequence[str] = CATALOGUE_COLUMNS,
    documents_columns: Sequence[str] = DOCUMENTS_COLUMNS,
) -> None:
    """Create RECON's tables in a new `db_path` (WAL, as RECON runs) holding these rows, in
    one transaction; each row gives the values of the named columns (default: all)."""
    conn = _connect(Path(db_path))
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        for ddl in RECON_SCHEMA:
            conn.execute(ddl)
        for table, columns, rows in (
            ("catalogue", catalogue_columns, catalogue_rows),
            ("documents", documents_columns, documents_rows),
        ):
            conn.executemany(
                f"INSERT INTO {table} ({','.join(columns)}) "
                f"VALUES ({','.join('?' * len(columns))})",
                rows,
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


def generate_corpus(
    out_dir: str | os.PathLike[str],
    docs: int,
    seed: int = 1,
    skewed: bool = False,
    source: str = DEFAULT_STREAM_SOURCE,
) -> CorpusSummary:
    """Write `out_dir/recon.db` (RECON's tables, WAL) and `out_dir/concepts/` and summarise.

    docs is the number of documents rows (at least 100). Same seed → byte-identical rows
    and files. Refuses (CorpusError) when out_dir already holds a non-empty recon.db or
    concept folders. `skewed=True` lands far from the runbook's Step 4 benchmarks.
    """
    started = time.perf_counter()
    if docs < 100:
        raise CorpusError(f"--docs must be at least 100 (got {docs}): every messy case needs room")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_out_dir(out)
    db_path = out / "recon.db"
    concepts_dir = out / "concepts"
    concepts_dir.mkdir(exist_ok=True)
    mix = SKEWED_MIX if skewed else DEFAULT_MIX
    rng = random.Random(seed)
    planned = _plan(rng, docs, seed, mix, source)

    tally: Counter[str] = Counter()
    # Watch URL shapes for video documents, from quotas.
    videos = [d for d in planned if d.is_video]
    styles = ["short"] * len(videos)
    order = list(range(len(videos)))
    rng.shuffle(order)
    pos = 0
    for style, rate, minimum in _PATH_STYLES:
        k = _quota(len(videos), rate, minimum)
        for i in order[pos : pos + k]:
            styles[i] = style
        pos += k
    for n, (doc, style) in enumerate(zip(videos, styles, strict=True)):
        host = doc.source if doc.source != "library" else source
        doc.path = _watch_path(rng, style, host, n)
        doc.filename = f"{_slug(doc.channel or 'video')}_{doc.hash[:8]}.mp4"
        if doc.source == source:
            tally[f"path_{style}"] += 1

    writer = _FileWriter(rng, concepts_dir, tally)
    with_folder = [d for d in planned if d.kind not in ("missing", "none")]
    noise = _flags(rng, len(with_folder), _NOISE)
    noise_by_hash = {d.hash: fl for d, fl in zip(with_folder, noise, strict=True)}

    base = datetime(2025, 9, 1, tzinfo=UTC)
    catalogue_rows: list[tuple[Any, ...]] = []
    documents_rows: list[tuple[Any, ...]] = []
    window_files = 0
    parallel = _ParallelWriter()
    try:
        for doc in planned:
            n_windows, files = writer.render(doc, noise_by_hash.get(doc.hash, set()))
            if files is not None:
                parallel.submit(os.path.join(concepts_dir, doc.hash), files)
            window_files += n_windows
            discovered = base + timedelta(minutes=rng.randint(0, 200_000))
            extracted = discovered + timedelta(minutes=rng.randint(5, 600))
            enriched = extracted + timedelta(minutes=rng.randint(5, 600))
            embedded = enriched + timedelta(minutes=rng.randint(1, 60))
            stage = _stage(doc.status)
            size = rng.randint(20_000_000, 2_000_000_000) if doc.is_video else rng.randint(
                50_000, 80_000_000
            )
            concepts = sum(doc.counts.values())
            failed = doc.status == "failed"
            catalogue_rows.append(
                (doc.hash, doc.filename, doc.path, size, doc.source, doc.channel, doc.status,
                 _iso(discovered),
                 _iso(discovered + timedelta(days=3)) if rng.random() < 0.1 else None)
            )
            documents_rows.append(
                (doc.hash, doc.filename, doc.path, size,
                 (rng.randint(40, 900) if doc.book else n_windows or None),
                 doc.book[0] if doc.book else None,
                 doc.book[1] if doc.book else None,
                 _COLLECTIONS.get(doc.source, "peertube"),
                 doc.status,
                 n_windows if stage >= 1 else 0,
                 concepts if stage >= 2 else 0,
                 concepts if stage >= 3 else 0,
                 _iso(discovered),
                 _iso(extracted) if stage >= 1 else None,
                 _iso(enriched) if stage >= 2 else None,
                 _iso(embedded) if stage >= 3 else None,
                 rng.choice(_ERRORS) if failed else None,
                 rng.randint(1, 3) if failed else 0,
                 _iso(embedded + timedelta(minutes=2)) if stage >= 3 else None)
            )
    finally:
        parallel.close()  # every folder exists before its row is committed
    # Catalogue rows that were never queued: no documents row, no folder.
    n_cat_only = _quota(docs, mix.catalogue_only_rate, 2)
    for i in range(n_cat_only):
        h = _hash(seed, f"catalogue-only{i}")
        u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        catalogue_rows.append(
            (h, f"pending_{h[:8]}.mp4", f"https://{source}/w/{uuid_to_short(u)}",
             rng.randint(20_000_000, 900_000_000), source, TRANSCRIPT_CHANNEL
             if i % 3 == 0 else None, "catalogued", _iso(base), None)
        )

    write_recon_db(db_path, catalogue_rows, documents_rows)

    stream = [d for d in planned if d.source == source]
    complete = [d for d in stream if d.status == "complete"]
    n_missing = sum(1 for d in complete if d.kind == "missing")
    n_zero = sum(1 for d in complete if d.kind.startswith("zero:"))
    n_tied = sum(1 for d in complete if d.kind in ("tied", "pair"))
    tally["non_stream_other_peertube"] = sum(
        1 for d in planned if d.source == OTHER_PEERTUBE_SOURCE
    )
    tally["non_stream_books"] = sum(1 for d in planned if d.source == "library")
    tally["non_stream_web"] = sum(1 for d in planned if d.source == "web")
    for d in stream:
        if d.status != "complete":
            tally[f"status_{d.status}"] += 1
    summary = CorpusSummary(
        out_dir=out,
        recon_db=db_path,
        concepts_dir=concepts_dir,
        source=source,
        seed=seed,
        skewed=skewed,
        docs=len(documents_rows),
        catalogue_rows=len(catalogue_rows),
        catalogue_only=n_cat_only,
        stream_docs=len(stream),
        complete_stream_docs=len(complete),
        incomplete_stream_docs=len(stream) - len(complete),
        non_stream_docs=len(planned) - len(stream),
        channels=len({d.channel for d in stream if d.channel}),
        transcript_docs=sum(1 for d in stream if d.channel == TRANSCRIPT_CHANNEL),
        no_channel_docs=sum(1 for d in stream if not d.channel),
        channel_tie_pairs=sum(1 for d in complete if d.kind == "pair") // 2,
        missing_folders=n_missing,
        zero_valid_folders=n_zero,
        expected_needs_reprocess=n_missing + n_zero,
        expected_tied=n_tied,
        expected_assigned=len(complete) - n_missing - n_zero - n_tied,
        window_files=window_files,
        messy=dict(sorted(tally.items())),
        elapsed_seconds=round(time.perf_counter() - started, 3),
    )
    return summary


_COLLECTIONS: dict[str, str] = {"library": "books", "web": "web"}
_ERRORS: tuple[str, ...] = (
    "ffmpeg: audio stream not found",
    "LLM timeout after 3 retries",
    "transcript empty",
    "HTTP 404 fetching video",
)


def _stage(status: str) -> int:
    """How far a document got: 0 none, 1 extracted, 2 enriched, 3 embedded/complete."""
    return {
        "extracted": 1, "enriching": 1, "enriched": 2, "embedding": 2, "complete": 3,
    }.get(status, 0)


def add_completed_documents(
    recon_db_path: str | os.PathLike[str],
    concepts_dir: str | os.PathLike[str],
    n: int,
    seed: int,
    source: str = DEFAULT_STREAM_SOURCE,
    *,
    tied: int = 0,
    now: datetime | None = None,
) -> list[str]:
    """Append n newly completed stream documents (rows + concept folders); return hashes.

    Simulates RECON finishing videos after the migration (the steady-state sensor's input).
    Each joins an existing stream channel other than the catch-all (or a new one when there
    is none); the first `tied` of them tie between two domains, the others have a clear
    winner. Concept folders are written before the rows commit, as RECON does. Hashes are
    derived from seed and the current row count, so repeated calls add new documents.
    """
    if n < 0 or tied < 0 or tied > n:
        raise ValueError(f"need 0 <= tied <= n, got n={n}, tied={tied}")
    rng = random.Random(seed)
    concepts = Path(concepts_dir)
    now = now or datetime.now(UTC)
    conn = _connect(Path(recon_db_path))
    try:
        (existing,) = conn.execute("SELECT count(*) FROM documents").fetchone()
        channels = [
            row[0]
            for row in conn.execute(
                "SELECT category FROM catalogue WHERE source = ? AND category IS NOT NULL "
                "AND category NOT IN ('', ?) GROUP BY category ORDER BY category",
                (source, TRANSCRIPT_CHANNEL),
            )
        ] or ["Steady State Channel"]
        writer = _FileWriter(rng, concepts, Counter())
        hashes: list[str] = []
        cat_rows: list[tuple[Any, ...]] = []
        doc_rows: list[tuple[Any, ...]] = []
        for i in range(n):
            h = _hash(seed, f"added:{existing}:{i}")
            channel = rng.choice(channels)
            if i < tied:
                counts = _tied_counts(rng, rng.sample(DOMAINS, 2))
            else:
                counts = _clear_counts(rng, rng.choice(DOMAINS))
            doc = _Doc(h, source, channel, "complete", "clear", counts)
            if (concepts / h).exists():
                raise CorpusError(f"concept folder {concepts / h} already exists; use another seed")
            n_windows = writer.write(doc, set())
            u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            path = f"https://{source}/w/{uuid_to_short(u)}"
            filename = f"{_slug(channel)}_{h[:8]}.mp4"
            stamp = _iso(now)
            total = sum(counts.values())
            cat_rows.append((h, filename, path, rng.randint(20_000_000, 900_000_000), source,
                             channel, "complete", stamp, None))
            doc_rows.append((h, filename, path, cat_rows[-1][3], n_windows, None, None,
                             "peertube", "complete", n_windows, total, total, stamp, stamp,
                             stamp, stamp, None, 0, stamp))
            hashes.append(h)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                f"INSERT INTO catalogue ({','.join(CATALOGUE_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(CATALOGUE_COLUMNS))})",
                cat_rows,
            )
            conn.executemany(
                f"INSERT INTO documents ({','.join(DOCUMENTS_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(DOCUMENTS_COLUMNS))})",
                doc_rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return hashes


def cli_main(args: argparse.Namespace) -> int:
    """`recon-domains sandbox corpus --out DIR [--docs N] [--seed S] [--skewed]`."""
    try:
        summary = generate_corpus(args.out, args.docs, seed=args.seed, skewed=args.skewed)
    except CorpusError as exc:
        print(f"recon-domains sandbox corpus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    rates = summary.expected_rates()
    print(f"wrote {summary.recon_db} and {summary.concepts_dir} in {summary.elapsed_seconds:.1f} s")
    print(
        f"  documents {summary.docs} (catalogue rows {summary.catalogue_rows}, "
        f"{summary.catalogue_only} never queued); stream {summary.stream_docs}, complete "
        f"{summary.complete_stream_docs}, in pipeline/failed {summary.incomplete_stream_docs}, "
        f"non-stream {summary.non_stream_docs}"
    )
    print(
        f"  channels {summary.channels} (Transcript {summary.transcript_docs} documents, "
        f"{summary.channel_tie_pairs} channel-tie pairs, {summary.no_channel_docs} without "
        f"channel); window files {summary.window_files}"
    )
    print(
        f"  designed pass 1: assigned {summary.expected_assigned} ({rates['assigned_pct']:.1f} % "
        f"of valid), tied {summary.expected_tied} ({rates['tied_pct']:.1f} %), "
        f"needs_reprocess {summary.expected_needs_reprocess} "
        f"({rates['needs_reprocess_pct']:.1f} % of candidates; {summary.missing_folders} "
        f"missing folders)" + ("  [SKEWED]" if summary.skewed else "")
    )
    print("  mess: " + ", ".join(f"{k} {v}" for k, v in summary.messy.items()))
    summary_file = Path(args.out) / "corpus-summary.json"
    data = summary.as_dict()
    data.pop("elapsed_seconds")
    summary_file.write_text(json.dumps(data, indent=2) + "\n")
    return EXIT_OK
