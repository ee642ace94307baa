"""The rollback tests' world: a whole sandbox migration (recon_domains_tests.rollback_world)."""

from __future__ import annotations

import pytest

from recon_domains_tests.rollback_world import run_migration, start_world


@pytest.fixture
def world(corpus_factory, peertube_server):
    w = run_migration(start_world(corpus_factory, peertube_server, docs=100))
    yield w
    w.store.close()
    w.client.close()
