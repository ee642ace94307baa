"""Domain assignment: pass 1, the tiebreaker (pass 2) and its defensive re-run (pass 3).

SPEC §4. The decision rules are pure functions over counts (``decide_pass1``,
``decide_tiebreak``); the runners read concept files through
:func:`recon_domains.recon.concepts.read_domain_counts` and write through the store.

Decide once, write once (DESIGN §1): pass 1 reads each document's files once per run; the
tiebreaker reads each channel member's files at most once per run (plus one pass-3 recount
per channel whose counts are still tied), never once per tied document.

A document whose processing fails (unsafe hash, unreadable files, anything raising) is
reported in ``errors`` with its hash and the reason, is NOT written, and never aborts the
pass. Unreadable files (permissions, I/O errors) are errors rather than "no valid
concepts": deciding on a partial read could send a healthy document to needs_reprocess,
whose follow-up step removes its concept folder.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

from recon_domains.progress import ProgressCallback, no_progress
from recon_domains.recon.concepts import ConceptCounts, read_domain_counts
from recon_domains.recon.connection import LOCK_PAUSE_S
from recon_domains.recon.store import DomainDecision, ReconLocked, ReconStore, StreamDocument
from recon_domains.settings import DEFAULTS, Benchmarks
from recon_domains.taxonomy import DEFAULT_SKIP_CHANNELS, Status, fallback_domain

# How many of a document's domain counts are kept as the justification of its decision
# (at least every tied domain plus the runner-up); whole Counters for 22k docs are not kept.
_TOP_N = 3

# Why a tiebreak decision was taken (TiebreakDecision.rule, DocumentDecision.rule).
RULE_PASS1 = "pass 1: counts over own files"
RULE_NO_VALID = "own recount: no valid domain"
RULE_OWN_WINNER = "own recount: single top domain"
RULE_SKIP_CHANNEL = "channel on skip list"
RULE_NO_CHANNEL = "document has no channel"
RULE_CHANNEL = "channel context"
RULE_CHANNEL_PASS3 = "channel context after pass-3 recount"
RULE_CHANNEL_TIED = "channel counts tied after pass-3 recount"


# Batches a pass may decide ahead of what it could write while RECON holds the write lock;
# then it waits for the lock (RECON's next gap) before reading on.
MAX_BATCHES_BEHIND = 4

# -- pure decisions ------------------------------------------------------------------------
def top_domains(counts: Mapping[str, int]) -> tuple[int, tuple[str, ...]]:
    """The highest positive count and the domains sharing it (sorted); (0, ()) if none."""
    best = 0
    tops: list[str] = []
    for domain, n in counts.items():
        if n > best:
            best, tops = n, [domain]
        elif n == best and n > 0:
            tops.append(domain)
    return best, tuple(sorted(tops))


def ranked(counts: Mapping[str, int], n: int | None = _TOP_N) -> tuple[tuple[str, int], ...]:
    """Positive counts, highest first, ties by name: deterministic whatever the file order."""
    items = sorted(((d, c) for d, c in counts.items() if c > 0), key=lambda x: (-x[1], x[0]))
    return tuple(items if n is None else items[:n])


@dataclass(frozen=True)
class Pass1Decision:
    """Pass 1 outcome. ``tied_domains`` is empty unless the status is tied_pass_1."""

    status: str
    domain: str | None
    top_count: int
    tied_domains: tuple[str, ...] = ()


def decide_pass1(counts: Mapping[str, int]) -> Pass1Decision:
    """SPEC §4 pass 1: zero valid → needs_reprocess; strict max → assigned; else tied_pass_1."""
    best, tops = top_domains(counts)
    if not tops:
        return Pass1Decision(Status.NEEDS_REPROCESS, None, 0)
    if len(tops) == 1:
        return Pass1Decision(Status.ASSIGNED, tops[0], best)
    return Pass1Decision(Status.TIED_PASS_1, None, best, tops)


@dataclass(frozen=True)
class TiebreakDecision:
    """Pass 2/3 outcome.

    ``needs_pass_3`` is True (and ``status`` None) when the channel counts of the tied
    domains are tied too and this was not the final attempt: recount the channel and call
    again with ``final=True``. ``tied_domains`` come from the fresh own recount;
    ``channel_counts`` are the channel counts of those tied domains, highest first.
    """

    status: str | None
    domain: str | None
    rule: str
    tied_domains: tuple[str, ...] = ()
    channel_counts: tuple[tuple[str, int], ...] = ()
    needs_pass_3: bool = False


def decide_tiebreak(
    own_counts: Mapping[str, int],
    channel_counts: Mapping[str, int] | None,
    *,
    channel_on_skip_list: bool,
    final: bool = False,
) -> TiebreakDecision:
    """SPEC §4 pass 2 (and pass 3 with ``final=True``) for one tied_pass_1 document.

    ``own_counts``: a fresh recount of the document's own files (they may have changed
    since pass 1); the tied domains are derived from it. ``channel_counts``: valid-domain
    counts summed over every OTHER document of its channel and source, or None when the
    document has no channel. Rules, in order: own recount has no valid domain →
    needs_reprocess; a single own top → assigned; channel on the skip list → tied_manual;
    no channel → tied_manual; among the tied domains only, the highest channel count wins
    → tied_pass_2; channel counts tied → needs pass 3 (or, if ``final``, tied_manual).
    tied_manual carries the fallback domain (alphabetically first tied domain), for
    display only: it is not categorized and is never pushed.
    """
    p1 = decide_pass1(own_counts)
    if p1.status == Status.NEEDS_REPROCESS:
        return TiebreakDecision(Status.NEEDS_REPROCESS, None, RULE_NO_VALID)
    if p1.status == Status.ASSIGNED:
        return TiebreakDecision(Status.ASSIGNED, p1.domain, RULE_OWN_WINNER, (p1.domain,))
    tied = p1.tied_domains
    if channel_on_skip_list:
        return TiebreakDecision(Status.TIED_MANUAL, fallback_domain(tied), RULE_SKIP_CHANNEL, tied)
    if channel_counts is None:
        return TiebreakDecision(Status.TIED_MANUAL, fallback_domain(tied), RULE_NO_CHANNEL, tied)
    among = {d: max(int(channel_counts.get(d, 0)), 0) for d in tied}
    shown = tuple(sorted(among.items(), key=lambda x: (-x[1], x[0])))
    best = shown[0][1]
    winners = [d for d, n in shown if n == best]
    if len(winners) == 1 and best > 0:
        rule = RULE_CHANNEL_PASS3 if final else RULE_CHANNEL
        return TiebreakDecision(Status.TIED_PASS_2, winners[0], rule, tied, shown)
    if final:
        return TiebreakDecision(
            Status.TIED_MANUAL, fallback_domain(tied), RULE_CHANNEL_TIED, tied, shown
        )
    return TiebreakDecision(None, None, RULE_CHANNEL, tied, shown, needs_pass_3=True)


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DocumentDecision:
    """One document's decision with the counts that justify it (top few, not the Counter)."""

    hash: str
    channel: str | None
    status: str
    domain: str | None
    top_counts: tuple[tuple[str, int], ...]  # own valid-domain counts, highest first
    state: str  # concept folder state (concepts.STATE_*)
    rule: str = RULE_PASS1
    tied_domains: tuple[str, ...] = ()
    channel_counts: tuple[tuple[str, int], ...] = ()  # tiebreak: channel counts of the tie
    fingerprint: str | None = None  # of the concept files it was decided from


