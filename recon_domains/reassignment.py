"""The scheduled re-assignment: documents whose concept files changed since their decision
are decided again, and tied_manual documents retry the tiebreaker as their channel grows.

Plain core. The Dagster layer runs it as `reassignment_dry_run` (plan_reassignment, reads
only), its gate (verdicts.reassignment: the share of changes), then `reassignment`
(apply_reassignment, in the writers' pool) and its verification.

What is decided again, and how:

- **Files changed**: every decided stream document (assigned, tied_pass_2, tied_manual,
  needs_reprocess) whose concept folder's fingerprint (recon.concepts.concept_fingerprint:
  window files' names, sizes, modification times) differs from the one recorded with its
  decision (recon.sources) is decided again by pass 1, then, when pass 1 ties, by the
  tiebreaker's rules (SPEC §4), exactly as a new document would be.
- **Ties retried**: every tied_manual document of a channel not on the skip list goes
  through the tiebreaker again (its channel may have grown enough context to break it).
- **Never**: manual_assigned (a human chose), tied_pass_1 (the tiebreaker's own work), and
  documents without a decision (pass 1's).
- **Decided before fingerprints existed** (no recorded fingerprint): their files are
  fingerprinted as of now, without deciding them again (the apply records it): from then
  on a change is seen. Deciding all of them again at once would compare a whole corpus
  against decisions made long ago, and trip the gate on the first run.

What is applied: a new decision that categorizes the document (assigned, tied_pass_2) with
another domain, or another status. Held, listed and not written: a decision that would send
a document to needs_reprocess (its files give no valid domain now: RECON may be re-enriching
it, and the reprocess step quarantines folders), or un-categorize one (tied now, where it was
categorized: PeerTube keeps its category until a human decides). A changed category is
pushed through the push engine and its ledger (stage `reassignment`), so the category
before is recorded and `rollback_peertube_categories` restores the original exactly; a
video whose category was changed in PeerTube since our push (drift) is not overwritten:
the document is held and reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recon_domains.assignment import (
    DocumentDecision,
    DocumentError,
    run_pass1,
    run_tiebreaker,
)
from recon_domains.peertube.categories import PeerTubeCategories
from recon_domains.pushed import MISSING, pushed_videos
from recon_domains.recon.concepts import concept_fingerprint
from recon_domains.recon.store import (
    SOURCES_TABLE,
    ReconStore,
    ReconStoreError,
    Redecision,
    StreamDocument,
)
from recon_domains.settings import DEFAULTS
from recon_domains.taxonomy import (
    CATEGORIZED,
    DEFAULT_SKIP_CHANNELS,
    Status,
    describe_category,
)

# The push ledger's stage of the re-assignment's pushes.
STAGE = "reassignment"
# Decided statuses the re-assignment looks at (never manual_assigned, never tied_pass_1).
REDECIDED: tuple[str, ...] = (
    Status.ASSIGNED,
    Status.TIED_PASS_2,
    Status.TIED_MANUAL,
    Status.NEEDS_REPROCESS,
)
FILES_CHANGED = "files changed"
TIE_RETRIED = "tie retried"
HELD_NO_VALID = (
    "its files now give no valid domain: kept as decided (RECON may be re-enriching it; "
    "look at its concept folder; the reprocess step is the way to re-queue it)"
)
HELD_TIED = (
    "now tied: kept as decided, so PeerTube keeps its category (a human decides on the "
    "review page once it is tied_manual; clear it with rollback_assignments to send it there)"
)


@dataclass(frozen=True)
class Change:
    """One document whose decision would change: from what to what, and why."""

    hash: str
    channel: str | None
    path: str | None  # its watch URL on PeerTube
    old_status: str
    old_domain: str | None
    status: str
    domain: str | None
    why: str  # FILES_CHANGED or TIE_RETRIED
    rule: str  # the pass's rule that decided it
    fingerprint: str
    held: str = ""  # why it is not applied ("": applied)

    @property
    def category_changes(self) -> bool:
        """Whether PeerTube's category of this video would change (a push)."""
        return self.status in CATEGORIZED and (
            self.old_status not in CATEGORIZED or self.old_domain != self.domain
        )

    def held_as(self, reason: str) -> Change:
        return replace(self, held=reason)


def _label(status: str, domain: str | None) -> str:
    """How a decision reads in the tables: the category it gives, or the status."""
    if status in CATEGORIZED and domain is not None:
        return domain
    return status


