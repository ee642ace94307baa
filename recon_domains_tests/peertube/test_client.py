"""PeerTubeClient over real HTTP against the sandbox PeerTube (real PostgreSQL behind it)."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recon_domains.peertube.client import (
    PeerTubeAuthError,
    PeerTubeClient,
    PeerTubeConfigError,
    PeerTubeError,
    PeerTubeForbidden,
    PeerTubeHTTPError,
    PeerTubeNotFound,
    PeerTubeUnreachable,
    RetryPolicy,
)
from recon_domains.peertube.urls import uuid_to_short
from recon_domains.settings import Settings
from recon_domains.taxonomy import DOMAIN_IDS, PLUGIN_NPM_NAME

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "peertube-plugin" / PLUGIN_NPM_NAME
FAST_RETRY = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05)


def admin_client(server, **kwargs) -> PeerTubeClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return PeerTubeClient(server.url, server.admin_username, server.admin_password, **kwargs)


@pytest.fixture
def video(peertube_server) -> dict:
    return peertube_server.add_video("A private test video", privacy=3)


def test_logs_in_once_and_reads_video_by_every_id_form(peertube_server, video) -> None:
    client = admin_client(peertube_server)
    assert client.categories()[15] == "Science & Technology"
    assert client.login_count == 0  # categories need no login
    for video_id in (video["id"], video["uuid"], uuid_to_short(video["uuid"])):
        assert client.get_video(video_id)["uuid"] == video["uuid"]
    assert client.video_category(video["uuid"]) is None
    client.set_category(video["uuid"], 15)
    assert client.video_category(video["uuid"]) == 15
    client.set_category(video["uuid"], None)
    assert client.video_category(video["uuid"]) is None
    assert client.require_admin()["username"] == "root"
    assert client.login_count == 1


def test_wrong_password_is_a_clear_error_that_never_shows_the_password(
    peertube_server, video, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-but-secret-Pa55"
    cache = tmp_path / "tokens.json"
    caplog.set_level(logging.DEBUG)  # urllib3 and ours, everything
    client = PeerTubeClient(peertube_server.url, "root", secret, token_cache=cache,
                            retry=FAST_RETRY)
    with pytest.raises(PeerTubeAuthError) as caught:
        client.get_video(video["uuid"])
    err = caught.value
    assert err.status == 400 and err.code == "invalid_grant"
    assert "PEERTUBE_PASSWORD" in str(err) and "'root'" in str(err)
    for text in (str(err), repr(err), repr(client), str(vars(err)), caplog.text):
        assert secret not in text
    assert not cache.exists() or secret not in cache.read_text()
    assert client.login_count == 0  # a refused password grant is not a login


def test_password_never_reaches_the_cache_file_or_logs(
    peertube_server, video, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "cache" / "tokens.json"
    client = admin_client(peertube_server, token_cache=cache)
    client.get_video(video["uuid"])
    password = peertube_server.admin_password
    assert password not in cache.read_text()
    assert password not in caplog.text
    assert password not in repr(client)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600


def test_token_cache_lets_the_next_run_skip_the_login(peertube_server, video, tmp_path) -> None:
    cache = tmp_path / "tokens.json"
    first = admin_client(peertube_server, token_cache=cache)
    first.set_category(video["uuid"], 12)
    assert first.login_count == 1
    second = admin_client(peertube_server, token_cache=cache)
    assert second.video_category(video["uuid"]) == 12
    assert second.login_count == 0
    # Another user's entry does not leak into ours, and ours survives its write.
    peertube_server.add_user("alice", "alice-pw", "user")
    other = PeerTubeClient(peertube_server.url, "alice", "alice-pw", token_cache=cache)
    other.whoami()
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 2
    third = admin_client(peertube_server, token_cache=cache)
    third.get_video(video["uuid"])
    assert third.login_count == 0


def test_loosened_cache_file_is_tightened(peertube_server, video, tmp_path) -> None:
    cache = tmp_path / "tokens.json"
    admin_client(peertube_server, token_cache=cache).get_video(video["uuid"])
    os.chmod(cache, 0o644)
    admin_client(peertube_server, token_cache=cache).get_video(video["uuid"])
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600


def wait_until_token_refused(server, client: PeerTubeClient) -> None:
    """Block until the server refuses the client's current access token (it expired)."""
    while client.session.get(
        f"{server.url}/api/v1/users/me", timeout=5,
        headers={"Authorization": f"Bearer {client._tokens.access_token}"},
    ).status_code != 401:
        time.sleep(0.1)