@dataclass(frozen=True)
class DocumentError:
    """A document that could not be decided (not written); the pass went on."""

    hash: str
    reason: str


@dataclass
class _ReadTally:
    """Files read and skips seen during one run."""

    files_read: int = 0
    skipped_files: Counter[str] = field(default_factory=Counter)  # reason -> files
    skipped_items: Counter[str] = field(default_factory=Counter)  # reason -> items/files
    states: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # reason -> its first skip

    def add(self, counts: ConceptCounts) -> None:
        self.files_read += counts.files_read
        for skip in counts.skipped:
            self.skipped_files[skip.reason] += 1
            self.skipped_items[skip.reason] += skip.count
            if skip.reason not in self.examples:
                self.examples[skip.reason] = (
                    f"{skip.file}: {skip.detail}" if skip.detail else skip.file
                )


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


@dataclass
class Pass1Result:
    """What pass 1 decided (and wrote, unless dry_run)."""

    candidates: int
    decisions: list[DocumentDecision]
    errors: list[DocumentError]
    files_read: int
    skipped_files: dict[str, int]  # skip reason -> number of files (or folders)
    skipped_items: dict[str, int]  # skip reason -> number of items/concepts
    states: dict[str, int]  # concept folder state -> documents
    written: int
    dry_run: bool
    # skip reason -> its first file and detail (e.g. a file above the size cap and what to do)
    skip_examples: dict[str, str] = field(default_factory=dict)

    @property
    def status_counts(self) -> dict[str, int]:
        """Decided status -> documents (errors are not in here)."""
        return dict(Counter(d.status for d in self.decisions))

    @property
    def with_valid_concepts(self) -> int:
        """Documents with at least one valid domain (assigned + tied)."""
        c = self.status_counts
        return c.get(Status.ASSIGNED, 0) + c.get(Status.TIED_PASS_1, 0)

    def percentages(self) -> dict[str, float]:
        """Runbook Step 4's three numbers: assigned and tied as % of the documents with
        valid concepts; needs_reprocess as % of all candidates (errors included)."""
        c = self.status_counts
        valid = self.with_valid_concepts
        return {
            "assigned": _pct(c.get(Status.ASSIGNED, 0), valid),
            "tied": _pct(c.get(Status.TIED_PASS_1, 0), valid),
            "needs_reprocess": _pct(c.get(Status.NEEDS_REPROCESS, 0), self.candidates),
        }


