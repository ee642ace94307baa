"""The concept reader against real files: every messy case of SPEC §3 and the §4 count rule."""

from __future__ import annotations

import itertools
import json
import os
import threading
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_domains.recon import concepts
from recon_domains.recon.concepts import (
    REASON_LEGACY_DOMAIN,
    REASON_MALFORMED_JSON,
    REASON_NO_DOMAIN,
    REASON_NON_OBJECT_ITEM,
    REASON_NOT_A_FILE,
    REASON_NOT_A_FOLDER,
    REASON_NOT_A_LIST,
    REASON_OUTSIDE_ROOT,
    REASON_TOO_LARGE,
    REASON_UNREADABLE,
    STATE_MISSING_FOLDER,
    STATE_NO_VALID_DOMAINS,
    STATE_NO_WINDOW_FILES,
    STATE_OK,
    STATE_UNREADABLE_FOLDER,
    UnsafeHashError,
    check_hash,
    read_domain_counts,
)
from recon_domains.taxonomy import DOMAINS

MED, NAV, WAT = "Medical", "Navigation", "Water Systems"
H = "0123abcd"


def write(root: Path, doc_hash: str, name: str, content: object) -> Path:
    """Write one file of a concept folder: JSON for objects, raw for str/bytes."""
    folder = root / doc_hash
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def concept(domain: object) -> dict:
    return {"concept": "x", "domain": domain, "summary": "…"}


def reasons(result) -> dict[str, int]:
    out: Counter[str] = Counter()
    for s in result.skipped:
        out[s.reason] += s.count
    return dict(out)


# -- counting rule ---------------------------------------------------------------------------
def test_string_domains_count_once_each_over_all_window_files(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [concept(MED), concept(MED), concept(NAV)])
    write(tmp_path, H, "window_0002.json", [concept(MED), concept(WAT)])
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 3, NAV: 1, WAT: 1})
    assert (r.folder_exists, r.files_read, r.concepts_seen, r.state) == (True, 2, 5, STATE_OK)
    assert r.skipped == ()


def test_list_valued_domain_counts_each_distinct_valid_element_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        H,
        "window_0001.json",
        [
            concept([MED, NAV]),
            concept([MED, MED, "Old Legacy Domain"]),  # duplicate counts once
            concept(["Old Legacy Domain", "Survival"]),  # no valid element: legacy
            concept([]),  # empty list: no domain
            concept([["nested"], {"x": 1}, 7, WAT]),  # unhashable junk ignored, WAT counted
        ],
    )
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 2, NAV: 1, WAT: 1})
    assert reasons(r) == {REASON_LEGACY_DOMAIN: 1, REASON_NO_DOMAIN: 1}
    assert r.concepts_seen == 5


def test_legacy_only_document_has_no_valid_domains(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [concept("Survival"), concept("medical")])
    write(tmp_path, H, "window_0002.json", [concept(" Medical"), concept(["Prepping"])])
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter()
    assert r.state == STATE_NO_VALID_DOMAINS
    assert reasons(r) == {REASON_LEGACY_DOMAIN: 4}
    assert r.concepts_seen == 4


def test_missing_null_or_non_string_domain_is_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        H,
        "window_0001.json",
        [{"concept": "no domain"}, concept(None), concept(3), concept({"d": MED}), concept(MED)],
    )
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 1})
    assert reasons(r) == {REASON_NO_DOMAIN: 4}


def test_every_one_of_the_18_domains_is_valid(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [concept(d) for d in DOMAINS])
    assert read_domain_counts(tmp_path, H).counts == Counter(dict.fromkeys(DOMAINS, 1))


# -- folder states ---------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path) -> None:
    r = read_domain_counts(tmp_path, "nope")
    assert (r.folder_exists, r.state, r.files_read, r.counts) == (
        False,
        STATE_MISSING_FOLDER,
        0,
        Counter(),
    )


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / H).write_text("not a folder")
    r = read_domain_counts(tmp_path, H)
    assert r.state == STATE_MISSING_FOLDER and not r.folder_exists
    assert reasons(r) == {REASON_NOT_A_FOLDER: 1}


