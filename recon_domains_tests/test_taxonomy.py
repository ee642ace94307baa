"""The taxonomy's one data file: read by the plugin and by recon_domains.taxonomy alike."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from recon_domains import taxonomy
from recon_domains.taxonomy import TaxonomyError, read_categories

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DATA = REPO / "peertube-plugin" / taxonomy.PLUGIN_NPM_NAME / taxonomy.CATEGORIES_FILE

# SPEC §2, pinned once. Pushed videos keep these ids in PeerTube, so none may be renumbered,
# relabelled or removed; a domain added to the data file keeps this test passing.
SPEC_DOMAINS = {
    100: "Agriculture & Livestock",
    101: "Civil Organization",
    102: "Communications",
    103: "Food Systems",
    104: "Foundational Skills",
    105: "Logistics",
    106: "Medical",
    107: "Navigation",
    108: "Operations",
    109: "Power Systems",
    110: "Preservation & Storage",
    111: "Security",
    112: "Shelter & Construction",
    113: "Technology",
    114: "Tools & Equipment",
    115: "Vehicles",
    116: "Water Systems",
    117: "Wilderness Skills",
}


def test_every_spec_domain_keeps_its_id_and_label() -> None:
    assert {i: taxonomy.DOMAIN_BY_ID.get(i) for i in SPEC_DOMAINS} == SPEC_DOMAINS


def test_the_packaged_file_is_the_plugins_file() -> None:
    # In the source tree recon_domains/categories.json is a symlink, not a second copy.
    packaged = Path(str(resources.files("recon_domains") / taxonomy.CATEGORIES_FILE))
    assert packaged.is_symlink()
    assert packaged.resolve() == PLUGIN_DATA.resolve()


def test_everything_is_derived_from_the_file() -> None:
    on_disk = read_categories(PLUGIN_DATA)
    assert dict(taxonomy.DOMAIN_BY_ID) == on_disk
    assert dict(taxonomy.DOMAIN_IDS) == {label: i for i, label in on_disk.items()}
    assert tuple(on_disk.values()) == taxonomy.DOMAINS
    assert (min(on_disk), max(on_disk)) == (taxonomy.FIRST_CATEGORY_ID, taxonomy.LAST_CATEGORY_ID)
    assert not set(on_disk) & set(taxonomy.PEERTUBE_BUILT_IN_CATEGORIES)


def test_read_categories_returns_ids_in_order(tmp_path: Path) -> None:
    path = tmp_path / "categories.json"
    path.write_text('{\n  "120": "Zeta",\n  "19": "Alpha",\n  "101": "Mid"\n}\n', "utf-8")
    assert list(read_categories(path).items()) == [(19, "Alpha"), (101, "Mid"), (120, "Zeta")]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"100": "A",\n "101": B}', "not valid JSON (Expecting value at line 2, column 9)"),
        ('[["100", "A"]]', "it holds a JSON list, not an object of id → label"),
        ("{}", "it lists no domain"),
        ('{"100": "A", "100": "B"}', "id '100' is listed more than once"),
        ('{"1OO": "A"}', "'1OO' is not a category id"),
        ('{"0100": "A"}', "'0100' is not a category id"),
        ('{"-5": "A"}', "'-5' is not a category id"),
        ('{"15": "Science"}', "id 15 is PeerTube's built-in category 'Science & Technology'"),
        ('{"100": ""}', "the label of '100' must be a non-empty string"),
        ('{"100": " Medical"}', 'without surrounding spaces, found " Medical"'),
        ('{"100": 7}', "the label of '100' must be a non-empty string without surrounding "
         "spaces, found 7"),
        ('{"100": "A", "101": "A"}', "label 'A' is used by more than one id"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "categories.json"
    path.write_text(content, "utf-8")
    with pytest.raises(TaxonomyError) as caught:
        read_categories(path)
    message = str(caught.value)
    assert message.startswith(f"The RECON domain list {path} is malformed: ")
    assert problem in message


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "categories.json"
    path.write_text('{"abc": "A", "3": "B", "200": ""}', "utf-8")
    with pytest.raises(TaxonomyError) as caught:
        read_categories(path)
    message = str(caught.value)
    assert "'abc' is not a category id" in message
    assert "id 3 is PeerTube's built-in category 'Vehicles'" in message
    assert "the label of '200' must be a non-empty string" in message


def test_a_missing_file_says_how_to_restore_it(tmp_path: Path) -> None:
    path = tmp_path / "categories.json"
    with pytest.raises(TaxonomyError) as caught:
        read_categories(path)
    message = str(caught.value)
    assert message.startswith(f"The RECON domain list {path} cannot be read (")
    assert "symlink" in message and "reinstall" in message


def test_a_malformed_file_stops_the_import_with_one_message(tmp_path: Path) -> None:
    # A copy of the package's taxonomy next to a broken data file, imported without site
    # packages (so not the installed package): the import itself fails.
    package = tmp_path / "recon_domains"
    package.mkdir()
    (package / "__init__.py").write_text("", "utf-8")
    shutil.copy(Path(taxonomy.__file__), package / "taxonomy.py")
    (package / taxonomy.CATEGORIES_FILE).write_text('{\n  "100": A\n}\n', "utf-8")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", "import recon_domains.taxonomy"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"recon_domains.taxonomy.TaxonomyError: The RECON domain list "
        f"{package / taxonomy.CATEGORIES_FILE} is malformed: not valid JSON (Expecting value at "
        'line 2, column 10). It must be one JSON object with one line per domain, '
        '"<category id>": "<label>" (e.g. "118": "New Domain"); fix the file, then run again.'
    )


def test_categories_are_described_by_their_labels() -> None:
    assert taxonomy.describe_category(15) == "15 Science & Technology"
    assert taxonomy.describe_category(2) == "2 Films"
    first = taxonomy.FIRST_CATEGORY_ID
    assert taxonomy.describe_category(first) == f"{first} {taxonomy.DOMAIN_BY_ID[first]}"
    assert taxonomy.describe_category(None) == "no category"
    assert taxonomy.describe_category(205) == "205 (not a RECON or built-in category)"
