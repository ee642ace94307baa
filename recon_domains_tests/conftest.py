"""Shared fixtures live in recon_domains_tests/fixtures/, one module per area."""

pytest_plugins = [
    "recon_domains_tests.fixtures.corpus",
    "recon_domains_tests.fixtures.postgres",
    "recon_domains_tests.fixtures.peertube",
    "recon_domains_tests.fixtures.recon_writer",
]
