"""The rollback jobs' typed config: every job is a dry run unless `confirm: true`."""

from typing import Literal

import dagster as dg
from pydantic import Field

from recon_domains.rollback.categories import Drifted
from recon_domains.taxonomy import CATEGORY_ID_RANGE

CONFIRM_HELP = "false (default): dry run, change nothing, show what would happen; true: act"


class _Confirm(dg.Config):
    confirm: bool = Field(default=False, description=CONFIRM_HELP)


class RollbackPluginConfig(_Confirm):
    manual: bool = Field(
        default=False,
        description="the plugin was installed by hand: state the manual steps and verify "
        f"that categories {CATEGORY_ID_RANGE} are gone, instead of uninstalling through the API",
    )


class RollbackSchemaConfig(_Confirm):
    force: bool = Field(
        default=False,
        description="drop the columns and tables even while PeerTube still carries pushed "
        "categories (their originals are then only in the audit trail)",
    )


class RollbackAssignmentsConfig(_Confirm):
    mode: Literal["all", "tiebreaker_only"] = Field(
        default="all",
        description="all: clear every domain column; tiebreaker_only: tied_pass_2 and "
        "tied_manual back to tied_pass_1",
    )


DRIFTED_HELP = (
    "videos whose category was changed in PeerTube after our push (by an uploader or an "
    "admin): leave (default) keeps what the human set and goes on; restore puts their "
    "original back too, overwriting that change. Listed in the report either way"
)


class RollbackCategoriesConfig(_Confirm):
    drifted: Drifted = Field(default="leave", description=DRIFTED_HELP)
    force: bool = Field(
        default=False, description="older name of drifted: restore (kept for old configs)"
    )
    via: Literal["auto", "api", "db"] = Field(
        default="auto",
        description="api (PeerTube federates, bumps updatedAt), db (PeerTube's PostgreSQL, one "
        "transaction), auto (= api)",
    )


class RestoreConceptsConfig(_Confirm):
    hashes: list[str] = Field(
        default_factory=list, description="only these documents (empty: every quarantined one)"
    )
    force: bool = Field(
        default=False,
        description="replace a concept folder that exists (it is moved aside, not deleted)",
    )
    restore_documents: bool = Field(
        default=True,
        description="also put back the document rows of documents RECON has not re-processed",
    )


class RemoveFeatureConfig(_Confirm):
    manual_plugin: bool = Field(default=False, description="see rollback_plugin's `manual`")
    restore_concepts: bool = Field(
        default=True, description="undo the reprocess where RECON has not re-processed yet"
    )
    via: Literal["auto", "api", "db"] = Field(
        default="auto", description="see rollback_peertube_categories' `via`"
    )
    drifted: Drifted = Field(default="leave", description=DRIFTED_HELP)
    force: bool = Field(
        default=False,
        description="drifted: restore, and revert the schema even while PeerTube still "
        "carries pushed categories (older configs)",
    )
