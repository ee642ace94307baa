"""Replay the recorded PeerTube call sequence against any PeerTube and diff the answers.

The sequence (26 calls: OAuth, categories, a video's GET and PUT in every encoding and
error case, token refresh and revocation, plugin install and uninstall by path) is the one
``peertube-conformance/replay.py`` ran against a real PeerTube 8.0.1; what it kept of each
answer is packaged here as data (``data/real-peertube-8.0.1.json``). A sequence file is a
JSON list of steps, each ``{"step": name, ...facts}``; the replayer runs the steps it
names, in its order, and compares every fact, field by field.

``recon-domains sandbox conformance --against URL --video ID`` replays against a server
(password from ``PEERTUBE_PASSWORD``), ``--against sandbox`` against a fresh sandbox
PeerTube; ``--write FILE`` keeps what was observed, so a new PeerTube version can be
recorded and the sandbox compared with it: ``--against sandbox --sequence FILE``.

The video must be private and have no category (the recorded run's starting point); the
plugin folder must be readable by the server (it receives two small test plugins, and the
run ends with them uninstalled and the video's category cleared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import requests

from recon_domains.commands import EXIT_CONFIG, EXIT_OK, EXIT_REFUSED

RECORD_8_0_1 = Path(__file__).with_name("data") / "real-peertube-8.0.1.json"
GOOD_PLUGIN = "peertube-plugin-conformance-cats"
BAD_PLUGIN = "peertube-plugin-conformance-nobugs"
UNKNOWN_VIDEO = "00000000-0000-4000-8000-000000000000"
TIMEOUT = (5.0, 60.0)


class ConformanceError(RuntimeError):
    """The replay cannot run (bad sequence file, unreachable server); meant for an operator."""


@dataclass(frozen=True)
class Target:
    """The PeerTube to replay against and what the sequence needs from it."""

    base_url: str
    username: str
    password: str
    video_id: str
    plugin_dir: Path
    host_header: str | None = None


@dataclass(frozen=True)
class Difference:
    """One fact the server answered differently from the sequence."""

    step: str
    field: str
    expected: Any
    observed: Any

    def __str__(self) -> str:
        return (f"{self.step}.{self.field}: expected {json.dumps(self.expected)}, "
                f"got {json.dumps(self.observed)}")


_MISSING = "<missing>"


def load_sequence(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The steps of a sequence file (default: what PeerTube 8.0.1 answered)."""
    source = Path(path) if path else RECORD_8_0_1
    try:
        steps = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConformanceError(f"cannot read the sequence file {source}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConformanceError(f"{source} is not JSON ({exc}): expected a list of "
                               '{"step": name, ...} objects') from None
    if not isinstance(steps, list) or not all(
        isinstance(s, dict) and isinstance(s.get("step"), str) for s in steps
    ):
        raise ConformanceError(f"{source} must hold a JSON list of objects with a \"step\" name")
    unknown = [s["step"] for s in steps if s["step"] not in STEPS]
    if unknown:
        raise ConformanceError(f"{source} names steps the replayer does not know: "
                               f"{', '.join(unknown)}; known: {', '.join(STEPS)}")
    return steps


def compare(expected: Sequence[dict[str, Any]],
            observed: Sequence[dict[str, Any]]) -> list[Difference]:
    """Every fact that differs, step by step and field by field (a field only one side
    has shows as "<missing>" on the other)."""
    differences: list[Difference] = []
    seen = {s["step"]: s for s in observed}
    for want in expected:
        got = seen.get(want["step"])
        if got is None:
            differences.append(Difference(want["step"], "step", "replayed", _MISSING))
            continue
        for key in [*want, *(k for k in got if k not in want)]:
            if key == "step":
                continue
            if want.get(key, _MISSING) != got.get(key, _MISSING):
                differences.append(Difference(want["step"], key, want.get(key, _MISSING),
                                              got.get(key, _MISSING)))
    return differences


