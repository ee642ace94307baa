"""Shared fixtures live in recon_domains_tests/fixtures/, one module per area."""

pytest_plugins = [
    "recon_domains_tests.fixtures.corpus",
    "recon_domains_tests.fixtures.postgres",
    "recon_domains_tests.fixtures.peertube",
]


def pytest_configure(config) -> None:
    """The project's silenced warnings (recon_domains.SILENCED_WARNINGS), for pytest too: it
    resets warning filters around collection and every test."""
    import re

    from recon_domains import SILENCED_WARNINGS

    for message in SILENCED_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{re.escape(message)}")