def test_expired_token_is_refreshed_once_for_many_threads(peertube_server_factory) -> None:
    server = peertube_server_factory(token_lifetime_s=1.0)
    videos = [server.add_video(f"video {i}") for i in range(16)]
    client = admin_client(server, pool_size=8)
    client.set_category(videos[0]["uuid"], 1)
    assert client.login_count == 1
    wait_until_token_refused(server, client)
    server.set_knobs(token_lifetime_s=86400.0)  # the refreshed token will not expire
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda v: client.set_category(v["uuid"], 2), videos))
    assert all(client.video_category(v["uuid"]) == 2 for v in videos)
    assert client.login_count == 1
    assert client.refresh_count == 1  # eight threads hit 401 together; one refreshed


def test_spent_refresh_token_falls_back_to_one_login(peertube_server, video) -> None:
    client = admin_client(peertube_server)
    client.get_video(video["uuid"])
    peertube_server.simulate_restart()  # every token dropped, refresh tokens too
    client.get_video(video["uuid"])
    assert client.refresh_count == 1
    assert client.login_count == 2


def test_non_admin_gets_forbidden(peertube_server, video) -> None:
    peertube_server.add_user("bob", "bob-password", "user")
    client = PeerTubeClient(peertube_server.url, "bob", "bob-password", retry=FAST_RETRY)
    with pytest.raises(PeerTubeForbidden) as caught:
        client.require_admin()
    assert "Administrator" in str(caught.value) or "administrator" in str(caught.value)
    with pytest.raises(PeerTubeForbidden) as caught:
        client.set_category(video["uuid"], 15)
    assert caught.value.status == 403
    assert "bob-password" not in str(caught.value)


def test_unknown_category_is_a_400_with_the_invalid_parameter(peertube_server, video) -> None:
    client = admin_client(peertube_server)
    with pytest.raises(PeerTubeHTTPError) as caught:
        client.set_category(video["uuid"], DOMAIN_IDS["Medical"])
    err = caught.value
    assert err.status == 400
    assert "category" in err.invalid_params
    assert "category=106" in str(err)
    assert client.video_category(video["uuid"]) is None


def test_unknown_video_is_not_found(peertube_server) -> None:
    client = admin_client(peertube_server)
    with pytest.raises(PeerTubeNotFound) as caught:
        client.set_category(str(uuid.uuid4()), 15)
    assert caught.value.status == 404 and caught.value.detail == "Video not found"


def test_rate_limit_is_waited_out(peertube_server_factory) -> None:
    # Anonymous calls are limited (admins bypass the limiter): 2 per 2 s window.
    server = peertube_server_factory(rate_limit_max=2, rate_limit_window_s=2.0)
    client = admin_client(server)
    results = [client.categories() for _ in range(5)]
    assert all(r[15] == "Science & Technology" for r in results)
    assert client.rate_limited_count >= 1


def test_rate_limit_beyond_the_budget_is_an_error(peertube_server_factory) -> None:
    server = peertube_server_factory(rate_limit_max=1, rate_limit_window_s=60.0)
    client = admin_client(server, retry=RetryPolicy(rate_limit_max_wait=0.5))
    client.categories()
    with pytest.raises(PeerTubeHTTPError) as caught:
        client.categories()
    assert caught.value.status == 429


@pytest.mark.parametrize("fault", ["error", "drop"])  # a 500, a dropped connection
def test_server_errors_and_dropped_connections_are_retried(
    peertube_server, video, fault: str
) -> None:
    client = admin_client(peertube_server)
    client.login()
    peertube_server.fail_next(2, fault)
    client.set_category(video["uuid"], 9)
    assert client.video_category(video["uuid"]) == 9
    assert client.retry_count == 2


def test_persistent_server_errors_give_up_with_the_status(peertube_server, video) -> None:
    client = admin_client(peertube_server)
    client.login()
    peertube_server.fail_next(10, "error")
    with pytest.raises(PeerTubeHTTPError) as caught:
        client.set_category(video["uuid"], 9)
    assert caught.value.status == 500
    assert client.retry_count == FAST_RETRY.max_retries


def test_read_timeout_is_retried_then_reported(peertube_server, video) -> None:
    client = admin_client(peertube_server, timeout=(2.0, 0.2),
                          retry=RetryPolicy(max_retries=1, backoff_base=0.01))
    client.login()
    peertube_server.set_knobs(latency_s=0.5)
    with pytest.raises(PeerTubeUnreachable) as caught:
        client.get_video(video["uuid"])
    assert "read timeout" in str(caught.value) and peertube_server.url in str(caught.value)
    assert client.retry_count == 1


def test_unreachable_names_the_url_and_what_to_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens
    client = PeerTubeClient(f"http://127.0.0.1:{port}", "root", "pw", retry=FAST_RETRY)
    with pytest.raises(PeerTubeUnreachable) as caught:
        client.categories()
    message = str(caught.value)
    assert f"http://127.0.0.1:{port}" in message and "PEERTUBE_URL" in message
    assert client.retry_count == FAST_RETRY.max_retries