# ---------------------------------------------------------------------------- the steps


@dataclass
class _Replay:
    """State the steps share: the session, the OAuth client and the tokens."""

    target: Target
    session: requests.Session = field(default_factory=requests.Session)
    client: tuple[str, str] | None = None
    access: str | None = None
    refresh: str | None = None
    old_access: str | None = None
    spent_refresh: str | None = None

    @property
    def base(self) -> str:
        return self.target.base_url

    @property
    def video_url(self) -> str:
        return f"{self.base}/api/v1/videos/{self.target.video_id}"

    def auth(self) -> dict[str, str]:
        if self.access is None:
            raise ConformanceError("no access token (the token_password step did not pass)")
        return {"Authorization": f"Bearer {self.access}"}

    def call(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        return self.session.request(method, url, timeout=TIMEOUT, **kwargs)

    def token(self, **form: str) -> requests.Response:
        if self.client is None:
            raise ConformanceError("no OAuth client (the oauth_client step did not pass)")
        client_id, client_secret = self.client
        return self.call("POST", "/api/v1/users/token",
                         data={"client_id": client_id, "client_secret": client_secret, **form})

    def category(self) -> Any:
        answer = self.call("GET", self.video_url, headers=self.auth())
        return (_body(answer) or {}).get("category") if answer.status_code == 200 else None

    def plugin_folder(self, name: str, *, with_bugs: bool) -> str:
        return str(write_test_plugin(self.target.plugin_dir, name, with_bugs=with_bugs))


def _ctype(answer: requests.Response) -> str:
    if not answer.content:
        return "empty"
    kind = answer.headers.get("Content-Type", "")
    if "problem+json" in kind:
        return "problem+json"
    return "json" if "json" in kind else "text" if kind else "none"


def _body(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return answer.text


def _get(answer: requests.Response, key: str) -> Any:
    body = _body(answer)
    return body.get(key) if isinstance(body, dict) else None


def _answer(answer: requests.Response, **facts: Any) -> dict[str, Any]:
    return {"status": answer.status_code, "ctype": _ctype(answer), **facts}


def write_test_plugin(
    root: Path, name: str, *, with_bugs: bool,
    categories: Mapping[int, str] = MappingProxyType({105: "Logistics",
                                                      117: "Wilderness Skills"}),
) -> Path:
    """A test plugin registering ``categories`` (105 and 117 as recorded); without
    ``bugs`` PeerTube refuses it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    package: dict[str, Any] = {
        "name": name, "version": "0.0.1", "description": "conformance test categories",
        "engine": {"peertube": ">=6.0.0"}, "keywords": ["peertube", "plugin"],
        "homepage": "https://example.com/" + name, "author": "test", "library": "./main.js",
        "staticDirs": {}, "css": [], "clientScripts": [], "translations": {},
    }
    if with_bugs:
        package["bugs"] = "https://example.com/" + name + "/issues"
    (folder / "package.json").write_text(json.dumps(package), encoding="utf-8")
    calls = "".join(f"  videoCategoryManager.addConstant({key}, {json.dumps(label)})\n"
                    for key, label in categories.items())
    (folder / "main.js").write_text(
        "async function register ({ videoCategoryManager }) {\n" + calls + "}\n"
        "async function unregister () {}\nmodule.exports = { register, unregister }\n",
        encoding="utf-8",
    )
    return folder


def _oauth_client(r: _Replay) -> dict[str, Any]:
    answer = r.call("GET", "/api/v1/oauth-clients/local")
    body = _body(answer)
    if isinstance(body, dict) and "client_id" in body and "client_secret" in body:
        r.client = (body["client_id"], body["client_secret"])
    return _answer(answer, keys=sorted(body) if isinstance(body, dict) else None)


def _token_wrong_password(r: _Replay) -> dict[str, Any]:
    answer = r.token(grant_type="password", username=r.target.username,
                     password=r.target.password + "x")
    return _answer(answer, code=_get(answer, "code"))


def _token_password(r: _Replay) -> dict[str, Any]:
    answer = r.token(grant_type="password", username=r.target.username,
                     password=r.target.password)
    body = _body(answer)
    body = body if isinstance(body, dict) else {}
    r.access, r.refresh = body.get("access_token"), body.get("refresh_token")
    return _answer(answer, token_type=body.get("token_type"), keys=sorted(body),
                   expires_in_type=type(body.get("expires_in")).__name__)


def _categories(r: _Replay) -> dict[str, Any]:
    body = _body(r.call("GET", "/api/v1/videos/categories"))
    return body if isinstance(body, dict) else {}


def _categories_builtin(r: _Replay) -> dict[str, Any]:
    answer = r.call("GET", "/api/v1/videos/categories")
    body = _body(answer) if isinstance(_body(answer), dict) else {}
    return _answer(answer, categories={k: v for k, v in body.items() if int(k) < 100},
                   extra=sorted(k for k in body if int(k) >= 100))


def _video_get(r: _Replay) -> dict[str, Any]:
    return _answer(r.call("GET", r.video_url, headers=r.auth()), category=r.category())


def _put(r: _Replay, *, after: bool = True, headers: dict[str, str] | None = None,
         url: str | None = None, **body: Any) -> tuple[requests.Response, dict[str, Any]]:
    answer = r.call("PUT", url or r.video_url,
                    headers=r.auth() if headers is None else headers, **body)
    facts = {"after": r.category()} if after else {}
    return answer, facts


def _put_json_15(r: _Replay) -> dict[str, Any]:
    answer, facts = _put(r, json={"category": 15})
    return _answer(answer, body_len=len(answer.content), **facts)


def _put_unknown_category(r: _Replay) -> dict[str, Any]:
    answer, facts = _put(r, json={"category": 105})
    invalid = _get(answer, "invalid-params")
    return _answer(answer, invalid_params=sorted(invalid or {}) if isinstance(
        _body(answer), dict) else None, **facts)


def _put_no_auth(r: _Replay) -> dict[str, Any]:
    answer, _ = _put(r, after=False, headers={}, json={"category": 15})
    return _answer(answer, code=_get(answer, "code"))


def _put_bad_token(r: _Replay) -> dict[str, Any]:
    answer, _ = _put(r, after=False, headers={"Authorization": "Bearer " + "0" * 40},
                     json={"category": 15})
    return _answer(answer, code=_get(answer, "code"))


def _put_unknown_video(r: _Replay) -> dict[str, Any]:
    answer, _ = _put(r, after=False, url=f"{r.base}/api/v1/videos/{UNKNOWN_VIDEO}",
                     json={"category": 15})
    return _answer(answer, detail=_get(answer, "detail"))


def _put_malformed_id(r: _Replay) -> dict[str, Any]:
    answer, _ = _put(r, after=False, url=f"{r.base}/api/v1/videos/not-a-uuid",
                     json={"category": 15})
    return _answer(answer)


def _put_with(**body: Any) -> Callable[[_Replay], dict[str, Any]]:
    def step(r: _Replay) -> dict[str, Any]:
        answer, facts = _put(r, **body)
        return _answer(answer, **facts)

    return step


def _token_refresh(r: _Replay) -> dict[str, Any]:
    if r.refresh is None:
        raise ConformanceError("no refresh token (the token_password step did not pass)")
    answer = r.token(grant_type="refresh_token", refresh_token=r.refresh)
    body = _body(answer)
    r.old_access, r.spent_refresh = r.access, r.refresh
    if isinstance(body, dict) and body.get("access_token"):
        r.access, r.refresh = body["access_token"], body.get("refresh_token")
    return _answer(answer, keys=sorted(body) if isinstance(body, dict) else None)


def _old_access_after_refresh(r: _Replay) -> dict[str, Any]:
    if r.old_access is None:
        raise ConformanceError("no replaced access token (the token_refresh step did not run)")
    answer, _ = _put(r, after=False, headers={"Authorization": f"Bearer {r.old_access}"},
                     json={"category": 15})
    return {"status": answer.status_code, "code": _get(answer, "code")}


def _token_refresh_reused(r: _Replay) -> dict[str, Any]:
    if r.spent_refresh is None:
        raise ConformanceError("no spent refresh token (the token_refresh step did not run)")
    answer = r.token(grant_type="refresh_token", refresh_token=r.spent_refresh)
    return _answer(answer, code=_get(answer, "code"))


def _plugin_install(r: _Replay) -> dict[str, Any]:
    answer = r.call("POST", "/api/v1/plugins/install", headers=r.auth(),
                    json={"path": r.plugin_folder(GOOD_PLUGIN, with_bugs=True)})
    return _answer(answer, enabled=_get(answer, "enabled"), plugin_name=_get(answer, "name"))


def _categories_with_plugin(r: _Replay) -> dict[str, Any]:
    return {"extra": {k: v for k, v in _categories(r).items() if int(k) >= 100}}


def _plugin_install_invalid(r: _Replay) -> dict[str, Any]:
    answer = r.call("POST", "/api/v1/plugins/install", headers=r.auth(),
                    json={"path": r.plugin_folder(BAD_PLUGIN, with_bugs=False)})
    detail = _get(answer, "detail")
    return _answer(answer, detail_prefix=(detail or "")[:22] if isinstance(
        _body(answer), dict) else None)


def _plugin_uninstall(r: _Replay) -> dict[str, Any]:
    return _answer(r.call("POST", "/api/v1/plugins/uninstall", headers=r.auth(),
                          json={"npmName": GOOD_PLUGIN}))


def _categories_after_uninstall(r: _Replay) -> dict[str, Any]:
    return {"extra": sorted(k for k in _categories(r) if int(k) >= 100)}


def _video_after_uninstall(r: _Replay) -> dict[str, Any]:
    return {"category": r.category()}


def _put_orphaned_category(r: _Replay) -> dict[str, Any]:
    answer, _ = _put(r, after=False, json={"category": 105})
    return _answer(answer)


STEPS: dict[str, Callable[[_Replay], dict[str, Any]]] = {
    "oauth_client": _oauth_client,
    "token_wrong_password": _token_wrong_password,
    "token_password": _token_password,
    "categories_builtin": _categories_builtin,
    "video_get": _video_get,
    "put_json_15": _put_json_15,
    "put_unknown_category": _put_unknown_category,
    "put_no_auth": _put_no_auth,
    "put_bad_token": _put_bad_token,
    "put_unknown_video": _put_unknown_video,
    "put_malformed_id": _put_malformed_id,
    "put_multipart_12": _put_with(files={"category": (None, "12")}),
    "put_urlencoded_14": _put_with(data={"category": "14"}),
    "put_json_string_15": _put_with(json={"category": "15"}),
    "put_null": _put_with(json={"category": None}),
    "token_refresh": _token_refresh,
    "old_access_after_refresh": _old_access_after_refresh,
    "token_refresh_reused": _token_refresh_reused,
    "plugin_install": _plugin_install,
    "categories_with_plugin": _categories_with_plugin,
    "put_plugin_category": _put_with(json={"category": 105}),
    "plugin_install_invalid": _plugin_install_invalid,
    "plugin_uninstall": _plugin_uninstall,
    "categories_after_uninstall": _categories_after_uninstall,
    "video_after_uninstall": _video_after_uninstall,
    "put_orphaned_category": _put_orphaned_category,
}


def replay(target: Target, steps: Sequence[str]) -> list[dict[str, Any]]:
    """Run the named steps against ``target`` in order; returns what each observed. A step
    whose prerequisite failed records ``{"error": why}`` instead; the video's category is
    cleared at the end. Raises ConformanceError when the server cannot be reached."""
    r = _Replay(target)
    if target.host_header:
        r.session.headers["Host"] = target.host_header
    observed: list[dict[str, Any]] = []
    try:
        for name in steps:
            try:
                observed.append({"step": name, **STEPS[name](r)})
            except ConformanceError as exc:
                observed.append({"step": name, "error": str(exc)})
        if r.access is not None:
            r.call("PUT", r.video_url, headers=r.auth(), json={"category": None})
    except requests.RequestException as exc:
        raise ConformanceError(
            f"PeerTube at {target.base_url} did not answer ({type(exc).__name__}: {exc}); "
            "check --against (scheme, host, port) and --host-header") from None
    finally:
        r.session.close()
    return observed


# ---------------------------------------------------------------------------- command line


@contextlib.contextmanager
def _sandbox_target(plugin_dir: Path, dsn: str | None) -> Iterator[Target]:
    """A sandbox PeerTube with a new private video, as recorded, on the database ``dsn``
    (default: an embedded PostgreSQL, removed afterwards)."""
    import psycopg2

    from recon_domains.sandbox.peertube_server import start_server
    from recon_domains.sandbox.postgres import embedded_postgres, ensure_database

    with contextlib.ExitStack() as stack:
        if dsn is None:
            dsn = ensure_database(stack.enter_context(embedded_postgres()),
                                  "peertube_conformance")
        try:
            server = stack.enter_context(start_server(dsn))
        except psycopg2.Error as exc:
            raise ConformanceError(f"the sandbox cannot use PostgreSQL: {exc}") from None
        video = server.add_video("conformance video", privacy=3)
        yield Target(server.url, server.admin_username, server.admin_password,
                     str(video["id"]), plugin_dir)


def cli_main(args: argparse.Namespace) -> int:
    """``recon-domains sandbox conformance``: replay, print the differences; exit 0 when
    there are none, 1 when there are, 3 when the replay could not run."""
    try:
        expected = load_sequence(args.sequence)
        with contextlib.ExitStack() as stack:
            plugin_dir = Path(args.plugin_dir) if args.plugin_dir else Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="pt-conformance-")))
            if args.against == "sandbox":
                target = stack.enter_context(_sandbox_target(plugin_dir, args.db_dsn))
            else:
                target = _remote_target(args, plugin_dir)
            observed = replay(target, [s["step"] for s in expected])
    except ConformanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.write:
        Path(args.write).write_text(json.dumps(observed, indent=1) + "\n", encoding="utf-8")
        print(f"observed answers written to {args.write}")
    differences = compare(expected, observed)
    where = "the sandbox" if args.against == "sandbox" else args.against
    source = args.sequence or f"PeerTube 8.0.1's record ({RECORD_8_0_1.name})"
    if not differences:
        print(f"{len(observed)} steps replayed against {where}: same answers as {source}")
        return EXIT_OK
    print(f"{len(observed)} steps replayed against {where}: {len(differences)} "
          f"difference(s) from {source}")
    for difference in differences:
        print(f"  {difference}")
    return EXIT_REFUSED


def _remote_target(args: argparse.Namespace, plugin_dir: Path) -> Target:
    from recon_domains.settings import Settings

    secret = Settings.from_env().peertube.password
    password = secret.get_secret_value() if secret is not None else ""
    if not password:
        raise ConformanceError("PEERTUBE_PASSWORD is not set: export the password of "
                               f"{args.username!r} (an administrator) in the environment")
    if not args.video:
        raise ConformanceError("--video is required with --against URL: the id or UUID of a "
                               "private video without a category, which the replay changes "
                               "and clears again")
    if not args.against.startswith(("http://", "https://")):
        raise ConformanceError(f"--against {args.against!r} is neither an http(s) URL nor "
                               "'sandbox'")
    return Target(args.against.rstrip("/"), args.username, password, args.video, plugin_dir,
                  args.host_header)
