"""The runbook's "Rollback Procedures" (SPEC §8), one module per procedure, each a function
that is a dry run by default.

Every function returns a :class:`RollbackReport` saying what it would do (``dry_run=True``)
or did, with counts and a sample, and appends one entry per call to the audit trail
(:mod:`recon_domains.rollback.audit`); before the schema rollback drops the push ledger and
the reprocess audit table, their rows are copied into it.

Every function is safe to re-run: it reads the current state first and only acts on what
is still to be done (a second run reports "nothing to do"). A new rollback is one module
here plus its job line in ``recon_domains.defs.rollback.jobs``.
"""

from recon_domains.rollback.assignments import rollback_assignments
from recon_domains.rollback.audit import (
    AUDIT_FILE_NAME,
    AuditLog,
    RollbackConfigError,
    RollbackRefused,
    RollbackReport,
    audit_log_for,
)
from recon_domains.rollback.categories import rollback_peertube_categories
from recon_domains.rollback.concepts import restore_concepts
from recon_domains.rollback.plugin import rollback_plugin
from recon_domains.rollback.remove_feature import remove_feature
from recon_domains.rollback.schema import rollback_schema

__all__ = [
    "AUDIT_FILE_NAME",
    "AuditLog",
    "RollbackConfigError",
    "RollbackRefused",
    "RollbackReport",
    "audit_log_for",
    "remove_feature",
    "restore_concepts",
    "rollback_assignments",
    "rollback_peertube_categories",
    "rollback_plugin",
    "rollback_schema",
]
