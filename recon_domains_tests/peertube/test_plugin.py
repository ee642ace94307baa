"""The PeerTube plugin: parity with the taxonomy, and PeerTube's install-time checks.

Every test runs the real plugin JavaScript under Node (no mock of the plugin itself).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from recon_domains import taxonomy
from recon_domains.peertube.plugin_check import (
    PEERTUBE_BUILT_IN_CATEGORIES,
    PluginCheckError,
    check_and_register,
    check_plugin_folder,
    registered_categories_from_plugin,
    require_valid_plugin,
    run_plugin_register,
)

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "peertube-plugin" / taxonomy.PLUGIN_NPM_NAME


# --------------------------------------------------------------------------- helpers


# The first line of register() in main.js: code put before it runs first.
REGISTER_START = "  const logger = peertubeHelpers && peertubeHelpers.logger\n"


def copy_plugin(
    tmp_path: Path,
    folder_name: str = taxonomy.PLUGIN_NPM_NAME,
    *,
    package: Callable[[dict], object] | None = None,
    main: tuple[str, str] | None = None,
) -> Path:
    """A copy of the real plugin folder, named ``folder_name``, to damage in a test:
    ``package`` changes its package.json in place, ``main`` = (old, new) edits main.js."""
    dest = tmp_path / folder_name
    shutil.copytree(PLUGIN_DIR, dest, ignore=shutil.ignore_patterns("test", "node_modules"))
    if package is not None:
        edit_package(dest, package)
    if main is not None:
        replace_in_main(dest, *main)
    return dest


def register_first(js: str) -> tuple[str, str]:
    """A ``main`` edit for copy_plugin: register() runs ``js`` before anything else."""
    return REGISTER_START, js + REGISTER_START


def edit_package(folder: Path, change: Callable[[dict], object]) -> None:
    pkg_file = folder / "package.json"
    pkg = json.loads(pkg_file.read_text(encoding="utf-8"))
    change(pkg)
    pkg_file.write_text(json.dumps(pkg, indent=2), encoding="utf-8")


def replace_in_main(folder: Path, old: str, new: str) -> None:
    main = folder / "main.js"
    text = main.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in main.js: the test needs updating"
    main.write_text(text.replace(old, new), encoding="utf-8")


def problems_mentioning(problems: list[str], *words: str) -> list[str]:
    return [p for p in problems if all(w in p for w in words)]


# --------------------------------------------------------------------------- parity


def test_plugin_registers_exactly_the_taxonomy() -> None:
    registered = registered_categories_from_plugin(PLUGIN_DIR)

    expected = {category_id: domain for domain, category_id in taxonomy.DOMAIN_IDS.items()}
    assert registered == expected
    assert all(type(k) is int for k in registered)
    assert len(registered) == len(taxonomy.DOMAIN_IDS)
    assert min(registered) == taxonomy.FIRST_CATEGORY_ID
    assert max(registered) == taxonomy.LAST_CATEGORY_ID


def test_plugin_leaves_built_in_categories_alone() -> None:
    outcome = run_plugin_register(PLUGIN_DIR)

    assert outcome.removed == {}
    assert outcome.refused == {}
    assert not set(outcome.added) & set(PEERTUBE_BUILT_IN_CATEGORIES)
    assert outcome.warnings == ()
    assert outcome.unregister_error is None


def test_registered_categories_accepts_the_library_file_itself() -> None:
    by_file = registered_categories_from_plugin(PLUGIN_DIR / "main.js")
    assert by_file == dict(taxonomy.DOMAIN_BY_ID)


# --------------------------------------------------------------------------- the real folder


def test_real_plugin_folder_passes_every_check() -> None:
    assert check_plugin_folder(PLUGIN_DIR) == []
    require_valid_plugin(PLUGIN_DIR)  # does not raise


def test_untouched_copy_passes(tmp_path: Path) -> None:
    # Guards the defect tests below: a failure there comes from the defect, not the copy.
    assert check_plugin_folder(copy_plugin(tmp_path)) == []


# --------------------------------------------------------------------------- defects


def test_missing_bugs_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, package=lambda p: p.pop("bugs"))

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, '"bugs"', "missing"), problems
    assert len(problems) == 1


def test_bugs_as_npm_object_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(
        tmp_path, package=lambda p: p.update(bugs={"url": "https://example.org/issues"})
    )

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, '"bugs"', "plain string"), problems


def test_empty_bugs_and_homepage_are_accepted(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, package=lambda p: p.update(bugs="", homepage=""))
    assert check_plugin_folder(folder) == []


def test_homepage_that_is_not_a_url_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, package=lambda p: p.update(homepage="recon.example"))

    assert problems_mentioning(check_plugin_folder(folder), '"homepage"', "URL")


def test_missing_unregister_export_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(
        tmp_path,
        main=(
            "module.exports = { register, unregister, RECON_CATEGORIES }",
            "module.exports = { register, RECON_CATEGORIES }",
        ),
    )

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "unregister", "miss register or unregister"), problems
    assert len(problems) == 1


def test_missing_register_export_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(
        tmp_path,
        main=(
            "module.exports = { register, unregister, RECON_CATEGORIES }",
            "module.exports = { unregister }",
        ),
    )

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "does not export register"), problems
    with pytest.raises(PluginCheckError, match="register"):
        registered_categories_from_plugin(folder)


@pytest.mark.parametrize(
    ("bad_name", "expected"),
    [
        ("Peertube-Plugin-Recon-Domains", "not a valid plugin name"),
        ("recon-domains", 'must start with "peertube-plugin-"'),
        ("peertube-plugin-recon domains", "not a valid plugin name"),
    ],
)
def test_bad_name_is_reported(tmp_path: Path, bad_name: str, expected: str) -> None:
    # The folder is named like the package, so only the name rule itself can fail.
    folder = copy_plugin(tmp_path, folder_name=bad_name, package=lambda p: p.update(name=bad_name))

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, '"name"', expected), problems
    assert not problems_mentioning(problems, "the folder is named")


def test_folder_name_mismatch_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, folder_name="recon-domains-plugin")

    problems = check_plugin_folder(folder)

    assert problems_mentioning(
        problems, "'recon-domains-plugin'", "'peertube-plugin-recon-domains'", "rename"
    ), problems
    assert len(problems) == 1


def test_library_path_escaping_the_folder_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path)
    # The file really exists outside: the path itself is what PeerTube refuses.
    shutil.copy(folder / "main.js", tmp_path / "main.js")
    edit_package(folder, lambda p: p.update(library="../main.js"))

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, '"library"', '".."'), problems


def test_absolute_library_path_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path)
    edit_package(folder, lambda p: p.update(library=str(folder / "main.js")))

    assert problems_mentioning(check_plugin_folder(folder), '"library"', "absolute")


def test_missing_library_file_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path)
    (folder / "main.js").unlink()

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, '"library"', "does not exist"), problems
    with pytest.raises(PluginCheckError, match="does not exist"):
        registered_categories_from_plugin(folder)


def test_library_without_extension_resolves_like_require(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, package=lambda p: p.update(library="./main"))
    assert check_plugin_folder(folder) == []


def test_register_throwing_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, main=register_first(
        "  throw new Error('categories table is locked')\n"
    ))

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "register() failed", "categories table is locked"), (
        problems
    )
    with pytest.raises(PluginCheckError, match="categories table is locked"):
        registered_categories_from_plugin(folder)


def test_library_throwing_on_load_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(
        tmp_path, main=("'use strict'\n", "'use strict'\nrequire('no-such-module-xyz')\n")
    )

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "throws when loaded", "no-such-module-xyz"), problems


def test_unregister_throwing_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(
        tmp_path,
        main=(
            "async function unregister () {\n",
            "async function unregister () {\n  throw new Error('cannot unregister')\n",
        ),
    )

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "unregister() throws", "cannot unregister"), problems
    # register() itself worked: its categories are still readable.
    assert run_plugin_register(folder).unregister_error == "Error: cannot unregister"


def test_register_that_never_settles_is_reported(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, main=register_first("  await new Promise(() => {})\n"))

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "never finished"), problems


def test_register_that_hangs_hits_the_timeout(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, main=register_first(
        "  await new Promise(() => setInterval(() => {}, 1000))\n"
    ))

    problems = check_plugin_folder(folder, timeout=1.5)

    assert problems_mentioning(problems, "did not finish within 1.5 s", "register"), problems
    with pytest.raises(PluginCheckError, match="did not finish"):
        registered_categories_from_plugin(folder, timeout=1.5)


@pytest.mark.parametrize("field", ["description", "author", "engine", "version"])
def test_each_required_field_is_reported_when_missing(tmp_path: Path, field: str) -> None:
    folder = copy_plugin(tmp_path, package=lambda p: p.pop(field))

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, f'"{field}'), problems
    assert len(problems) == 1


def test_optional_shapes_are_checked_when_present(tmp_path: Path) -> None:
    folder = copy_plugin(
        tmp_path,
        package=lambda p: p.update(
            staticDirs={"images": "../outside"},
            css=["assets/missing.css"],
            clientScripts=[{"script": "client.js"}],
            translations={"fr-FR": "languages/fr.json"},
        ),
    )

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, '"staticDirs.images"'), problems
    assert problems_mentioning(problems, '"css" file', "does not exist"), problems
    assert problems_mentioning(problems, '"clientScripts"', '"scopes"'), problems
    assert problems_mentioning(problems, '"translations.fr-FR"', "does not exist"), problems


def test_missing_shapes_default_like_peertube(tmp_path: Path) -> None:
    def drop(p: dict) -> None:
        for key in ("staticDirs", "css", "clientScripts", "translations"):
            p.pop(key)

    folder = copy_plugin(tmp_path, package=drop)
    assert check_plugin_folder(folder) == []


def test_no_package_json(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path)
    (folder / "package.json").unlink()

    problems = check_plugin_folder(folder)

    assert problems_mentioning(problems, "package.json is missing"), problems


def test_node_missing_is_said_clearly(tmp_path: Path) -> None:
    problems = check_plugin_folder(PLUGIN_DIR, node="no-such-node-binary-xyz")

    assert problems_mentioning(problems, "Node.js was not found", "no-such-node-binary-xyz")
    with pytest.raises(PluginCheckError, match=r"Node\.js was not found"):
        registered_categories_from_plugin(PLUGIN_DIR, node="no-such-node-binary-xyz")


# --------------------------------------------------------------------------- operator message


def test_require_valid_plugin_lists_every_problem(tmp_path: Path) -> None:
    def damage(p: dict) -> None:
        p.pop("bugs")
        p["library"] = "../main.js"

    folder = copy_plugin(tmp_path, folder_name="recon-plugin", package=damage)

    with pytest.raises(PluginCheckError) as caught:
        require_valid_plugin(folder)

    message = str(caught.value)
    assert "PeerTube would answer only 'Cannot install plugin'; the reasons are:" in message
    assert len(caught.value.problems) == 3
    for problem in caught.value.problems:
        assert problem in message
    assert '"bugs"' in message and '"library"' in message and "recon-plugin" in message


# --------------------------------------------------------------------------- recording


def test_recording_reports_removed_built_ins_and_refused_ids(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, main=register_first(
        "  videoCategoryManager.deleteConstant(3)\n"
        "  videoCategoryManager.addConstant(15, 'Technology again')\n"
    ))

    outcome = run_plugin_register(folder)

    assert outcome.removed == {3: "Vehicles"}
    assert outcome.refused == {15: "Technology again"}
    assert outcome.added == dict(taxonomy.DOMAIN_BY_ID)


def test_taken_id_is_refused_and_logged(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, main=register_first(
        "  videoCategoryManager.addConstant(105, 'Someone else')\n"
    ))

    outcome = run_plugin_register(folder)

    # The first label wins, as in PeerTube; the plugin says so in PeerTube's log.
    assert outcome.added[105] == "Someone else"
    assert outcome.refused == {105: "Logistics"}
    assert any("105" in w and "Someone else" in w for w in outcome.warnings)


def test_non_integer_category_key_is_refused(tmp_path: Path) -> None:
    folder = copy_plugin(tmp_path, main=register_first(
        "  videoCategoryManager.addConstant('logistics', 'Logistics')\n"
    ))

    with pytest.raises(PluginCheckError, match=r"'logistics'.*not an integer"):
        registered_categories_from_plugin(folder)


def test_check_and_register_checks_and_records_in_one_go(tmp_path: Path) -> None:
    assert check_and_register(PLUGIN_DIR) == ([], dict(taxonomy.DOMAIN_BY_ID))

    no_bugs = copy_plugin(tmp_path / "a", package=lambda p: p.pop("bugs"))
    problems, added = check_and_register(no_bugs)
    assert problems_mentioning(problems, '"bugs"', "missing") and added == {}

    bad_key = copy_plugin(tmp_path / "b", main=register_first(
        "  videoCategoryManager.addConstant('logistics', 'Logistics')\n"
    ))
    problems, added = check_and_register(bad_key)
    assert problems_mentioning(problems, "'logistics'", "not an integer") and added == {}