@dataclass
class ReassignmentPlan:
    """What the re-assignment would do now (nothing written)."""

    decided: int  # decided stream documents looked at (manual_assigned not among them)
    categorized: int  # categorized stream documents: the gate's denominator
    manual_assigned: int  # never decided again
    files_changed: int  # documents whose files changed since their decision
    ties_retried: int  # tied_manual documents whose tiebreaker was retried
    changes: list[Change] = field(default_factory=list)  # applied and held
    # (hash, fingerprint, status, domain): files changed, decision did not
    refreshes: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    # (hash, fingerprint): decided before fingerprints existed
    baselines: list[tuple[str, str]] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    files_read: int = 0

    @property
    def applicable(self) -> list[Change]:
        return [c for c in self.changes if not c.held]

    @property
    def held(self) -> list[Change]:
        return [c for c in self.changes if c.held]

    def pairs(self) -> list[tuple[str, str, int, int]]:
        """(from, to, documents, of them held) by decision pair, most documents first."""
        total: Counter[tuple[str, str]] = Counter()
        held: Counter[tuple[str, str]] = Counter()
        for c in self.changes:
            pair = (_label(c.old_status, c.old_domain), _label(c.status, c.domain))
            total[pair] += 1
            if c.held:
                held[pair] += 1
        return [
            (a, b, n, held[(a, b)])
            for (a, b), n in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def require_sources(store: ReconStore) -> None:
    """Refuse, saying what to do, when recon.db has no decisions' sources table (migrated
    before the re-assignment existed)."""
    if not store.has_sources():
        raise ReconStoreError(
            f"recon.db has no table {SOURCES_TABLE} (it was migrated before the scheduled "
            "re-assignment existed): run schema_job once more (the migration is idempotent "
            "and only adds the table), then reassignment_job"
        )


def _same(old_status: str, old_domain: str | None, new: DocumentDecision) -> bool:
    if old_status == Status.TIED_MANUAL and new.status == Status.TIED_MANUAL:
        return True  # the fallback domain is for display only
    return (old_status, old_domain) == (new.status, new.domain)


def _held_reason(old_status: str, status: str) -> str:
    if status == Status.NEEDS_REPROCESS:
        return HELD_NO_VALID
    if status not in CATEGORIZED and old_status in CATEGORIZED:
        return HELD_TIED
    return ""


def plan_reassignment(
    store: ReconStore,
    concepts_root: Path,
    skip_channels: Iterable[str] = DEFAULT_SKIP_CHANNELS,
    *,
    max_window_file_mb: float = DEFAULTS.max_window_file_mb,
) -> ReassignmentPlan:
    """Decide again what changed (see the module's doc); write nothing.

    One stat scan of every decided document's folder (no file opened), then pass 1 over
    those whose files changed and the tiebreaker over what pass 1 left tied plus the
    retried ties: each concept file read at most once per pass, as in the migration.
    """
    root = Path(concepts_root)
    skip = frozenset(skip_channels)
    rows = store.decided_stream_documents(REDECIDED)
    status = store.status_counts()
    plan = ReassignmentPlan(
        decided=len(rows),
        categorized=sum(n for s, n in status.items() if s in CATEGORIZED),
        manual_assigned=status.get(Status.MANUAL_ASSIGNED, 0),
        files_changed=0,
        ties_retried=0,
    )
    stored: dict[str, tuple[str, str | None, str | None]] = {}
    changed: list[StreamDocument] = []
    retried: list[StreamDocument] = []
    why: dict[str, str] = {}
    for doc_hash, channel, path, doc_status, domain, recorded in rows:
        doc = StreamDocument(doc_hash, channel, path)
        stored[doc_hash] = (doc_status, domain, recorded)
        try:
            current = concept_fingerprint(root, doc_hash)
        except ValueError as exc:  # an unsafe hash: never read
            plan.errors.append(DocumentError(str(doc_hash), str(exc)))
            continue
        if recorded is None:
            plan.baselines.append((doc_hash, current))
        elif recorded != current:
            changed.append(doc)
            why[doc_hash] = FILES_CHANGED
            continue
        if doc_status == Status.TIED_MANUAL and channel is not None and channel not in skip:
            retried.append(doc)
            why[doc_hash] = TIE_RETRIED
    plan.files_changed = len(changed)
    plan.ties_retried = len(retried)

    docs = {d.hash: d for d in (*changed, *retried)}
    decided: dict[str, DocumentDecision] = {}
    pass1 = run_pass1(
        store, root, dry_run=True, documents=changed, max_window_file_mb=max_window_file_mb
    )
    plan.errors += pass1.errors
    plan.files_read += pass1.files_read
    tied: list[StreamDocument] = []
    by_hash = {d.hash: d for d in changed}
    for d in pass1.decisions:
        if d.status == Status.TIED_PASS_1:
            tied.append(by_hash[d.hash])
        else:
            decided[d.hash] = d
    if tied or retried:
        tie = run_tiebreaker(
            store, root, skip, dry_run=True, documents=[*tied, *retried],
            max_window_file_mb=max_window_file_mb,
        )
        plan.errors += tie.errors
        plan.files_read += tie.files_read
        decided.update((d.hash, d) for d in tie.decisions)

    for doc_hash in sorted(decided):
        new = decided[doc_hash]
        old_status, old_domain, recorded = stored[doc_hash]
        fingerprint = new.fingerprint or ""
        if _same(old_status, old_domain, new):
            if fingerprint and fingerprint != recorded:
                plan.refreshes.append((doc_hash, fingerprint, old_status, old_domain))
            continue
        doc = docs[doc_hash]
        change = Change(
            doc_hash, doc.channel, doc.path, old_status, old_domain, new.status, new.domain,
            why[doc_hash], new.rule, fingerprint,
        )
        plan.changes.append(change.held_as(_held_reason(old_status, new.status)))
    return plan


@dataclass
class ReassignmentResult:
    """What the apply did: written, pushed, held (and why), with the push's own result."""

    plan: ReassignmentPlan
    written: list[str] = field(default_factory=list)
    drifted: list[dict[str, Any]] = field(default_factory=list)  # held: changed in PeerTube
    to_push: list[str] = field(default_factory=list)
    push: Any = None  # recon_domains.push.PushResult, when something was pushed
    baselined: int = 0
    refreshed: int = 0

    @property
    def pushed(self) -> list[str]:
        return list(self.push.succeeded) if self.push is not None else []


def drifted_videos(
    store: ReconStore, categories: PeerTubeCategories, hashes: Sequence[str]
) -> list[dict[str, Any]]:
    """Those of `hashes` marked pushed whose video shows another category than the one we
    pushed (changed in PeerTube since), or is gone: one entry each, categories by label."""
    marked = set(store.marked_pushed(hashes))
    if not marked:
        return []
    videos, _ = pushed_videos(store)
    ours = {v.hash: v for v in videos.values() if v.hash in marked}
    now = categories.categories_of([v.uuid for v in ours.values()]) if ours else {}
    out: list[dict[str, Any]] = []
    for doc_hash in sorted(ours):
        v = ours[doc_hash]
        if v.uuid in now and now[v.uuid] == v.category:
            continue
        out.append(
            {
                "hash": doc_hash,
                "video_id": v.uuid,
                "pushed_label": describe_category(v.category),
                "now_label": describe_category(now[v.uuid]) if v.uuid in now else MISSING,
            }
        )
    return out


def apply_reassignment(
    store: ReconStore,
    plan: ReassignmentPlan,
    client: Any,
    categories: PeerTubeCategories,
    *,
    workers: int = DEFAULTS.peertube.push_max_in_flight,
    max_rate: float | None = DEFAULTS.peertube.push_max_rate,
) -> ReassignmentResult:
    """Write the plan's applicable changes and push the changed categories.

    1. Documents whose pushed video was changed in PeerTube since (drift) are held: not
       written, not pushed, reported.
    2. The rest are written, each only while it still holds the decision it was re-decided
       from (a human's review-page assignment meanwhile wins); a written document whose
       category changes has its push timestamp cleared in the same transaction (PeerTube
       does not show its new category yet: if the push fails, the steady state's push
       retries it).
    3. Files changed with the decision unchanged: only the fingerprint is recorded; the
       baselines (decided before fingerprints existed) are recorded as of the dry run.
    4. The changed categories are pushed through the push engine (stage `reassignment`):
       the ledger records each video's category before, so the rollback restores exactly.
    """
    from recon_domains.push import push_items

    result = ReassignmentResult(plan)
    applicable = plan.applicable
    pushing = [c.hash for c in applicable if c.category_changes]
    result.drifted = drifted_videos(store, categories, pushing)
    held = {d["hash"] for d in result.drifted}
    by_hash = {c.hash: c for c in applicable}
    for entry in result.drifted:
        c = by_hash[entry["hash"]]
        entry.update(recon_from=_label(c.old_status, c.old_domain), recon_to=c.domain)
    redecisions = [
        Redecision(
            c.hash, c.old_status, c.old_domain, c.status, c.domain, c.fingerprint,
            unpush=c.category_changes,
        )
        for c in applicable
        if c.hash not in held
    ]
    result.written = store.write_redecisions(redecisions)
    store.refresh_sources(plan.refreshes)
    result.refreshed = len(plan.refreshes)
    result.baselined = store.record_baselines(plan.baselines)
    written = set(result.written)
    result.to_push = [h for h in pushing if h in written]
    if result.to_push:
        result.push = push_items(
            store,
            client,
            store.push_candidates(result.to_push),
            stage=STAGE,
            database=categories,
            workers=workers,
            max_rate=max_rate,
        )
    return result

