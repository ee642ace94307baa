"""A push in a process of its own, for the test that kills it with SIGKILL mid-push.

`python -m recon_domains_tests.push_process DB SOURCE URL USERNAME DSN WORKERS`, with the
password in PEERTUBE_PASSWORD: pushes every unpushed categorized document of SOURCE, reading
categories from PeerTube's database DSN, exactly as the push jobs do.
"""

from __future__ import annotations

import os
import sys

from recon_domains.peertube.client import PeerTubeClient
from recon_domains.peertube.database import PeerTubeDatabase
from recon_domains.push import push_items, select_stage_items
from recon_domains.recon.store import ReconStore


def main(argv: list[str]) -> int:
    db, source, url, username, dsn, workers = argv
    with (
        ReconStore.open(db, source) as store,
        PeerTubeClient(
            url, username, os.environ["PEERTUBE_PASSWORD"], pool_size=int(workers)
        ) as client,
    ):
        store.require_migrated()
        items = select_stage_items(store, "all")
        result = push_items(
            store, client, items, stage="all", database=PeerTubeDatabase(dsn), workers=int(workers)
        )
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