@dataclass
class TiebreakResult:
    """What the tiebreaker decided (and wrote, unless dry_run)."""

    tied_documents: int
    decisions: list[DocumentDecision]
    errors: list[DocumentError]
    # Channel members whose files could not be read: the channel context lacks them.
    channel_problems: list[DocumentError]
    files_read: int
    channels_counted: int
    channels_recounted: int  # pass 3
    skipped_files: dict[str, int]
    written: int
    dry_run: bool

    @property
    def status_counts(self) -> dict[str, int]:
        return dict(Counter(d.status for d in self.decisions))


@dataclass(frozen=True)
class BenchmarkCheck:
    name: str
    expected: float
    actual: float
    deviation: float  # actual - expected, percentage points
    ok: bool


# -- helpers -------------------------------------------------------------------------------
class UnreadableConceptsError(RuntimeError):
    """Some of a document's concept files could not be read (permissions, I/O): its counts
    would be incomplete, so it is not decided."""


def _read_checked(
    concepts_root: Path, doc_hash: str, tally: _ReadTally, max_file_mb: float
) -> ConceptCounts:
    """Read one document; raise UnreadableConceptsError if some files could not be read."""
    counts = read_domain_counts(concepts_root, doc_hash, max_file_mb=max_file_mb)
    tally.add(counts)
    bad = counts.unreadable
    if bad:
        first = bad[0]
        raise UnreadableConceptsError(
            f"could not read {len(bad)} concept file(s)/folder(s), e.g. {first.file} "
            f"({first.detail}); fix the permissions/disk and re-run: not decided"
        )
    return counts