def test_empty_folder_and_meta_only_folder_have_no_window_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert read_domain_counts(tmp_path, "empty").state == STATE_NO_WINDOW_FILES
    # meta.json is never read, even when it looks like a concept list.
    write(tmp_path, H, "meta.json", [concept(MED)])
    r = read_domain_counts(tmp_path, H)
    assert (r.state, r.files_read, r.counts, r.folder_exists) == (
        STATE_NO_WINDOW_FILES,
        0,
        Counter(),
        True,
    )


def test_only_window_star_json_files_count(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [concept(MED)])
    for name in (
        "meta.json",
        "window_0002.json.bak",
        "window_0003.txt",
        "WINDOW_0004.json",
        "concepts_0005.json",
        ".window_0006.json",
        "window0007.json",
    ):
        write(tmp_path, H, name, [concept(NAV)])
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 1})
    assert r.files_read == 1 and r.window_files == 1


def test_empty_list_file_is_fine_and_counts_nothing(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [])
    write(tmp_path, H, "window_0002.json", [concept(NAV)])
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({NAV: 1}) and r.skipped == () and r.files_read == 2


def test_only_empty_lists_means_no_valid_domains(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [])
    r = read_domain_counts(tmp_path, H)
    assert r.state == STATE_NO_VALID_DOMAINS and r.files_read == 1


# -- bad files never raise -------------------------------------------------------------------
def test_malformed_json_non_utf8_and_deep_nesting_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", '[{"domain": "Medical"},')  # truncated
    write(tmp_path, H, "window_0002.json", b'[{"domain": "\xff\xfe\xfa"}]')  # not UTF-8
    write(tmp_path, H, "window_0003.json", "[" * 200_000 + "]" * 200_000)  # recursion
    write(tmp_path, H, "window_0004.json", "")  # empty file
    write(tmp_path, H, "window_0005.json", [concept(NAV)])
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({NAV: 1})
    assert reasons(r) == {REASON_MALFORMED_JSON: 4}
    assert [s.file for s in r.skipped] == [f"{H}/window_000{i}.json" for i in (1, 2, 3, 4)]
    assert r.files_read == 5


def test_files_json_loads_reads_count_though_the_fast_parser_refuses_them(tmp_path: Path):
    """orjson refuses these; the standard library reads them, and so they count."""
    write(tmp_path, H, "window_0001.json", '[{"domain": "Medical", "confidence": NaN}]')
    write(tmp_path, H, "window_0002.json", b'\xef\xbb\xbf[{"domain": "Medical"}]')  # BOM
    write(tmp_path, H, "window_0003.json", '[{"domain": "Medical"}]'.encode("utf-16"))
    write(tmp_path, H, "window_0004.json", '[{"domain": "Medical", "summary": "\\ud800"}]')
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 4}) and r.skipped == ()


def test_non_list_file_and_non_object_items(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", {"domain": MED})  # an object, not a list
    write(tmp_path, H, "window_0002.json", "null")
    write(tmp_path, H, "window_0003.json", [concept(MED), "Medical", 3, None, [concept(MED)]])
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 1})
    assert reasons(r) == {REASON_NOT_A_LIST: 2, REASON_NON_OBJECT_ITEM: 4}
    assert r.concepts_seen == 1


def test_directory_named_like_a_window_file_and_broken_symlink(tmp_path: Path) -> None:
    write(tmp_path, H, "window_0001.json", [concept(MED)])
    (tmp_path / H / "window_0002.json").mkdir()
    (tmp_path / H / "window_0003.json").symlink_to(tmp_path / "does-not-exist")
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 1})
    assert reasons(r) == {REASON_NOT_A_FILE: 2}
    assert r.files_read == 1


