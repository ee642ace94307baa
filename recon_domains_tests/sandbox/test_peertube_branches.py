"""Every error branch of the sandbox PeerTube, each derived from PeerTube 8.0.1's source.

Expected answers are written out from the source files each test names (paths inside
PeerTube's repository, github:vdynmx/ApTube at v8.0.1), not computed by the sandbox.
One sandbox server serves the whole module, its rate limits raised out of reach; the
tests of the limiters lower them and put them back.
"""

from __future__ import annotations

import json
import time
import uuid as uuid_mod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from recon_domains.peertube.urls import uuid_to_short
from recon_domains.sandbox import conformance
from recon_domains_tests.fixtures.peertube import (
    SANDBOX_ADMIN_PASSWORD,
    SANDBOX_ADMIN_USER,
    UNLIMITED,
)

DOCS = "https://docs.joinpeertube.org/api-rest-reference.html"
PROBLEM = "application/problem+json; charset=utf-8"
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


def op(operation: str) -> str:
    return f"{DOCS}#operation/{operation}"


def typed(code: str, status: int, detail: str, docs: str | None) -> dict[str, Any]:
    """res.fail with a type (server/core/middlewares/error.ts)."""
    body: dict[str, Any] = {"type": f"{DOCS}#section/Errors/{code}", "detail": detail,
                            "status": status}
    if docs:
        body["docs"] = docs
    return {**body, "code": code}