def _error_reason(exc: BaseException) -> str:
    if isinstance(exc, UnreadableConceptsError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class DecisionWriteError(RuntimeError):
    """Writing decisions to recon.db failed: systemic (locked past RECON_LOCK_TIMEOUT_S,
    disk full), so the pass stops instead of reporting every following document as an
    error. Batches written before are whole and kept."""


class _BatchWriter:
    """Writes decisions through the store in batches as they come (progress survives a
    kill); counts only in dry-run.

    Next to a RECON writer the lock is free only in its short gaps: a full batch is
    written when the lock is free at that moment, else the pass reads on and tries again
    (at most every LOCK_PAUSE_S); only MAX_BATCHES_BEHIND batches behind does it wait.
    """

    def __init__(
        self,
        store: ReconStore | None,
        batch_size: int,
        dry_run: bool,
        only_from: tuple[str | None, ...],
    ) -> None:
        self.store = store
        self.only_from = only_from
        self.batch_size = max(1, int(batch_size))
        self.dry_run = dry_run
        self.pending: list[DomainDecision] = []
        self.written = 0
        self.next_try = 0.0  # monotonic time of the next attempt while RECON holds the lock

    def add(
        self, doc_hash: str, status: str, domain: str | None, fingerprint: str | None = None
    ) -> None:
        if self.dry_run or self.store is None:
            return
        self.pending.append(DomainDecision(doc_hash, status, domain, fingerprint))
        while len(self.pending) >= self.batch_size:
            behind = len(self.pending) >= MAX_BATCHES_BEHIND * self.batch_size
            if not behind and time.monotonic() < self.next_try:
                return
            if not self._write_batch(wait=behind):
                self.next_try = time.monotonic() + LOCK_PAUSE_S
                return

    def flush(self) -> None:
        """Write everything pending, waiting for the lock."""
        while self.pending:
            self._write_batch(wait=True)

    def _write_batch(self, *, wait: bool) -> bool:
        """Write the oldest batch in one transaction; False when wait=False found RECON
        holding the lock (nothing written)."""
        assert self.store is not None
        batch = self.pending[: self.batch_size]
        try:
            n = self.store.write_decisions(
                batch, batch_size=self.batch_size, only_from=self.only_from, wait=wait
            )
        except ReconLocked as exc:
            if not wait:
                return False
            raise DecisionWriteError(str(exc.after(
                f"the pass stopped with {self.written} decisions written, in whole "
                f"batches; the {len(self.pending)} decided since were not written (a "
                "re-run picks up only what is still undecided)"
            ))) from exc
        except Exception as exc:
            raise DecisionWriteError(
                f"writing {len(batch)} decisions to recon.db failed ({exc}); "
                f"{self.written} were written before. Earlier batches are kept and a "
                "re-run only picks up what is still undecided."
            ) from exc
        self.written += n
        del self.pending[: len(batch)]
        return True


# -- pass 1 --------------------------------------------------------------------------------
def run_pass1(
    store: ReconStore,
    concepts_root: Path,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    documents: Sequence[StreamDocument] | None = None,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
    on_progress: ProgressCallback | None = None,
) -> Pass1Result:
    """Pass 1 over the backfill candidates (or an explicit list, for the steady state).

    Reads each document's window files once (skipping those above ``max_window_file_mb``),
    decides with :func:`decide_pass1`, and writes decisions in batches of ``batch_size``
    unless ``dry_run``. ``on_progress(done, total)``: after each document (total: the
    candidates).
    """
    docs = list(store.backfill_candidates() if documents is None else documents)
    report = on_progress or no_progress
    root = Path(concepts_root)
    tally = _ReadTally()
    writer = _BatchWriter(store, batch_size, dry_run, (None,))
    decisions: list[DocumentDecision] = []
    errors: list[DocumentError] = []
    report(0, len(docs))
    for done, doc in enumerate(docs, 1):
        try:
            counts = _read_checked(root, doc.hash, tally, max_window_file_mb)
            decision = decide_pass1(counts.counts)
        except Exception as exc:  # one bad document never aborts the pass (SPEC §4)
            errors.append(DocumentError(str(doc.hash), _error_reason(exc)))
            report(done, len(docs))
            continue
        tally.states[counts.state] += 1
        decisions.append(
            DocumentDecision(
                doc.hash,
                doc.channel,
                decision.status,
                decision.domain,
                ranked(counts.counts, max(_TOP_N, len(decision.tied_domains) + 1)),
                counts.state,
                RULE_PASS1,
                decision.tied_domains,
                fingerprint=counts.fingerprint,
            )
        )
        writer.add(doc.hash, decision.status, decision.domain, counts.fingerprint)
        report(done, len(docs))
    writer.flush()
    return Pass1Result(
        candidates=len(docs),
        decisions=decisions,
        errors=errors,
        files_read=tally.files_read,
        skipped_files=dict(tally.skipped_files),
        skipped_items=dict(tally.skipped_items),
        states=dict(tally.states),
        written=writer.written,
        dry_run=dry_run,
        skip_examples=tally.examples,
    )


# -- pass 2 / 3 ----------------------------------------------------------------------------
def _channel_total(
    members: Iterable[str],
    concepts_root: Path,
    tally: _ReadTally,
    known: Mapping[str, Counter[str]],
    problems: list[DocumentError],
    channel: str,
    max_file_mb: float,
    failed: set[str] | None = None,
) -> Counter[str]:
    """Sum valid-domain counts over a channel's members, reusing counts already read.

    Members that cannot be read are left out and listed in ``problems``; members in
    ``failed`` (already reported as errors this run) are left out without a second read.
    """
    total: Counter[str] = Counter()
    for member in members:
        if failed and member in failed:
            problems.append(DocumentError(str(member), f"channel {channel!r}: not readable"))
            continue
        counts = known.get(member)
        if counts is None:
            try:
                counts = _read_checked(concepts_root, member, tally, max_file_mb).counts
            except Exception as exc:
                problems.append(
                    DocumentError(str(member), f"channel {channel!r}: {_error_reason(exc)}")
                )
                continue
        total.update(counts)
    return total


def _others(
    total: Counter[str], own: Counter[str], doc_hash: str, members: Set[str]
) -> dict[str, int]:
    """Channel counts of the document's domains minus its own contribution (when the
    channel total includes it)."""
    counted = own if doc_hash in members else Counter()
    return {d: total.get(d, 0) - counted.get(d, 0) for d in own}


def _channel_failed(
    channel: str,
    docs: Sequence[StreamDocument],
    exc: BaseException,
    decisions: list[DocumentDecision],
    errors: list[DocumentError],
) -> None:
    """Report every undecided tied document of a channel whose context could not be built."""
    decided = {d.hash for d in decisions}
    for doc in docs:
        if doc.hash not in decided:
            errors.append(DocumentError(doc.hash, f"channel {channel!r}: {_error_reason(exc)}"))


def run_tiebreaker(
    store: ReconStore,
    concepts_root: Path,
    skip_channels: Iterable[str] = DEFAULT_SKIP_CHANNELS,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    documents: Sequence[StreamDocument] | None = None,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
    on_progress: ProgressCallback | None = None,
) -> TiebreakResult:
    """Pass 2 (and pass 3) over every tied_pass_1 document of the store's stream source.

    1. Recount each tied document's own files (once).
    2. For the still-tied documents of channels not on the skip list: read every channel
       member's files once for the whole run (tied members reuse step 1's counts), sum
       them once per channel, and give each tied document the channel total minus its own
       counts; the highest channel count among its tied domains wins.
    3. Channels where some document's channel counts are tied again are recounted once
       (RECON may be writing concept files meanwhile) and decided finally.

    ``on_progress(done, total)``: tied documents settled (decided or failed) of all of them,
    after each own recount and after each channel.
    """
    skip = frozenset(skip_channels)
    root = Path(concepts_root)
    tied_docs = list(
        store.documents_with_status(Status.TIED_PASS_1) if documents is None else documents
    )
    tally = _ReadTally()
    writer = _BatchWriter(store, batch_size, dry_run, (Status.TIED_PASS_1,))
    decisions: list[DocumentDecision] = []
    errors: list[DocumentError] = []
    problems: list[DocumentError] = []
    own: dict[str, Counter[str]] = {}
    states: dict[str, str] = {}
    prints: dict[str, str] = {}  # hash -> fingerprint of the files of its latest recount
    pending: dict[str, list[StreamDocument]] = defaultdict(list)
    failed: set[str] = set()  # tied documents already reported: not read again as members
    report = on_progress or no_progress

    def settled() -> None:
        report(min(len(decisions) + len(errors), len(tied_docs)), len(tied_docs))

    def record(doc: StreamDocument, counts: Counter[str], dec: TiebreakDecision) -> None:
        assert dec.status is not None
        decisions.append(
            DocumentDecision(
                doc.hash,
                doc.channel,
                dec.status,
                dec.domain,
                ranked(counts, max(_TOP_N, len(dec.tied_domains) + 1)),
                states.get(doc.hash, ""),
                dec.rule,
                dec.tied_domains,
                dec.channel_counts,
                prints.get(doc.hash),
            )
        )
        writer.add(doc.hash, dec.status, dec.domain, prints.get(doc.hash))

    # 1. own recount
    settled()
    for doc in tied_docs:
        try:
            counts = _read_checked(root, doc.hash, tally, max_window_file_mb)
        except Exception as exc:
            errors.append(DocumentError(str(doc.hash), _error_reason(exc)))
            failed.add(doc.hash)
            settled()
            continue
        own[doc.hash] = counts.counts
        states[doc.hash] = counts.state
        prints[doc.hash] = counts.fingerprint
        still_tied = decide_pass1(counts.counts).status == Status.TIED_PASS_1
        if still_tied and doc.channel is not None and doc.channel not in skip:
            pending[doc.channel].append(doc)
            continue
        dec = decide_tiebreak(counts.counts, None, channel_on_skip_list=doc.channel in skip)
        record(doc, counts.counts, dec)
        settled()

    # 2. channel context, once per channel (one catalogue scan for every channel)
    channels_counted = channels_recounted = 0
    members_of = store.channel_members_map(pending)
    recount: dict[str, list[StreamDocument]] = {}
    for channel in sorted(pending):
        docs = pending[channel]
        try:
            members = members_of.get(channel, [])
            member_set = frozenset(members)
            total = _channel_total(
                members, root, tally, own, problems, channel, max_window_file_mb, failed
            )
            channels_counted += 1
            again: list[StreamDocument] = []
            for doc in docs:
                dec = decide_tiebreak(
                    own[doc.hash],
                    _others(total, own[doc.hash], doc.hash, member_set),
                    channel_on_skip_list=False,
                )
                if dec.needs_pass_3:
                    again.append(doc)
                else:
                    record(doc, own[doc.hash], dec)
            if again:
                recount[channel] = again
        except DecisionWriteError:
            raise
        except Exception as exc:  # e.g. the store failing for this channel
            _channel_failed(channel, docs, exc, decisions, errors)
        settled()

    # 3. pass 3: re-read each still-tied channel once, own files included (RECON may have
    # written concept files meanwhile), with the membership read afresh.
    members_of = store.channel_members_map(recount) if recount else {}
    for channel in sorted(recount):
        again = recount[channel]
        try:
            members = members_of.get(channel, [])
            member_set = frozenset(members)
            fresh: dict[str, Counter[str]] = {}
            for doc in again:
                try:
                    counted = _read_checked(root, doc.hash, tally, max_window_file_mb)
                    fresh[doc.hash] = counted.counts
                    prints[doc.hash] = counted.fingerprint
                except Exception as exc:
                    errors.append(DocumentError(str(doc.hash), _error_reason(exc)))
                    failed.add(doc.hash)
            total = _channel_total(
                members, root, tally, fresh, problems, channel, max_window_file_mb, failed
            )
            channels_recounted += 1
            for doc in again:
                if doc.hash not in fresh:
                    continue
                mine = fresh[doc.hash]
                dec = decide_tiebreak(
                    mine,
                    _others(total, mine, doc.hash, member_set),
                    channel_on_skip_list=False,
                    final=True,
                )
                record(doc, mine, dec)
        except DecisionWriteError:
            raise
        except Exception as exc:
            _channel_failed(channel, again, exc, decisions, errors)
        settled()
    writer.flush()
    return TiebreakResult(
        tied_documents=len(tied_docs),
        decisions=decisions,
        errors=errors,
        # a member unreadable in pass 2 and again in pass 3 is listed once
        channel_problems=list(dict.fromkeys(problems)),
        files_read=tally.files_read,
        channels_counted=channels_counted,
        channels_recounted=channels_recounted,
        skipped_files=dict(tally.skipped_files),
        written=writer.written,
        dry_run=dry_run,
    )


# -- spot checks and benchmarks ------------------------------------------------------------
@dataclass(frozen=True)
class Rederived:
    """A decision re-derived from the files, with what justifies it."""

    hash: str
    channel: str | None
    status: str
    domain: str | None
    rule: str
    top_counts: tuple[tuple[str, int], ...]
    channel_counts: tuple[tuple[str, int], ...] = ()
    files_read: int = 0
    channel_problems: tuple[str, ...] = ()


def rederive_decision(
    concepts_root: Path,
    store: ReconStore,
    doc_hash: str,
    skip_channels: Iterable[str] = DEFAULT_SKIP_CHANNELS,
    *,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
) -> Rederived:
    """Re-derive one document's decision independently from its files (spot-check gates).

    A clear own winner gives the pass-1 rule (assigned); otherwise the tiebreak rule with
    the channel counted afresh (every other member of its channel and source), decided
    finally (a tie here is tied_manual). Raises UnsafeHashError or UnreadableConceptsError
    when the document's own files cannot be read; channel members that cannot be read are
    left out and listed in ``channel_problems``.
    """
    root = Path(concepts_root)
    tally = _ReadTally()
    mine = _read_checked(root, doc_hash, tally, max_window_file_mb).counts
    channel = store.channel_of(doc_hash)
    p1 = decide_pass1(mine)
    top = ranked(mine, max(_TOP_N, len(p1.tied_domains) + 1))
    if p1.status != Status.TIED_PASS_1:
        return Rederived(
            doc_hash, channel, p1.status, p1.domain, RULE_PASS1, top, (), tally.files_read
        )
    skip = frozenset(skip_channels)
    problems: list[DocumentError] = []
    if channel is None or channel in skip:
        dec = decide_tiebreak(mine, None, channel_on_skip_list=channel in skip)
    else:
        others = [m for m in store.channel_members(channel) if m != doc_hash]
        total = _channel_total(others, root, tally, {}, problems, channel, max_window_file_mb)
        # Its own hash was left out of `others`, so nothing is subtracted.
        dec = decide_tiebreak(
            mine, _others(total, mine, doc_hash, frozenset()), channel_on_skip_list=False,
            final=True,
        )
    assert dec.status is not None
    return Rederived(
        doc_hash,
        channel,
        dec.status,
        dec.domain,
        dec.rule,
        top,
        dec.channel_counts,
        tally.files_read,
        tuple(f"{p.hash}: {p.reason}" for p in problems),
    )


@dataclass(frozen=True)
class SpotCheckRow:
    """One sampled document: what is stored, what the files say, and whether they agree."""

    hash: str
    channel: str | None
    stored_status: str | None
    stored_domain: str | None
    expected_status: str | None
    expected_domain: str | None
    agrees: bool
    top_counts: tuple[tuple[str, int], ...] = ()
    channel_counts: tuple[tuple[str, int], ...] = ()
    problem: str = ""
    path: str | None = None  # catalogue.path: the watch URL, for the reviewer


def spot_check(
    store: ReconStore,
    concepts_root: Path,
    status: str,
    sample_size: int,
    skip_channels: Iterable[str] = DEFAULT_SKIP_CHANNELS,
    *,
    seed: int | None = None,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
) -> list[SpotCheckRow]:
    """Sample up to ``sample_size`` documents with ``status`` and re-derive each (runbook
    Step 4: 20 assigned after pass 1, 5 tied_pass_2 after pass 2). A row disagrees when
    the files give another status or domain, or cannot be read."""
    docs = store.documents_with_status(status)
    rng = random.Random(seed)
    sample = rng.sample(docs, min(sample_size, len(docs)))
    rows: list[SpotCheckRow] = []
    for doc in sorted(sample, key=lambda d: d.hash):
        stored = store.domain_row(doc.hash)
        s_status = stored["recon_domain_status"] if stored is not None else None
        s_domain = stored["recon_domain"] if stored is not None else None
        try:
            r = rederive_decision(
                concepts_root, store, doc.hash, skip_channels,
                max_window_file_mb=max_window_file_mb,
            )
        except Exception as exc:
            rows.append(
                SpotCheckRow(
                    doc.hash,
                    doc.channel,
                    s_status,
                    s_domain,
                    None,
                    None,
                    False,
                    problem=_error_reason(exc),
                    path=doc.path,
                )
            )
            continue
        rows.append(
            SpotCheckRow(
                doc.hash,
                doc.channel,
                s_status,
                s_domain,
                r.status,
                r.domain,
                (r.status, r.domain) == (s_status, s_domain),
                r.top_counts,
                r.channel_counts,
                # shown, not failing: the decision still matches what the readable files say
                "; ".join(r.channel_problems),
                doc.path,
            )
        )
    return rows


def benchmark_deviation(
    result: Pass1Result | Mapping[str, float], benchmarks: Benchmarks = DEFAULTS.benchmarks
) -> list[BenchmarkCheck]:
    """Compare pass-1 percentages with the benchmarks (runbook Step 4's dry-run gate).

    ``result`` is a Pass1Result or its ``percentages()``. A check fails when the actual
    value is more than ``benchmarks.tolerance`` percentage points away from the expected one.
    """
    actual = result.percentages() if isinstance(result, Pass1Result) else dict(result)
    checks: list[BenchmarkCheck] = []
    for name, expected in benchmarks.expected().items():
        value = float(actual.get(name, 0.0))
        deviation = round(value - expected, 2)
        checks.append(
            BenchmarkCheck(name, expected, value, deviation, abs(deviation) <= benchmarks.tolerance)
        )
    return checks