def test_unreadable_file_is_reported_not_raised(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, H, "window_0001.json", [concept(MED)])
    bad = write(tmp_path, H, "window_0002.json", [concept(NAV)])
    real_open = os.open

    def fake_open(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(bad):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    # Running as root, chmod 000 would not stop us: simulate the OS refusing instead.
    monkeypatch.setattr(concepts.os, "open", fake_open)
    r = read_domain_counts(tmp_path, H)
    assert r.counts == Counter({MED: 1})
    assert [(s.file, s.reason) for s in r.unreadable] == [
        (f"{H}/window_0002.json", REASON_UNREADABLE)
    ]
    assert "Permission denied" in r.unreadable[0].detail


def test_unreadable_folder_is_reported_not_raised(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, H, "window_0001.json", [concept(MED)])

    def fake_scandir(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(concepts.os, "scandir", fake_scandir)
    r = read_domain_counts(tmp_path, H)
    assert r.state == STATE_UNREADABLE_FOLDER and r.folder_exists
    assert r.unreadable and r.counts == Counter()


# -- the size cap (RECON_MAX_WINDOW_FILE_MB) --------------------------------------------------
MB = 1024 * 1024


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes (all zero) that takes no disk space: quick however large."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def traced_peak(fn):
    """(fn(), the most memory Python allocated while it ran)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_window_file_above_the_cap_is_skipped_unread_with_its_size_and_what_to_do(
    tmp_path: Path,
) -> None:
    write(tmp_path, H, "window_0001.json", [concept(MED)])
    sparse(tmp_path / H / "window_0002.json", 200 * MB)
    write(tmp_path, H, "window_0003.json", [concept(NAV), concept(MED)])
    r, peak = traced_peak(lambda: read_domain_counts(tmp_path, H, max_file_mb=16))
    assert r.counts == Counter({MED: 2, NAV: 1}) and r.state == STATE_OK
    assert reasons(r) == {REASON_TOO_LARGE: 1}
    (skip,) = r.skipped
    assert skip.file == f"{H}/window_0002.json"
    assert skip.detail.startswith("209,715,200 bytes (200.0 MB), above RECON_MAX_WINDOW_FILE_MB")
    assert "(16 MB)" in skip.detail and "raise RECON_MAX_WINDOW_FILE_MB" in skip.detail
    # Never read: reading it would have allocated its 200 MB (and parsing it much more).
    assert peak < MB


def test_the_cap_is_inclusive(tmp_path: Path) -> None:
    items = [concept(MED), {"pad": ""}]
    items[1]["pad"] = "x" * (MB - len(json.dumps(items)))
    path = write(tmp_path, H, "window_0001.json", items)
    assert path.stat().st_size == MB
    assert read_domain_counts(tmp_path, H, max_file_mb=1).counts == Counter({MED: 1})
    with open(path, "a") as fh:
        fh.write(" ")  # still valid JSON, one byte over
    r = read_domain_counts(tmp_path, H, max_file_mb=1)
    assert r.counts == Counter() and r.state == STATE_NO_VALID_DOMAINS
    assert reasons(r) == {REASON_TOO_LARGE: 1}
    assert r.skipped[0].detail.startswith("1,048,577 bytes (1.0 MB)")


def test_a_file_that_changed_since_fstat_is_read_to_its_end_within_the_cap(tmp_path: Path):
    """RECON may write a file between fstat and read: the reader reads to the end, but
    never more than cap + 1 bytes (a race, so the stale size is handed in directly)."""
    path = tmp_path / "window_0001.json"
    path.write_bytes(b"x" * 5000)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert concepts._read_capped(fd, 10, 8192) == b"x" * 5000  # grew since fstat
        os.lseek(fd, 0, os.SEEK_SET)
        assert concepts._read_capped(fd, 6000, 8192) == b"x" * 5000  # shrank
        os.lseek(fd, 0, os.SEEK_SET)
        assert concepts._read_capped(fd, 9000, 8192) is None  # fstat said too large
    finally:
        os.close(fd)
    sparse(path, 64 * MB)
    fd = os.open(path, os.O_RDONLY)
    try:
        grown, peak = traced_peak(lambda: concepts._read_capped(fd, 10, MB))
    finally:
        os.close(fd)
    assert grown is None and peak < 3 * MB  # grew past the cap: stopped near cap + 1 bytes
    assert concepts._too_large(10, MB).startswith(
        "grew while being read, above RECON_MAX_WINDOW_FILE_MB (1 MB): not read"
    )


def test_a_fifo_swapped_in_after_the_scan_does_not_hang_the_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "window_0001.json"
    os.mkfifo(fifo)
    skipped: list = []
    reader = threading.Thread(
        target=concepts._count_file,
        args=(os.fspath(fifo), "h/window_0001.json", Counter(), skipped, MB),
        daemon=True,
    )
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "opening a FIFO with no writer blocked the reader"
    assert [s.reason for s in skipped] == [REASON_MALFORMED_JSON]  # empty: nothing to parse


# -- unsafe hashes and symlinks ----------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "../x", "a/b", "/etc", "/", "a\\b", "..\\..", "a\x00b", None, 12, b"abc"],
)
def test_unsafe_hashes_are_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(UnsafeHashError):
        read_domain_counts(tmp_path, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # UnsafeHashError is a ValueError
        check_hash(bad)


def test_dot_dot_hash_cannot_read_a_sibling_folder(tmp_path: Path) -> None:
    root = tmp_path / "concepts"
    root.mkdir()
    write(tmp_path, "", "window_0001.json", [concept(MED)])  # tmp_path/window_0001.json
    with pytest.raises(UnsafeHashError, match="plain folder name"):
        read_domain_counts(root, "..")


def test_symlinked_folder_escaping_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "concepts"
    outside = tmp_path / "elsewhere"
    write(outside, "secret", "window_0001.json", [concept(MED)])
    root.mkdir()
    (root / H).symlink_to(outside / "secret", target_is_directory=True)
    with pytest.raises(UnsafeHashError, match="outside the concepts root"):
        read_domain_counts(root, H)


def test_symlinked_folder_inside_the_root_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "concepts"
    write(root, "real", "window_0001.json", [concept(NAV)])
    (root / H).symlink_to(root / "real", target_is_directory=True)
    assert read_domain_counts(root, H).counts == Counter({NAV: 1})


def test_symlinked_root_itself_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real-root"
    write(real, H, "window_0001.json", [concept(NAV)])
    (tmp_path / "link-root").symlink_to(real, target_is_directory=True)
    assert read_domain_counts(tmp_path / "link-root", H).counts == Counter({NAV: 1})


def test_symlinked_window_file_escaping_the_root_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "concepts"
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps([concept(MED)] * 5))
    write(root, H, "window_0001.json", [concept(NAV)])
    (root / H / "window_0002.json").symlink_to(secret)
    r = read_domain_counts(root, H)
    assert r.counts == Counter({NAV: 1})
    assert reasons(r) == {REASON_OUTSIDE_ROOT: 1}


# -- each file is opened once; names in sorted order -----------------------------------------
def test_each_window_file_is_opened_exactly_once_in_name_order(tmp_path: Path, monkeypatch):
    for i in (3, 1, 10, 2):
        write(tmp_path, H, f"window_{i:04d}.json", [concept(MED)])
    write(tmp_path, H, "meta.json", {"windows": 4})
    opened: list[str] = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(os.path.basename(os.fspath(path)))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(concepts.os, "open", counting_open)
    r = read_domain_counts(tmp_path, H)
    assert opened == [
        "window_0001.json",
        "window_0002.json",
        "window_0003.json",
        "window_0010.json",
    ]
    assert r.files_read == 4 and r.counts == Counter({MED: 4})


# -- property: how concepts are split over window files does not matter ------------------------
LEGACY = ["Survival", "Prepping", "medical"]
domain_values = st.one_of(
    st.sampled_from(DOMAINS),
    st.sampled_from(LEGACY),
    st.lists(st.sampled_from(list(DOMAINS[:5]) + LEGACY), max_size=4),
    st.none(),
)


def reference_counts(domains: list[object]) -> Counter[str]:
    """The SPEC §4 rule, written independently of the reader."""
    out: Counter[str] = Counter()
    for d in domains:
        if isinstance(d, str) and d in DOMAINS:
            out[d] += 1
        elif isinstance(d, list):
            out.update({x for x in d if x in DOMAINS})
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    domains=st.lists(domain_values, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
    names=st.permutations(list(range(1, 10))),
)
def test_counts_do_not_depend_on_window_split_or_order(
    tmp_path_factory, domains: list[object], cuts: list[int], names: list[int]
) -> None:
    root = tmp_path_factory.mktemp("split")
    bounds = sorted({0, len(domains), *(c for c in cuts if c <= len(domains))})
    chunks = [domains[a:b] for a, b in itertools.pairwise(bounds)] or [[]]
    for chunk, number in zip(chunks, names, strict=False):
        write(root, H, f"window_{number:04d}.json", [concept(d) for d in chunk])
    r = read_domain_counts(root, H)
    assert r.counts == reference_counts(domains)
    assert r.files_read == len(chunks)
    assert r.concepts_seen == len(domains)
