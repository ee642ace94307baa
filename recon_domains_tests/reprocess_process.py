"""A reprocess batch of one document in a process of its own, for the tests that kill it
with SIGKILL in the middle of a quarantine write.

`python -m recon_domains_tests.reprocess_process DB SOURCE CONCEPTS QUARANTINE HASH WHERE`
runs `run_reprocess_batch` for HASH as a real batch does, with the concept folder on
"another file system" (its rename into the quarantine fails with EXDEV, so it is copied),
and dies by SIGKILL at WHERE:

- `entry`: while the entry's document.json is being made durable (before its rename);
- `copy`: after the first file of the folder's copy (it prints `copying` and waits);
- `rename`: once the copy is complete, right before it is renamed into place.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import time

from recon_domains.recon import quarantine
from recon_domains.recon.store import ReconStore
from recon_domains.reprocess import run_reprocess_batch


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    db, source, concepts, quarantine_dir, doc_hash, where = argv
    folder = os.path.join(concepts, doc_hash)
    real_rename, real_copy2, real_fsync = os.rename, shutil.copy2, os.fsync

    def rename(src, dst):
        if os.fspath(src) == folder:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        copied = quarantine.CONCEPTS_SUBDIR + quarantine.PARTIAL_SUFFIX
        if where == "rename" and os.fspath(src).endswith(copied):
            _die()
        return real_rename(src, dst)

    def copy2(src, dst, **kwargs):
        copied = real_copy2(src, dst, **kwargs)
        if where == "copy":
            print("copying", flush=True)
            time.sleep(60)  # the test kills this process now
        return copied

    def fsync(fd):
        real_fsync(fd)
        if where == "entry":
            _die()

    os.rename, shutil.copy2, os.fsync = rename, copy2, fsync
    with ReconStore.open(db, source) as store:
        result = run_reprocess_batch(store, concepts, quarantine_dir, [doc_hash], "killed")
    print(result)  # only reached when WHERE never came: the test fails on it
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