def blank(status: int, title: str, detail: str, docs: str | None,
          **extra: Any) -> dict[str, Any]:
    """res.fail without a type: about:blank titled with Node's status phrase."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "detail": detail}
    if "instance" in extra:
        body["instance"] = extra.pop("instance")
    body["status"] = status
    body.update(extra)
    if docs:
        body["docs"] = docs
    return body


def invalid(instance: str, docs: str | None, *errors: tuple[str, Any, str, str]
            ) -> dict[str, Any]:
    """areValidationErrors (server/core/middlewares/validators/shared/utils.ts); a value of
    ... (Ellipsis) is a field the request did not carry (JSON drops undefined)."""
    params = {}
    for path, value, msg, location in errors:
        error: dict[str, Any] = {"type": "field"}
        if value is not ...:
            error["value"] = value
        params[path] = {**error, "msg": msg, "path": path, "location": location}
    return blank(400, "Bad Request", "Incorrect request parameters: " + ", ".join(params),
                 docs, instance=instance, **{"invalid-params": params})


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pt(peertube_module_server):
    return peertube_module_server


def _login(base: str, username: str, password: str) -> dict[str, str]:
    client = requests.get(f"{base}/api/v1/oauth-clients/local").json()
    answer = requests.post(f"{base}/api/v1/users/token", data={
        **client, "grant_type": "password", "username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module")
def auth(pt) -> dict[str, dict[str, str]]:
    """Authorization headers by role: admin (root, owns every video), user, moderator."""
    pt.add_user("bob", "bob-password", "user")
    pt.add_user("mia", "mia-password", "moderator")
    return {
        "admin": _login(pt.url, SANDBOX_ADMIN_USER, SANDBOX_ADMIN_PASSWORD),
        "user": _login(pt.url, "bob", "bob-password"),
        "moderator": _login(pt.url, "mia", "mia-password"),
        "anonymous": {},
    }


@pytest.fixture(scope="module")
def videos(pt) -> dict[str, dict[str, Any]]:
    """One video per privacy (1 public ... 5 password protected)."""
    names = {1: "public", 2: "unlisted", 3: "private", 4: "internal", 5: "password"}
    return {name: pt.add_video(f"branch {name}", privacy=p) for p, name in names.items()}


@pytest.fixture
def fresh_video(pt) -> dict[str, Any]:
    return pt.add_video("a video to change", privacy=1)


@pytest.fixture
def limits(pt) -> Iterator[Any]:
    """The module server with its limits back out of reach afterwards."""
    pt.reset_rate_limits()
    yield pt
    pt.set_knobs(**UNLIMITED, rate_limit_window_s=10.0, admins_bypass_rate_limit=True)
    pt.reset_rate_limits()


def _put(pt, video_id: Any, headers: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.put(f"{pt.url}/api/v1/videos/{video_id}", headers=headers, **kwargs)


def _category(pt, auth, video: dict[str, Any]) -> Any:
    return requests.get(f"{pt.url}/api/v1/videos/{video['uuid']}",
                        headers=auth["admin"]).json()["category"]["id"]


# ---------------------------------------------------------------------------- authentication


AUTH_CASES = [
    # (label, header template or None, query, json body extra, status, code)
    ("no token", None, "", {}, 401, "unauthorized_request"),
    ("unknown token", "Bearer " + "0" * 40, "", {}, 401, "invalid_token"),
    ("lower-case scheme", "bearer {token}", "", {}, 400, "invalid_request"),
    ("two spaces", "Bearer  {token}", "", {}, 400, "invalid_request"),
    ("trailing words", "Bearer {token} x", "", {}, 400, "invalid_request"),
    ("non-token characters", "Bearer abc$", "", {}, 400, "invalid_request"),
    ("basic scheme", "Basic cm9vdDpwdw==", "", {}, 400, "invalid_request"),
    ("token in the query", None, "?access_token={token}", {}, 400, "invalid_request"),
    ("header and query", "Bearer {token}", "?access_token={token}", {}, 400,
     "invalid_request"),
    ("token in a JSON body", None, "", {"access_token": "{token}"}, 400, "invalid_request"),
    ("header and body", "Bearer {token}", "", {"access_token": "{token}"}, 400,
     "invalid_request"),
]


@pytest.mark.parametrize(("label", "header", "query", "extra", "status", "code"), AUTH_CASES,
                         ids=[c[0] for c in AUTH_CASES])
def test_put_authentication_failures(pt, auth, videos, label, header, query, extra, status,
                                     code):
    """server/core/middlewares/auth.ts (authenticate: every failure worded "Token is
    invalid", typed by the error) over @node-oauth/oauth2-server 5.2's
    lib/handlers/authenticate-handler.js (one token, from the header, the query or a form
    body; the header must be exactly ``Bearer <token>``)."""
    token = auth["admin"]["Authorization"].removeprefix("Bearer ")
    headers = {"Authorization": header.format(token=token)} if header else {}
    body = {"category": 15, **{k: v.format(token=token) for k, v in extra.items()}}
    answer = _put(pt, str(videos["public"]["id"]) + query.format(token=token), headers,
                  json=body)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == PROBLEM
    assert answer.json() == typed(code, status, "Token is invalid", op("putVideo"))


def test_a_token_in_a_form_body_authenticates(pt, auth, fresh_video):
    """oauth2-server's getTokenFromRequestBody: a urlencoded body may carry the token."""
    token = auth["admin"]["Authorization"].removeprefix("Bearer ")
    answer = _put(pt, fresh_video["id"], {}, data={"access_token": token, "category": "13"})
    assert answer.status_code == 204
    assert _category(pt, auth, fresh_video) == 13


def test_get_video_with_a_bad_token_fails_even_when_public(pt, auth, videos):
    """server/core/controllers/api/videos/index.ts: GET /:id runs optionalAuthenticate,
    which authenticates whenever an Authorization header is there; a query token is not
    looked at without one (server/core/middlewares/auth.ts)."""
    url = f"{pt.url}/api/v1/videos/{videos['public']['uuid']}"
    answer = requests.get(url, headers={"Authorization": "Bearer " + "1" * 40})
    assert answer.json() == typed("invalid_token", 401, "Token is invalid", op("getVideo"))
    assert requests.get(url + "?access_token=whatever").status_code == 200


def test_users_me_has_no_operation_docs(pt):
    """server/core/controllers/api/users/me.ts: GET /me is authenticate only, without
    openapiOperationDoc, so its refusal carries no docs."""
    answer = requests.get(f"{pt.url}/api/v1/users/me")
    assert answer.json() == typed("unauthorized_request", 401, "Token is invalid", None)


def test_an_expired_refresh_token_is_refused_as_expired_and_kept(pt):
    """server/core/lib/auth/oauth.ts handleRefreshGrant: an expired refresh token is
    "has expired", checked before the token is revoked."""
    pt.set_knobs(refresh_token_lifetime_s=0.5)
    try:
        client = requests.get(f"{pt.url}/api/v1/oauth-clients/local").json()
        tokens = requests.post(f"{pt.url}/api/v1/users/token", data={
            **client, "grant_type": "password", "username": SANDBOX_ADMIN_USER,
            "password": SANDBOX_ADMIN_PASSWORD}).json()
        time.sleep(0.6)
        form = {**client, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        for _ in range(2):  # not revoked: the second attempt says the same
            answer = requests.post(f"{pt.url}/api/v1/users/token", data=form)
            assert answer.json() == typed("invalid_grant", 400,
                                          "Invalid grant: refresh token has expired",
                                          op("getOAuthToken"))
    finally:
        pt.set_knobs(refresh_token_lifetime_s=1209600.0)


TOKEN_CASES = [
    ("a JSON body", "json", {}, "invalid_request",
     "Invalid request: content must be application/x-www-form-urlencoded"),
    ("no client", "form-no-client", {"grant_type": "password"}, "invalid_client",
     "Invalid client: cannot retrieve client credentials"),
    ("a wrong client secret", "form-bad-client", {"grant_type": "password"}, "invalid_client",
     "Invalid client: client is invalid"),
    ("no grant type", "form", {}, "invalid_request", "Missing parameter: `grant_type`"),
    ("client credentials", "form", {"grant_type": "client_credentials"},
     "unsupported_grant_type", "Unsupported grant type: `grant_type` is invalid"),
    ("no username", "form", {"grant_type": "password", "password": "x"}, "invalid_request",
     "Missing parameter: `username`"),
    ("no password", "form", {"grant_type": "password", "username": "root"},
     "invalid_request", "Missing parameter: `password`"),
    ("a wrong password", "form", {"grant_type": "password", "username": "root",
                                  "password": "nope"}, "invalid_grant",
     "Invalid grant: user credentials are invalid"),
    ("an unknown user", "form", {"grant_type": "password", "username": "nobody",
                                 "password": "nope"}, "invalid_grant",
     "Invalid grant: user credentials are invalid"),
    ("no refresh token", "form", {"grant_type": "refresh_token"}, "invalid_request",
     "Missing parameter: `refresh_token`"),
    ("an unknown refresh token", "form", {"grant_type": "refresh_token",
                                          "refresh_token": "0" * 40}, "invalid_grant",
     "Invalid grant: refresh token is invalid"),
]


@pytest.mark.parametrize(("label", "how", "form", "code", "detail"), TOKEN_CASES,
                         ids=[c[0] for c in TOKEN_CASES])
def test_token_endpoint_refusals(pt, label, how, form, code, detail):
    """server/core/lib/auth/oauth.ts handleOAuthToken / handlePasswordGrant /
    handleRefreshGrant, in their order; server/core/controllers/api/users/token.ts renders
    the error with its name as the type."""
    client = requests.get(f"{pt.url}/api/v1/oauth-clients/local").json()
    url = f"{pt.url}/api/v1/users/token"
    if how == "json":
        answer = requests.post(url, json={**client, "grant_type": "password"})
    elif how == "form-no-client":
        answer = requests.post(url, data=form)
    elif how == "form-bad-client":
        answer = requests.post(url, data={**form, "client_id": client["client_id"],
                                          "client_secret": "wrong"})
    else:
        answer = requests.post(url, data={**client, **form})
    assert answer.json() == typed(code, 400, detail, op("getOAuthToken"))


def test_user_names_match_case_insensitively(pt):
    """server/core/lib/auth/oauth-model.ts getUser: loadByUsernameOrEmailCaseInsensitive."""
    headers = _login(pt.url, "ROOT", SANDBOX_ADMIN_PASSWORD)
    assert requests.get(f"{pt.url}/api/v1/users/me", headers=headers).json()["username"] == \
        SANDBOX_ADMIN_USER


# ---------------------------------------------------------------------------- rights


PLUGIN_ROUTES = [
    ("GET", "/api/v1/plugins?pluginType=1", "/", op("getPlugins")),
    ("GET", "/api/v1/plugins/", "/", op("getPlugins")),
    ("GET", "/api/v1/plugins/available", "/available", op("getAvailablePlugins")),
    ("GET", "/api/v1/plugins/peertube-plugin-x", "/peertube-plugin-x", None),
    ("POST", "/api/v1/plugins/install", "/install", op("addPlugin")),
    ("POST", "/api/v1/plugins/uninstall", "/uninstall", op("uninstallPlugin")),
]


@pytest.mark.parametrize("role", ["user", "moderator"])
@pytest.mark.parametrize(("method", "target", "inner", "docs"), PLUGIN_ROUTES,
                         ids=[f"{m} {t}" for m, t, _, _ in PLUGIN_ROUTES])
def test_plugin_routes_need_the_manage_plugins_right(pt, auth, role, method, target, inner,
                                                     docs):
    """server/core/middlewares/user-right.ts: "User <name> does not have right (No. 23) to
    access to <req.path>." — the path inside the plugins router; moderators lack
    MANAGE_PLUGINS (packages/core-utils/src/users/user-role.ts)."""
    name = {"user": "bob", "moderator": "mia"}[role]
    answer = requests.request(method, pt.url + target, headers=auth[role],
                              json={"npmName": "peertube-plugin-x"})
    assert answer.json() == blank(
        403, "Forbidden", f"User {name} does not have right (No. 23) to access to {inner}.",
        docs)


@pytest.mark.parametrize(("role", "status"), [("user", 403), ("moderator", 204),
                                              ("admin", 204)])
def test_who_may_update_a_video(pt, auth, fresh_video, role, status):
    """server/core/middlewares/validators/shared/videos.ts checkCanManageVideo: the owner
    or UPDATE_ANY_VIDEO (moderators have it); anyone else gets "Cannot manage a video of
    another user."."""
    answer = _put(pt, fresh_video["id"], auth[role], json={"category": 10})
    assert answer.status_code == status
    if status == 403:
        assert answer.json() == blank(403, "Forbidden", "Cannot manage a video of another user.",
                                      op("putVideo"))
        assert _category(pt, auth, fresh_video) is None


def test_a_remote_video_cannot_be_updated(pt, auth, fresh_video):
    """checkCanManageVideo with checkIsLocal (validators/videos/videos.ts)."""
    pt.store.execute("UPDATE video SET remote = true WHERE id = %s", (fresh_video["id"],))
    answer = _put(pt, fresh_video["id"], auth["admin"], json={"category": 10})
    assert answer.json() == blank(403, "Forbidden", "Cannot manage a video of another server.",
                                  op("putVideo"))


# ---------------------------------------------------------------------------- visibility


AUTH_REQUIRED = blank(401, "Unauthorized", "Authentication is required", op("getVideo"))
CANNOT_SEE = blank(403, "Forbidden", "Cannot fetch information of private/internal/blocked "
                   "video", op("getVideo"))
NEEDS_PASSWORD = "Please provide a password to access this password protected video"
VISIBILITY = [
    ("public", "id", "anonymous", None),
    ("unlisted", "uuid", "anonymous", None),
    ("unlisted", "short", "anonymous", None),
    ("unlisted", "id", "anonymous", AUTH_REQUIRED),
    ("unlisted", "id", "user", CANNOT_SEE),
    ("unlisted", "id", "moderator", None),
    ("private", "uuid", "anonymous", AUTH_REQUIRED),
    ("private", "uuid", "user", CANNOT_SEE),
    ("private", "uuid", "moderator", None),
    ("private", "short", "admin", None),
    ("internal", "uuid", "anonymous", AUTH_REQUIRED),
    ("internal", "uuid", "user", None),
    ("password", "uuid", "anonymous",
     typed("video_requires_password", 401, NEEDS_PASSWORD, op("getVideo"))),
    ("password", "uuid", "user",
     typed("video_requires_password", 403, NEEDS_PASSWORD, op("getVideo"))),
    ("password", "uuid", "moderator", None),
    ("password", "uuid", "admin", None),
]


@pytest.mark.parametrize(("privacy", "id_form", "who", "refusal"), VISIBILITY,
                         ids=[f"{p}-{f}-{w}" for p, f, w, _ in VISIBILITY])
def test_who_may_see_a_video(pt, auth, videos, privacy, id_form, who, refusal):
    """server/core/middlewares/validators/shared/videos.ts checkCanSeeVideo and
    server/core/models/video/video.ts requiresUserAuth: private and internal videos need a
    user, unlisted ones too when asked by anything but their UUID (a short UUID is
    completed first); private and unlisted ones then need the owner or SEE_ALL_VIDEOS;
    password-protected ones ask for the password unless the user may see all videos."""
    video = videos[privacy]
    vid = {"id": video["id"], "uuid": video["uuid"], "short": uuid_to_short(video["uuid"])}
    answer = requests.get(f"{pt.url}/api/v1/videos/{vid[id_form]}", headers=auth[who])
    if refusal is None:
        assert answer.status_code == 200, answer.text
        assert answer.json()["uuid"] == video["uuid"]
    else:
        assert answer.json() == refusal


# ---------------------------------------------------------------------------- video ids


def _ids(video: dict[str, Any]) -> dict[str, str]:
    return {"id": str(video["id"]), "uuid": video["uuid"], "short": uuid_to_short(video["uuid"])}


FOUND = ["{id}", "+{id}", "000{id}", "{UUID}", "{uuid}", "{short}", "{id}/"]


@pytest.mark.parametrize("form", FOUND)
def test_video_id_forms_that_find_the_video(pt, auth, videos, form):
    """isValidVideoIdParam (validators/shared/utils.ts): validator.isInt allows a sign and
    leading zeros, PostgreSQL reads '+5' and '005' as 5; UUIDs match in any case; a 22
    character id is a short UUID (helpers/custom-validators/misc.ts toCompleteUUID)."""
    ids = _ids(videos["public"])
    raw = form.format(id=ids["id"], uuid=ids["uuid"], UUID=ids["uuid"].upper(),
                      short=ids["short"])
    answer = requests.get(f"{pt.url}/api/v1/videos/{raw}", headers=auth["admin"])
    assert answer.status_code == 200
    assert answer.json()["id"] == videos["public"]["id"]


BAD_IDS = [
    ("not-a-uuid", "not-a-uuid"),
    ("0" * 22, ""),  # 0 is not in the Flickr alphabet: the converter throws
    ("1" * 22, "00000000-0000-0000-0000-000000000000"),  # decodes, but not a v4 UUID
    ("a8098c1a-f86e-11da-bd1a-00112444be1e", "a8098c1a-f86e-11da-bd1a-00112444be1e"),  # v1
    ("1.5", "1.5"),
    ("%20", " "),
]


@pytest.mark.parametrize(("raw", "value"), BAD_IDS, ids=[b[0] for b in BAD_IDS])
def test_malformed_video_ids(pt, auth, raw, value):
    """isValidVideoIdParam: "Should have a valid video id (id, short UUID or UUID)", the
    sanitized value reported."""
    target = f"/api/v1/videos/{raw}"
    answer = requests.get(pt.url + target, headers=auth["admin"])
    assert answer.json() == invalid(target, op("getVideo"), (
        "id", value, "Should have a valid video id (id, short UUID or UUID)", "params"))


@pytest.mark.parametrize("raw", ["2147483647", "-1", "0", UNKNOWN_UUID])
def test_unknown_video_ids(pt, auth, raw):
    """doesVideoExist (validators/shared/videos.ts): 404 "Video not found"."""
    answer = requests.get(f"{pt.url}/api/v1/videos/{raw}", headers=auth["admin"])
    assert answer.json() == blank(404, "Not Found", "Video not found", op("getVideo"))


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_an_id_beyond_integer_range_is_postgresqls_error(pt, auth, method):
    """server/core/models/video/sql/video/shared/abstract-video-query-builder.ts whereId
    sends the id as text; PostgreSQL refuses it and server/server.ts's error handler
    answers 500 with Sequelize's error name and PostgreSQL's message."""
    answer = requests.request(method, f"{pt.url}/api/v1/videos/99999999999",
                              headers=auth["admin"], json={"category": 15})
    docs = op("getVideo" if method == "GET" else "putVideo")
    assert answer.json() == typed("SequelizeDatabaseError", 500,
                                  'value "99999999999" is out of range for type integer', docs)


def test_an_undecodable_id_is_a_uri_error(pt, auth):
    """Express's route layer decodes params with decodeURIComponent; its URIError reaches
    server/server.ts's error handler with status 400, before the route set its docs."""
    answer = requests.get(f"{pt.url}/api/v1/videos/%E0%A4", headers=auth["admin"])
    assert answer.json() == typed("URIError", 400, "Failed to decode param '%E0%A4'", None)


# ---------------------------------------------------------------------------- categories


VALID_CATEGORIES = [(15, 15), ("15", 15), ("15abc", 15), (" 8", 8), ([15], 15), (["16"], 16),
                    (15.0, 15), ([1, 2], 1), ("null", None), (None, None)]


@pytest.mark.parametrize(("sent", "stored"), VALID_CATEGORIES,
                         ids=[json.dumps(v) for v, _ in VALID_CATEGORIES])
def test_category_values_peertube_accepts(pt, auth, fresh_video, sent, stored):
    """getCommonVideoEditAttributes (validators/videos/videos.ts): toIntOrNull (numbers
    stay, anything else is parseInt of its string, 'null' is null; an array's string is
    its elements joined) then isVideoCategoryValid (helpers/custom-validators/videos.ts:
    null, or a key of the category table)."""
    _put(pt, fresh_video["id"], auth["admin"], json={"category": 3})
    answer = _put(pt, fresh_video["id"], auth["admin"], json={"category": sent})
    assert answer.status_code == 204, answer.text
    assert _category(pt, auth, fresh_video) == stored


INVALID_CATEGORIES = [(105, 105), (0, 0), (-1, -1), (19, 19), (1.5, 1.5), (2**31, 2**31),
                      ("abc", None), ("", None), ("0x10", 0), (True, None), (False, None),
                      ([], None), ({}, None), ({"id": 15}, None)]


@pytest.mark.parametrize(("sent", "reported"), INVALID_CATEGORIES,
                         ids=[json.dumps(v) for v, _ in INVALID_CATEGORIES])
def test_category_values_peertube_refuses(pt, auth, fresh_video, sent, reported):
    """The same chain refusing: "Invalid value" with the sanitized value (NaN is null)."""
    answer = _put(pt, fresh_video["id"], auth["admin"], json={"category": sent})
    assert answer.json() == invalid(f"/api/v1/videos/{fresh_video['id']}", op("putVideo"),
                                    ("category", reported, "Invalid value", "body"))
    assert _category(pt, auth, fresh_video) is None


@pytest.mark.parametrize("encoding", ["data", "files"])
def test_form_category_values_are_strings(pt, auth, fresh_video, encoding):
    """Urlencoded and multipart bodies carry strings: "abc" is NaN, reported as null."""
    body = {"category": "abc"} if encoding == "data" else {"category": (None, "abc")}
    answer = _put(pt, fresh_video["id"], auth["admin"], **{encoding: body})
    assert answer.json() == invalid(f"/api/v1/videos/{fresh_video['id']}", op("putVideo"),
                                    ("category", None, "Invalid value", "body"))


def test_a_plugin_category_is_valid_while_registered(pt, auth, fresh_video, tmp_path):
    """isVideoCategoryValid looks the id up in VIDEO_CATEGORIES, which plugins extend and
    which an uninstall shrinks at once (lib/plugins/plugin-manager.ts)."""
    folder = conformance.write_test_plugin(tmp_path, "peertube-plugin-branch-cats",
                                           with_bugs=True, categories={152: "Knots"})
    pt.install_plugin(folder)
    assert _put(pt, fresh_video["id"], auth["admin"], json={"category": 152}).status_code == 204
    requests.post(f"{pt.url}/api/v1/plugins/uninstall", headers=auth["admin"],
                  json={"npmName": "peertube-plugin-branch-cats"})
    answer = _put(pt, fresh_video["id"], auth["admin"], json={"category": 152})
    assert answer.json()["invalid-params"]["category"]["value"] == 152
    got = requests.get(f"{pt.url}/api/v1/videos/{fresh_video['id']}", headers=auth["admin"])
    assert got.json()["category"] == {"id": 152, "label": "Unknown"}


# ---------------------------------------------------------------------------- other fields


def test_unknown_body_fields_are_ignored(pt, auth, fresh_video):
    """videosUpdateValidator checks named fields only (no checkExact): others pass."""
    answer = _put(pt, fresh_video["id"], auth["admin"],
                  json={"category": 12, "notAField": 1, "nested": {"x": [1]}})
    assert answer.status_code == 204
    assert _category(pt, auth, fresh_video) == 12
    # A JSON array is a body without fields: nothing to check, nothing to change.
    assert _put(pt, fresh_video["id"], auth["admin"], json=[{"category": 3}]).status_code == 204
    assert _category(pt, auth, fresh_video) == 12


NAME_MSG = "Should have a video name between 3 and 120 characters long"
FIELD_ERRORS = [
    ({"name": "ab"}, [("name", "ab", NAME_MSG)]),
    ({"name": None}, [("name", "", NAME_MSG)]),
    ({"name": ["abc"]}, [("name", ["abc"], NAME_MSG)]),
    ({"licence": 10}, [("licence", 10, "Invalid value")]),
    ({"language": "abcdefghijk"}, [("language", "abcdefghijk", "Invalid value")]),
    ({"language": 5}, [("language", 5, "Invalid value")]),
    ({"nsfw": None}, [("nsfw", None, "Should have a valid nsfw boolean")]),
    ({"privacy": None}, [("privacy", None, "Invalid value")]),
    ({"privacy": 6}, [("privacy", 6, "Invalid value")]),
    ({"description": 5}, [("description", 5, "Expected a string but received a number")]),
    ({"description": "ab"}, [("description", "ab", "Invalid value")]),
    ({"support": ["a"]}, [("support", ["a"], "Expected a string but received a Array")]),
    ({"tags": "x"}, [("tags", "x", "Should have an array of up to 5 tags between 2 and 30 "
                      "characters each")]),
    ({"commentsPolicy": 4}, [("commentsPolicy", 4, "Invalid value")]),
    ({"downloadEnabled": None}, [("downloadEnabled", None,
                                  "Should have downloadEnabled boolean")]),
    ({"waitTranscoding": "maybe"}, []),  # toBooleanOrNull: any other string is true
    ({"originallyPublishedAt": "yesterday"}, [("originallyPublishedAt", "yesterday",
                                               "Invalid value")]),
    ({"scheduleUpdate": {"privacy": 3}}, [("scheduleUpdate.privacy", 3, "Invalid value")]),
    ({"channelId": "abc"}, [("channelId", None, "Invalid value")]),
    ({"videoPasswords": "pw"}, [("videoPasswords", "pw", "Video passwords should be an "
                                 "array.")]),
    ({"name": "x", "category": 999}, [("category", 999, "Invalid value"),
                                      ("name", "x", NAME_MSG)]),
]


@pytest.mark.parametrize(("body", "errors"), FIELD_ERRORS,
                         ids=[json.dumps(b) for b, _ in FIELD_ERRORS])
def test_update_field_validation(pt, auth, fresh_video, body, errors):
    """videosUpdateValidator = getCommonVideoEditAttributes then the id, name, channelId
    and videoPasswords chains (validators/videos/videos.ts), each field's first error, in
    that order; a check that validator.js throws on reports the thrown message
    (express-validator 7, src/context-items/custom-validation.ts)."""
    answer = _put(pt, fresh_video["id"], auth["admin"], json=body)
    if not errors:
        assert answer.status_code == 204
        return
    assert answer.json() == invalid(f"/api/v1/videos/{fresh_video['id']}", op("putVideo"),
                                    *[(p, v, m, "body") for p, v, m in errors])


def test_a_malformed_id_is_reported_after_the_body_fields(pt, auth):
    """The id chain runs after getCommonVideoEditAttributes."""
    target = "/api/v1/videos/nope?x=1"
    answer = requests.put(pt.url + target, headers=auth["admin"], json={"category": 999})
    assert answer.json() == invalid(target, op("putVideo"),
                                    ("category", 999, "Invalid value", "body"),
                                    ("id", "nope", "Should have a valid video id (id, short "
                                     "UUID or UUID)", "params"))


def test_a_valid_name_is_trimmed(pt, auth, fresh_video):
    """body('name').trim() sanitizes before the length check and the update."""
    assert _put(pt, fresh_video["id"], auth["admin"], json={"name": "  spaced  "}) \
        .status_code == 204
    got = requests.get(f"{pt.url}/api/v1/videos/{fresh_video['id']}", headers=auth["admin"])
    assert got.json()["name"] == "spaced"


UPDATE_REFUSALS = [
    ({"nsfwFlags": 2}, 400, "Cannot set nsfwFlags if the video is not NSFW"),
    ({"nsfwSummary": "violent"}, 400, "Cannot set nsfwSummary if the video is not NSFW"),
    ({"scheduleUpdate": {"privacy": 1}}, 400,
     '"scheduleUpdate.updateAt" parameter is mandatory'),
    ({"privacy": 5}, 400, "Video passwords are missing."),
    ({"privacy": 5, "videoPasswords": []}, 400, "At least one video password is required."),
    ({"privacy": 5, "videoPasswords": ["ab", "ab"]}, 400,
     "Duplicate video passwords are not allowed."),
    ({"privacy": 5, "videoPasswords": [5]}, 400, "Video password should be a string."),
    ({"privacy": 5, "videoPasswords": ["a"]}, 400, "Invalid video password. Password length "
     "should be at least 2 characters and no more than 100 characters."),
    ({"channelId": 999999}, 404, "Video channel not found"),
]


@pytest.mark.parametrize(("body", "status", "detail"), UPDATE_REFUSALS,
                         ids=[json.dumps(b) for b, _, _ in UPDATE_REFUSALS])
def test_update_refusals_after_validation(pt, auth, fresh_video, body, status, detail):
    """videosUpdateValidator's checks after the chains: areErrorsInScheduleUpdate,
    areErrorsInNSFW (validators/videos/videos.ts), isValidPasswordProtectedPrivacy
    (helpers/custom-validators/videos.ts), doesChannelIdExist
    (validators/shared/video-channels.ts)."""
    answer = _put(pt, fresh_video["id"], auth["admin"], json=body)
    title = {400: "Bad Request", 404: "Not Found"}[status]
    assert answer.json() == blank(status, title, detail, op("putVideo"))


def test_a_started_live_keeps_its_privacy(pt, auth, fresh_video):
    """videosUpdateValidator: "Cannot update privacy of a live that has already started"."""
    pt.store.execute('UPDATE video SET "isLive" = true WHERE id = %s', (fresh_video["id"],))
    answer = _put(pt, fresh_video["id"], auth["admin"], json={"privacy": 3})
    assert answer.json() == blank(400, "Bad Request", "Cannot update privacy of a live that "
                                  "has already started", op("putVideo"))


def test_body_parser_errors(pt, auth, fresh_video):
    """server/server.ts mounts express.json before the routers: a body it cannot parse
    is a 400 SyntaxError on any path (no docs: no route ran), one over 500 kB a 413."""
    url = f"{pt.url}/api/v1/videos/{fresh_video['id']}"
    json_headers = {**auth["admin"], "Content-Type": "application/json"}
    for body, target in ((b"{bad", url), (b'"15"', url), (b"  ", url),
                         (b'{"category": NaN}', url), (b"{bad", pt.url + "/api/v1/x")):
        answer = requests.put(target, headers=json_headers, data=body)
        problem = answer.json()
        assert (answer.status_code, problem["type"], problem["code"], problem["status"]) == (
            400, f"{DOCS}#section/Errors/SyntaxError", "SyntaxError", 400)
        assert "docs" not in problem and "title" not in problem
    answer = requests.put(url, headers=json_headers, data=b'{"a": "' + b"x" * 512_001 + b'"}')
    assert answer.json() == typed("PayloadTooLargeError", 413, "request entity too large", None)


def test_multipart_files_other_than_the_images_are_a_multer_error(pt, auth, fresh_video):
    """update.ts: multer.fields([thumbnailfile, previewfile]) (helpers/express-utils.ts
    createReqFiles); another file field is multer's "Unexpected field", which has no status
    and so becomes a 500 in server/server.ts's error handler."""
    answer = _put(pt, fresh_video["id"], auth["admin"],
                  files={"category": (None, "12"), "attachment": ("a.txt", b"x", "text/plain")})
    assert answer.json() == typed("MulterError", 500, "Unexpected field", op("putVideo"))
    answer = _put(pt, fresh_video["id"], auth["admin"],
                  files={"thumbnailfile": ("a.txt", b"x", "text/plain")})
    assert answer.json() == invalid(
        f"/api/v1/videos/{fresh_video['id']}", op("putVideo"),
        ("thumbnailfile", ..., "This thumbnail file is not supported or too large. Please, "
         "make sure it is of the following type: .png, .jpg, .jpeg, .webp", "body"))


# ---------------------------------------------------------------------------- plugins


@pytest.fixture
def plugin_folder(tmp_path) -> Path:
    name = f"peertube-plugin-b{uuid_mod.uuid4().hex[:8]}"
    return conformance.write_test_plugin(tmp_path, name, with_bugs=True)


LIST_ERRORS = [
    ("pluginType=3", ("pluginType", 3, "Invalid value")),
    ("pluginType=abc", ("pluginType", None, "Invalid value")),
    ("pluginType=3&count=101", ("pluginType", 3, "Invalid value")),
    ("count=101", ("count", "101", "Should have a number count (max: 100)")),
    ("start=-1", ("start", "-1", "Invalid value")),
    ("sort=version", ("sort", "version", "Invalid value")),
]


@pytest.mark.parametrize(("query", "error"), LIST_ERRORS, ids=[q for q, _ in LIST_ERRORS])
def test_plugin_list_query_errors(pt, auth, query, error):
    """listPluginsValidator (validators/plugins.ts), then paginationValidator
    (validators/pagination.ts), then pluginsSortValidator (validators/sort.ts): the first
    chain list with an error answers alone."""
    target = f"/api/v1/plugins?{query}"
    answer = requests.get(pt.url + target, headers=auth["admin"])
    assert answer.json() == invalid(target, op("getPlugins"), (*error, "query"))


def test_plugin_listing_in_every_state(pt, auth, tmp_path):
    """controllers/api/plugins.ts listPlugins: sorted by -createdAt by default
    (setDefaultSort), ``uninstalled`` goes through toBooleanOrNull so any word but "false"
    (or "0", "") means true; models/server/plugin.ts toFormattedJSON (settings null until
    a setting is saved)."""
    names = [f"peertube-plugin-list{i}-{uuid_mod.uuid4().hex[:6]}" for i in range(2)]
    for name in names:
        pt.install_plugin(conformance.write_test_plugin(tmp_path, name, with_bugs=True))
    listed = requests.get(f"{pt.url}/api/v1/plugins?pluginType=1&count=100",
                          headers=auth["admin"]).json()
    short = [n.removeprefix("peertube-plugin-") for n in names]
    mine = [p for p in listed["data"] if p["name"] in short]
    assert [p["name"] for p in mine] == short[::-1]  # newest first
    assert list(mine[0]) == ["name", "type", "version", "latestVersion", "enabled",
                             "uninstalled", "peertubeEngine", "description", "homepage",
                             "settings", "createdAt", "updatedAt"]
    assert mine[0]["settings"] is None and mine[0]["enabled"] is True
    by_name = requests.get(f"{pt.url}/api/v1/plugins?sort=name&count=100",
                           headers=auth["admin"]).json()["data"]
    assert [p["name"] for p in by_name] == sorted(p["name"] for p in by_name)
    requests.post(f"{pt.url}/api/v1/plugins/uninstall", headers=auth["admin"],
                  json={"npmName": names[0]})
    for word in ("true", "yes", "1"):
        gone = requests.get(f"{pt.url}/api/v1/plugins?uninstalled={word}",
                            headers=auth["admin"]).json()
        assert short[0] in [p["name"] for p in gone["data"]]
        assert all(p["uninstalled"] for p in gone["data"])
    still = requests.get(f"{pt.url}/api/v1/plugins?uninstalled=false&count=100",
                         headers=auth["admin"]).json()
    assert short[0] not in [p["name"] for p in still["data"]]


def _install(pt, auth, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(f"{pt.url}/api/v1/plugins/install", headers=auth["admin"],
                         json=body, **kwargs)


def test_install_refusals(pt, auth, plugin_folder, tmp_path):
    """installOrUpdatePluginValidator (validators/plugins.ts) and installPlugin
    (controllers/api/plugins.ts: any failure of PluginManager.install is a 400 naming
    ``npmName || path``, the reason only in the log)."""
    docs = op("addPlugin")
    target = "/api/v1/plugins/install"
    cases: list[tuple[Any, dict[str, Any]]] = [
        ({}, blank(400, "Bad Request", "Should have either a npmName or a path", docs)),
        ({"path": ""}, blank(400, "Bad Request", "Should have either a npmName or a path",
                             docs)),
        ({"path": "/x", "pluginVersion": "1.0.0"},
         blank(400, "Bad Request", "Should have a npmName when specifying a pluginVersion",
               docs)),
        ({"npmName": "foo"}, invalid(target, docs, ("npmName", "foo", "Invalid value",
                                                    "body"))),
        ({"npmName": 5}, invalid(target, docs, ("npmName", 5, "Expected a string but "
                                                "received a number", "body"))),
        ({"npmName": "peertube-plugin-x", "pluginVersion": "1.0"},
         invalid(target, docs, ("pluginVersion", "1.0", "Invalid value", "body"))),
        ({"path": "/a/../b"}, invalid(target, docs, ("path", "/a/../b", "Invalid value",
                                                     "body"))),
        ({"path": str(tmp_path / "peertube-plugin-missing")},
         blank(400, "Bad Request", f"Cannot install plugin {tmp_path}/peertube-plugin-missing",
               docs)),
        ({"npmName": "peertube-plugin-from-npm"},
         blank(400, "Bad Request", "Cannot install plugin peertube-plugin-from-npm", docs)),
        # Both given: PeerTube installs "from disk" at the npm name, which is no folder.
        ({"npmName": "peertube-plugin-x", "path": str(plugin_folder)},
         blank(400, "Bad Request", "Cannot install plugin peertube-plugin-x", docs)),
    ]
    for body, expected in cases:
        assert _install(pt, auth, body).json() == expected, body
    # multer does not run on this route: a multipart body has no fields.
    answer = requests.post(pt.url + target, headers=auth["admin"],
                           files={"path": (None, str(plugin_folder))})
    assert answer.json() == blank(400, "Bad Request", "Should have either a npmName or a path",
                                  docs)


def test_install_an_invalid_package_and_reinstall(pt, auth, plugin_folder, tmp_path):
    """PluginManager.install (lib/plugins/plugin-manager.ts): package.json is checked
    (helpers/custom-validators/plugins.ts isPackageJSONValid: bugs is required); installing
    an installed plugin answers 200 again."""
    bad = conformance.write_test_plugin(tmp_path, "peertube-plugin-b-nobugs", with_bugs=False)
    assert _install(pt, auth, {"path": str(bad)}).json() == blank(
        400, "Bad Request", f"Cannot install plugin {bad}", op("addPlugin"))
    for _ in range(2):
        answer = _install(pt, auth, {"path": str(plugin_folder)})
        assert answer.status_code == 200
        assert answer.json()["name"] == plugin_folder.name.removeprefix("peertube-plugin-")


def test_uninstall_in_every_state(pt, auth, tmp_path):
    """uninstallPluginValidator (validators/plugins.ts) then PluginManager.uninstall: it
    unregisters and marks the row uninstalled, and only logs when the plugin is not
    installed, so the answer is 204 in every state."""
    url = f"{pt.url}/api/v1/plugins/uninstall"
    target = "/api/v1/plugins/uninstall"
    docs = op("uninstallPlugin")
    plugin_folder = conformance.write_test_plugin(tmp_path, "peertube-plugin-b-uninstall",
                                                  with_bugs=True, categories={151: "Rope"})
    npm = plugin_folder.name
    assert requests.post(url, headers=auth["admin"], json={}).json() == invalid(
        target, docs, ("npmName", ..., "Invalid value", "body"))
    assert requests.post(url, headers=auth["admin"], json={"npmName": "foo"}).json() == \
        invalid(target, docs, ("npmName", "foo", "Invalid value", "body"))
    never = requests.post(url, headers=auth["admin"], json={"npmName": npm})
    assert (never.status_code, never.content) == (204, b"")
    pt.install_plugin(plugin_folder)
    assert "151" in requests.get(f"{pt.url}/api/v1/videos/categories").json()
    for _ in range(2):  # installed, then already uninstalled
        answer = requests.post(url, headers=auth["admin"], json={"npmName": npm})
        assert (answer.status_code, answer.content) == (204, b"")
    assert "151" not in requests.get(f"{pt.url}/api/v1/videos/categories").json()
    row = requests.get(f"{pt.url}/api/v1/plugins/{npm}", headers=auth["admin"]).json()
    assert (row["uninstalled"], row["enabled"]) == (True, False)


def test_get_one_plugin(pt, auth, plugin_folder):
    """GET /plugins/:npmName: existingPluginValidator (validators/plugins.ts), no docs;
    any row of the plugin table, installed or not."""
    pt.install_plugin(plugin_folder)
    url = f"{pt.url}/api/v1/plugins"
    got = requests.get(f"{url}/{plugin_folder.name}", headers=auth["admin"]).json()
    assert got["name"] == plugin_folder.name.removeprefix("peertube-plugin-")
    assert requests.get(f"{url}/peertube-plugin-never-there", headers=auth["admin"]).json() \
        == blank(404, "Not Found", "Plugin not found", None)
    assert requests.get(f"{url}/Not_A_Name", headers=auth["admin"]).json() == invalid(
        "/api/v1/plugins/Not_A_Name", None, ("npmName", "Not_A_Name", "Invalid value",
                                             "params"))


def test_the_plugin_index_is_unreachable(pt, auth):
    """listAvailablePlugins (controllers/api/plugins.ts) when the index cannot be fetched."""
    answer = requests.get(f"{pt.url}/api/v1/plugins/available", headers=auth["admin"])
    assert answer.json() == blank(503, "Service Unavailable",
                                  "Plugin index unavailable. Please retry later",
                                  op("getAvailablePlugins"))


# ---------------------------------------------------------------------------- limiters, paths


def test_over_the_api_limit_a_bad_token_is_a_401_and_admins_pass(limits, auth):
    """server/core/middlewares/rate-limiter.ts: over the limit, a request with an
    Authorization header is authenticated (failure: 401, no docs yet), admins and
    moderators go on, anyone else gets 429; express-rate-limit 8 (source/headers.ts) sets
    Retry-After to the seconds left in the window."""
    pt = limits
    pt.set_knobs(rate_limit_max=2, rate_limit_window_s=3600)
    url = f"{pt.url}/api/v1/videos/categories"
    assert [requests.get(url).status_code for _ in range(2)] == [200, 200]
    bad = requests.get(url, headers={"Authorization": "Bearer " + "2" * 40})
    assert bad.json() == typed("invalid_token", 401, "Token is invalid", None)
    assert bad.headers["X-RateLimit-Remaining"] == "0"
    anonymous = requests.get(url)
    assert (anonymous.status_code, anonymous.text) == (429, "Too many requests, please try "
                                                       "again later.")
    assert 3590 <= int(anonymous.headers["Retry-After"]) <= 3600
    for role in ("admin", "moderator"):
        passed = requests.get(url, headers=auth[role])
        assert passed.status_code == 200
        assert "Retry-After" in passed.headers  # set before the handler let it through
    assert requests.get(url, headers=auth["user"]).status_code == 429


def test_unknown_paths(pt, auth):
    """server/core/controllers/api/index.ts: an API path no router serves is
    res.type('json').status(400).end(), limited only inside a limited router;
    server/server.ts: a path outside the API is a 404 with no body."""
    for target, limited in (("/api/v1/nothing", False), ("/api/v1/videos/1/nothing", True),
                            ("/api/v1/videos/categories/x", True)):
        answer = requests.get(pt.url + target, headers=auth["admin"])
        assert (answer.status_code, answer.content) == (400, b"")
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        assert ("X-RateLimit-Limit" in answer.headers) is limited
    post = requests.post(f"{pt.url}/api/v1/videos/categories", headers=auth["admin"])
    assert (post.status_code, post.content) == (400, b"")
    outside = requests.get(f"{pt.url}/nothing")
    assert (outside.status_code, outside.content) == (404, b"")
    assert "Content-Type" not in outside.headers


# ---------------------------------------------------------------------------- listing


@pytest.fixture(scope="module")
def listing(pt) -> dict[str, dict[str, Any]]:
    """Videos in categories 7 (Gaming) and 9 (Comedy), which no other test uses."""
    made = {}
    for name, privacy, category in (("a-public", 1, 7), ("b-unlisted", 2, 7),
                                    ("c-private", 3, 7), ("d-internal", 4, 7),
                                    ("e-password", 5, 7), ("f-public", 1, 9),
                                    ("g-public", 1, 7)):
        made[name] = pt.add_video(name, privacy=privacy, category=category)
    hidden = {"h-nsfw": ("nsfw", True), "i-transcoding": ("waitTranscoding", True)}
    for name, (column, value) in hidden.items():
        made[name] = pt.add_video(name, privacy=1, category=7)
        pt.store.execute(f'UPDATE video SET "{column}" = %s WHERE id = %s',
                         (value, made[name]["id"]))
    pt.store.execute("UPDATE video SET state = 2 WHERE id = %s", (made["i-transcoding"]["id"],))
    return made


def _list(pt, query: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(f"{pt.url}/api/v1/videos?{query}", headers=headers or {})


def _names(answer: requests.Response) -> list[str]:
    return [v["name"] for v in answer.json()["data"]]


ALL_PRIVACIES = "&".join(f"privacyOneOf={p}" for p in range(1, 6))
COUNTS = [
    ("anonymous", "categoryOneOf=7", ["a-public", "g-public"]),
    ("admin", "categoryOneOf=7", ["a-public", "d-internal", "g-public"]),
    ("user", "categoryOneOf=7", ["a-public", "d-internal", "g-public"]),
    ("admin", f"categoryOneOf=7&{ALL_PRIVACIES}",
     ["a-public", "b-unlisted", "c-private", "d-internal", "e-password", "g-public"]),
    ("moderator", "categoryOneOf=7&privacyOneOf=3", ["c-private"]),
    ("anonymous", "categoryOneOf=7&categoryOneOf=9", ["a-public", "f-public", "g-public"]),
    ("anonymous", "categoryOneOf[]=9", ["f-public"]),
    ("anonymous", "categoryOneOf=7&nsfw=both", ["a-public", "g-public", "h-nsfw"]),
    ("admin", "categoryOneOf=7&include=1&privacyOneOf=1",
     ["a-public", "g-public", "i-transcoding"]),
    ("anonymous", "categoryOneOf=7&isLocal=false", []),
    ("anonymous", "categoryOneOf=7&tagsOneOf=x", []),
]


@pytest.mark.parametrize(("who", "query", "names"), COUNTS, ids=[q for _, q, _ in COUNTS])
def test_listing_by_category(pt, auth, listing, who, query, names):
    """GET /videos (controllers/api/videos/index.ts) with listForApi's conditions
    (models/video/sql/video/videos-id-list-query-builder.ts): published state, privacy
    public (plus internal for a user) unless privacyOneOf, no NSFW unless asked, the
    category filter; PEERTUBE-FACTS.md "Counting videos by category"."""
    answer = _list(pt, f"{query}&sort=name&count=100", auth[who])
    assert answer.status_code == 200, answer.text
    assert _names(answer) == names
    assert answer.json()["total"] == len(names)


def test_listing_pages_counts_and_shapes(pt, auth, listing):
    """setDefaultPagination (middlewares/pagination.ts: count=0 is kept), the -publishedAt
    default sort (middlewares/sort.ts) and each video's formatted JSON
    (models/video/formatter/video-api-format.ts)."""
    zero = _list(pt, "categoryOneOf=7&count=0").json()
    assert zero == {"total": 2, "data": []}
    page = _list(pt, "categoryOneOf=7&sort=-name&start=1&count=1").json()
    assert (page["total"], [v["name"] for v in page["data"]]) == (2, ["a-public"])
    video = page["data"][0]
    public = listing["a-public"]
    assert (video["uuid"], video["shortUUID"], video["category"]) == (
        public["uuid"], uuid_to_short(public["uuid"]), {"id": 7, "label": "Gaming"})
    assert "total" not in _list(pt, "categoryOneOf=7&skipCount=true").json()
    newest_first = _names(_list(pt, "categoryOneOf=7"))
    assert newest_first == ["g-public", "a-public"]


def test_listing_follows_a_category_change_at_once(pt, auth, listing, fresh_video):
    """PEERTUBE-FACTS.md: setting and clearing a category is reflected in the total."""
    before = _list(pt, "categoryOneOf=9&count=0").json()["total"]
    _put(pt, fresh_video["id"], auth["admin"], json={"category": 9})
    assert _list(pt, "categoryOneOf=9&count=0").json()["total"] == before + 1
    _put(pt, fresh_video["id"], auth["admin"], json={"category": None})
    assert _list(pt, "categoryOneOf=9&count=0").json()["total"] == before


LIST_REFUSALS = [
    ("anonymous", "privacyOneOf=3", 401),
    ("user", "privacyOneOf=3", 401),
    ("anonymous", "include=1", 401),
    ("anonymous", "include=0", 401),  # the string "0" is truthy
    ("anonymous", "excludeAlreadyWatched=true", 400),
    ("anonymous", "filter=local", 400),
    ("anonymous", "nsfwFlagsIncluded=2&nsfwFlagsExcluded=2", 400),
]
LIST_DETAILS = {
    401: "You are not allowed to see all videos, specify a custom include or auto tags filter",
}


@pytest.mark.parametrize(("who", "query", "status"), LIST_REFUSALS,
                         ids=[q for _, q, _ in LIST_REFUSALS])
def test_listing_refusals(pt, auth, who, query, status):
    """commonVideosFiltersValidatorFactory (validators/videos/videos.ts) after its chains."""
    detail = LIST_DETAILS.get(status) or {
        "excludeAlreadyWatched=true": "Cannot use excludeAlreadyWatched parameter when auth "
                                      "token is not provided",
        "filter=local": '"filter" query parameter is not supported anymore by PeerTube. '
                        'Please use "isLocal" and "include" instead',
    }.get(query, "Cannot use same flags in nsfwFlagsIncluded and nsfwFlagsExcluded at the "
                 "same time")
    title = {400: "Bad Request", 401: "Unauthorized"}[status]
    assert _list(pt, query, auth[who]).json() == blank(status, title, detail, op("getVideos"))


LIST_INVALID = [
    ("count=101", [("count", "101", "Should have a number count (max: 100)")]),
    ("start=x&count=-1", [("start", "x", "Invalid value"),
                          ("count", "-1", "Should have a number count (max: 100)")]),
    ("sort=bogus", [("sort", "bogus", "Invalid value")]),
    ("categoryOneOf=abc", [("categoryOneOf", ["abc"], "Should have a valid categoryOneOf "
                                                      "array")]),
    ("categoryOneOf=7&categoryOneOf=1.5", [("categoryOneOf", ["7", "1.5"],
                                            "Should have a valid categoryOneOf array")]),
    ("isLive=maybe&nsfw=no", [("nsfw", "no", "Invalid value")]),
]


@pytest.mark.parametrize(("query", "errors"), LIST_INVALID, ids=[q for q, _ in LIST_INVALID])
def test_listing_query_validation(pt, query, errors):
    """paginationValidator, videosSortValidator, then the filter chains, each list
    answering alone (validators/pagination.ts, sort.ts, videos/videos.ts)."""
    answer = _list(pt, query)
    assert answer.json() == invalid(f"/api/v1/videos?{query}", op("getVideos"),
                                    *[(p, v, m, "query") for p, v, m in errors])


def test_listing_an_out_of_range_category_is_postgresqls_error(pt):
    """whereCategoryOneOf sends the values as text (IN (:categoryOneOf))."""
    answer = _list(pt, "categoryOneOf=99999999999")
    assert answer.json() == typed("SequelizeDatabaseError", 500,
                                  'value "99999999999" is out of range for type integer',
                                  op("getVideos"))