def test_host_header_override_reaches_the_oauth_client_check(peertube_server_factory) -> None:
    server = peertube_server_factory(expected_host="stream.example.org")
    video = server.add_video("hosted")
    without = admin_client(server)
    with pytest.raises(PeerTubeForbidden):
        without.get_video(video["uuid"])
    with_host = admin_client(server, host_header="stream.example.org")
    assert with_host.get_video(video["uuid"])["uuid"] == video["uuid"]


def test_plugin_install_list_uninstall(peertube_server, video) -> None:
    client = admin_client(peertube_server)
    assert client.list_plugins() == []
    installed = client.install_plugin(str(PLUGIN_DIR))
    assert installed["name"] == PLUGIN_NPM_NAME.removeprefix("peertube-plugin-")
    assert [p["name"] for p in client.list_plugins()] == [installed["name"]]
    categories = client.categories()
    assert {i: categories[i] for i in DOMAIN_IDS.values()} == {i: d for d, i in DOMAIN_IDS.items()}
    client.set_category(video["uuid"], DOMAIN_IDS["Medical"])
    client.uninstall_plugin(PLUGIN_NPM_NAME)
    assert client.list_plugins() == []
    assert [p["name"] for p in client.list_plugins(uninstalled=True)] == [installed["name"]]
    assert DOMAIN_IDS["Medical"] not in client.categories()


def from_env(env: dict[str, str]) -> PeerTubeClient:
    return PeerTubeClient.from_settings(Settings.from_env(env).peertube)


def test_from_settings_names_the_missing_variable(monkeypatch) -> None:
    with pytest.raises(PeerTubeConfigError, match="PEERTUBE_URL"):
        from_env({})
    with pytest.raises(PeerTubeConfigError, match="PEERTUBE_PASSWORD"):
        from_env({"PEERTUBE_URL": "http://127.0.0.1:9"})
    with pytest.raises(PeerTubeConfigError, match="PEERTUBE_URL"):
        from_env({"PEERTUBE_URL": "stream.echo6.co", "PEERTUBE_PASSWORD": "x"})
    client = from_env({
        "PEERTUBE_URL": "http://127.0.0.1:9/", "PEERTUBE_PASSWORD": "env-secret",
        "PEERTUBE_HOST_HEADER": "stream.echo6.co", "PEERTUBE_PUSH_MAX_IN_FLIGHT": "3",
    })
    assert client.pool_size == 3  # one pooled connection per PUT in flight
    assert client.username == "root" and client.base_url == "http://127.0.0.1:9"
    assert client.session.headers["Host"] == "stream.echo6.co"
    assert "env-secret" not in repr(client)
    assert PeerTubeClient("http://h:9000/api/v1/", "root", "x").base_url == "http://h:9000"


def test_a_web_server_that_is_not_peertube_is_named_as_such(tmp_path: Path) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    page = tmp_path / "api" / "v1" / "videos" / "categories"
    page.parent.mkdir(parents=True)
    page.write_text("<html>a proxy's welcome page</html>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = PeerTubeClient(f"http://127.0.0.1:{server.server_address[1]}", "root", "pw")
        with pytest.raises(PeerTubeError, match=r"non-JSON.*PEERTUBE_URL"):
            client.categories()
    finally:
        server.shutdown()
        server.server_close()


def _answer(headers: dict[str, str]):
    import requests

    resp = requests.Response()
    resp.status_code = 429
    resp.headers.update(headers)
    return resp


def test_429_wait_prefers_the_announced_reset_when_sooner() -> None:
    import email.utils
    import time

    wait = PeerTubeClient._retry_after
    assert wait(_answer({"Retry-After": "7"})) == (7.0, None)
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay, _ = wait(_answer({"Retry-After": date}))
    assert 25 < delay <= 30
    reset = int(time.time()) + 4
    delay, epoch = wait(_answer({"Retry-After": "10", "X-RateLimit-Reset": str(reset)}))
    assert 2 < delay <= 4 and epoch == reset
    # A reset in the past by our clock (skew) is not trusted: Retry-After decides.
    assert wait(_answer({"Retry-After": "10", "X-RateLimit-Reset": str(reset - 100)})) == (
        10.0, None)
    assert wait(_answer({"X-RateLimit-Reset": "3"})) == (3.0, None)  # seconds, not epoch
    assert wait(_answer({})) == (None, None)


def test_find_plugin_by_npm_name(peertube_server) -> None:
    client = admin_client(peertube_server)
    assert client.find_plugin(PLUGIN_NPM_NAME) is None
    installed = client.install_plugin(str(PLUGIN_DIR))
    found = client.find_plugin(PLUGIN_NPM_NAME)
    assert found is not None and found["name"] == installed["name"]
    assert client.find_plugin("peertube-plugin-something-else") is None
    client.uninstall_plugin(PLUGIN_NPM_NAME)
    assert client.find_plugin(PLUGIN_NPM_NAME) is None
