"""Test knobs of the sandbox PeerTube: what a test may change about its behaviour."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Chance that a category PUT's serializable transaction conflicts with each other PUT in
# flight: a PUT with n others fails with 1 - (1 - rate) ** n. Fitted to PeerTube 8.0.1
# (PEERTUBE-FACTS.md, measured per 300 PUTs: 0 at 1 in flight, 1–9 at 4, 5–7 at 8, 10–12 at
# 16): this rate gives 0, 2.2, 5.2 and 11.0.
PEERTUBE_8_CONFLICT_RATE = 0.0025


@dataclass
class ServerKnobs:
    """Behaviour a test can change. Defaults are PeerTube's production defaults.

    latency_s: sleep before answering each request.
    error_rate: fraction of matching requests answered 500 (problem+json).
    drop_rate: fraction of matching requests whose connection is closed without an answer.
    fault_methods: HTTP methods the two faults apply to (None: every method).
    fault_path_prefix: path prefix the faults apply to.
    serialization_failure_rate: fraction of ``PUT /api/v1/videos/{id}`` that PeerTube's
        serializable transaction loses, answered with its 500 ``SequelizeDatabaseError``
        "could not serialize access…" and nothing written, drawn only while another such
        PUT is in flight: sequential PUTs never see it, as on the real server
        (PEERTUBE-FACTS.md, "Concurrent PUTs sometimes answer 500": 1–2 % at 4–12 in
        flight). 0 (off) is the default.
    serialization_conflict_rate: the same 500, drawn with a chance that rises with the
        number of PUTs in flight (queued ones included: their transactions are open): a PUT
        with n others loses with 1 - (1 - rate) ** n. PEERTUBE_8_CONFLICT_RATE reproduces
        what PeerTube 8.0.1 showed. 0 (off) is the default.
    service_time_s: how long the server works on each request (its handling happens within
        it); 0: no more than the handling itself.
    capacity: how many requests it works on at once, with service_time_s (0: unlimited); the
        others wait in arrival order, so latency grows with load and throughput stops at
        exactly capacity / service_time_s, as on a server whose CPU or database is the limit.
    token_lifetime_s / refresh_token_lifetime_s: OAuth lifetimes (1 day / 2 weeks).
    rate_limit_window_s / rate_limit_max: the API limit per IP (10 s / 50).
    login_limit_window_s / login_limit_max: the token endpoint limit per IP (5 min / 15).
    expected_host: when set, ``GET /oauth-clients/local`` answers 403 unless the Host header
        equals it (production PeerTube's check: why the client has a Host override).
    random_seed: seed of the fault dice, so a run is reproducible.
    admins_bypass_rate_limit: PeerTube's behaviour (True); False makes the API limit refuse
        admins and moderators too (benchmarks of a client's 429 handling).
    """

    latency_s: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    fault_methods: frozenset[str] | None = None
    fault_path_prefix: str = "/api/v1/"
    serialization_failure_rate: float = 0.0
    serialization_conflict_rate: float = 0.0
    capacity: int = 0
    service_time_s: float = 0.0
    token_lifetime_s: float = 86400.0
    refresh_token_lifetime_s: float = 1209600.0
    rate_limit_window_s: float = 10.0
    rate_limit_max: int = 50
    login_limit_window_s: float = 300.0
    login_limit_max: int = 15
    expected_host: str | None = None
    random_seed: int = 0
    admins_bypass_rate_limit: bool = True


KNOB_NAMES = frozenset(f.name for f in dataclasses.fields(ServerKnobs))


def checked_knobs(changes: dict[str, Any]) -> dict[str, Any]:
    """Knob values as ServerKnobs takes them: unknown names raise TypeError, fault_methods
    become an upper-case frozenset."""
    unknown = set(changes) - KNOB_NAMES
    if unknown:
        raise TypeError(f"unknown knob(s) {sorted(unknown)}; known: {sorted(KNOB_NAMES)}")
    methods = changes.get("fault_methods")
    if methods is not None:
        changes = {**changes, "fault_methods": frozenset(m.upper() for m in methods)}
    return changes
