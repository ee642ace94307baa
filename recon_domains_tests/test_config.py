"""Settings from the environment (recon_domains.config)."""

from __future__ import annotations

from recon_domains.config import DEFAULT_REVIEW_URL, Settings


def test_review_url_defaults_to_the_review_commands_bind():
    assert DEFAULT_REVIEW_URL == "http://127.0.0.1:8765/"
    assert Settings.from_env({}).review_url == DEFAULT_REVIEW_URL
    assert Settings.from_env({"RECON_REVIEW_URL": "  "}).review_url == DEFAULT_REVIEW_URL


def test_review_url_from_recon_review_url():
    env = {"RECON_REVIEW_URL": " https://recon.example/review/ "}
    assert Settings.from_env(env).review_url == "https://recon.example/review/"
