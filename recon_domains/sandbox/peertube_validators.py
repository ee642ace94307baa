"""PeerTube 8.0.1's request validators, for the routes the sandbox serves.

Each checker mirrors an express-validator chain list of PeerTube: chains run in PeerTube's
order, a chain sanitizes before it validates, the value an error reports is the sanitized
one, and only a field's first error is kept (``errors.mapped()``). Sources:

- video id: ``isValidVideoIdParam`` (server/core/middlewares/validators/shared/utils.ts)
  with ``toCompleteUUID`` / ``isIdOrUUIDValid`` (server/core/helpers/custom-validators/misc.ts);
- video update: ``videosUpdateValidator`` and ``getCommonVideoEditAttributes``
  (server/core/middlewares/validators/videos/videos.ts), the field checks in
  server/core/helpers/custom-validators/videos.ts;
- video list: ``paginationValidator`` (validators/pagination.ts), ``videosSortValidator``
  (validators/sort.ts), ``commonVideosFiltersValidatorFactory`` (validators/videos/videos.ts);
- plugins: ``listPluginsValidator``, ``installOrUpdatePluginValidator``,
  ``uninstallPluginValidator``, ``existingPluginValidator`` (validators/plugins.ts) and
  server/core/helpers/custom-validators/plugins.ts.

Standard validators (isInt, isIn, isArray...) and sanitizers (trim) run on each element of
an array value; custom ones see the whole value (express-validator 7's context items).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recon_domains.peertube.urls import FLICKR_BASE58, SHORT_UUID_LENGTH
from recon_domains.sandbox.peertube_problems import (
    ABSENT,
    NotAString,
    arrayify,
    assert_string,
    field_error,
    is_boolean_value,
    is_int_string,
    is_int_value,
    is_js_number,
    is_length,
    js_key,
    js_string,
    js_truthy,
    to_boolean_or_null,
    to_int_or_null,
    to_value_or_null,
)

# server/core/initializers/constants.ts (8.0.1).
LICENCES = {
    1: "Attribution",
    2: "Attribution - Share Alike",
    3: "Attribution - No Derivatives",
    4: "Attribution - Non Commercial",
    5: "Attribution - Non Commercial - Share Alike",
    6: "Attribution - Non Commercial - No Derivatives",
    7: "Public Domain Dedication",
    8: "Free of known copyright restrictions",
    9: "Copyrighted - All Rights Reserved",
}
PRIVACIES = {1: "Public", 2: "Unlisted", 3: "Private", 4: "Internal", 5: "Password protected"}
PRIVACY_PUBLIC, PRIVACY_UNLISTED, PRIVACY_PRIVATE, PRIVACY_INTERNAL, PRIVACY_PASSWORD = (
    1, 2, 3, 4, 5,
)
COMMENTS_POLICIES = {1: "Enabled", 2: "Disabled", 3: "Requires approval"}
VIDEO_STATES = {
    1: "Published",
    2: "To transcode",
    3: "To import",
    4: "Waiting for livestream",
    5: "Livestream ended",
    6: "To move to an external storage",
    7: "Transcoding failed",
    8: "External storage move failed",
    9: "To edit",
    10: "To move to file system",
    11: "Move to file system failed",
    12: "Import failed",
}
STATE_PUBLISHED, STATE_TO_TRANSCODE, STATE_WAITING_FOR_LIVE = 1, 2, 4
VIDEO_INCLUDE_NOT_PUBLISHED_STATE = 1
PAGINATION_COUNT_DEFAULT, PAGINATION_COUNT_MAX = 15, 100
VIDEO_SORTS = (
    "name", "duration", "createdAt", "publishedAt", "originallyPublishedAt", "views", "likes",
    "comments", "trending", "hot", "best", "localVideoFilesSize", "match",
)
PLUGIN_SORTS = ("name", "createdAt", "updatedAt")
PLUGIN_TYPE_PLUGIN, PLUGIN_TYPE_THEME = 1, 2
NAME_LENGTH = (3, 120)
DESCRIPTION_LENGTH = (3, 10000)
SUPPORT_LENGTH = (3, 1000)
LANGUAGE_LENGTH = (1, 10)
NSFW_SUMMARY_LENGTH = (3, 250)
TAGS_MAX, TAG_LENGTH = 5, (2, 30)
IMAGE_MAX_BYTES = 8 * 1024 * 1024
PLUGIN_NAME_LENGTH = (1, 214)

_UUID_V4 = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)
_NPM_NAME = re.compile(r"^[a-z\-._0-9]+$")
# validator.js 13's isISO8601 (non-strict).
_ISO8601 = re.compile(
    r"^([+-]?\d{4}(?!\d{2}\b))((-?)((0[1-9]|1[0-2])(\3([12]\d|0[1-9]|3[01]))?|W([0-4]\d|5[0-3])"
    r"(-?[1-7])?|(00[1-9]|0[1-9]\d|[12]\d{2}|3([0-5]\d|6[1-6])))([T\s]((([01]\d|2[0-3])((:?)"
    r"[0-5]\d)?|24:?00)([.,]\d+(?!:))?)?(\17[0-5]\d([.,]\d+)?)?([zZ]|([+-])([01]\d|2[0-3]):?"
    r"([0-5]\d)?)?)?)?$"
)
_SHORT_INDEX = {ch: i for i, ch in enumerate(FLICKR_BASE58)}


@dataclass
class Checked:
    """The outcome of a chain list: sanitized values and errors (first per field)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fail(self, path: str, value: Any, msg: str, location: str) -> None:
        """Record an error unless the field already has one (errors.mapped())."""
        self.errors.setdefault(path, field_error(value, msg, path, location))


def _custom(check: Callable[[Any], bool], value: Any, message: str | None) -> str | None:
    """Run a custom validator like express-validator: its message, or the thrown error's
    (validator.js refusing a non-string) when it has none; None when it passes."""
    try:
        ok = check(value)
    except NotAString as exc:
        return message or str(exc)
    return None if ok else (message or "Invalid value")


# ---------------------------------------------------------------------------- video ids


def complete_uuid(raw: str) -> str:
    """toCompleteUUID: any 22-character value is a short UUID to decode ('' when it holds
    a character outside the alphabet, as short-uuid's converter throws)."""
    if len(raw) != SHORT_UUID_LENGTH:
        return raw
    number = 0
    for ch in raw:
        digit = _SHORT_INDEX.get(ch)
        if digit is None:
            return ""
        number = number * 58 + digit
    # short-uuid pads the hex to 32 digits and slices 8-4-4-4-12 from the left: a number
    # wider than 128 bits loses its last digits.
    hexa = f"{number:x}".rjust(32, "0")
    return f"{hexa[0:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:32]}"


def is_uuid_v4(value: str) -> bool:
    """validator.isUUID(value, 4): case-insensitive."""
    return bool(_UUID_V4.match(value))


def is_id_or_uuid(value: str) -> bool:
    """isIdOrUUIDValid."""
    return is_int_string(value) or is_uuid_v4(value)


def check_video_id(checked: Checked, raw: str) -> str:
    """isValidVideoIdParam('id'): the sanitized id (an error recorded when invalid)."""
    value = complete_uuid(raw)
    if not is_id_or_uuid(value):
        checked.fail("id", value, "Should have a valid video id (id, short UUID or UUID)",
                      "params")
    return value


# ---------------------------------------------------------------------------- video update


def _is_date(value: Any) -> bool:
    return value is not None and bool(_ISO8601.match(_ensure_text(value)))


def _ensure_text(value: Any) -> str:
    return assert_string(value)


def _in_table(table: Mapping[int, str]) -> Callable[[Any], bool]:
    keys = {str(k) for k in table}
    return lambda v: js_key(v) in keys


def _nullable(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _length(bounds: tuple[int, int]) -> Callable[[Any], bool]:
    return lambda v: v is not None and is_length(v, *bounds)


def _tags_valid(value: Any) -> bool:
    return value is None or (
        isinstance(value, list)
        and len(value) <= TAGS_MAX
        and all(t is not None and is_length(t, *TAG_LENGTH) for t in value)
    )


def _express_string(value: Any) -> str:
    """express-validator's toString, which standard sanitizers apply first."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return js_string(value)


def _trim(value: Any) -> Any:
    if isinstance(value, list):
        return [_express_string(v).strip() for v in value]
    return _express_string(value).strip()


@dataclass(frozen=True)
class _BodyChain:
    """body(path).optional()[.customSanitizer(sanitize)].custom(check)[.withMessage(msg)]."""

    path: str
    sanitize: Callable[[Any], Any] | None
    check: Callable[[Any], bool]
    message: str | None = None


def _body_get(body: Mapping[str, Any], path: str) -> Any:
    """lodash get on the body: a dotted path into nested objects (ABSENT when missing)."""
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def _common_edit_chains(categories: Callable[[], Mapping[int, str]]) -> list[_BodyChain]:
    """getCommonVideoEditAttributes after its two file chains, in order."""
    to_bool = to_boolean_or_null
    return [
        _BodyChain("category", to_int_or_null,
                   _nullable(lambda v: _in_table(categories())(v))),
        _BodyChain("licence", to_int_or_null, _nullable(_in_table(LICENCES))),
        _BodyChain("language", to_value_or_null,
                   _nullable(lambda v: isinstance(v, str) and is_length(v, *LANGUAGE_LENGTH))),
        _BodyChain("nsfw", to_bool, is_boolean_value, "Should have a valid nsfw boolean"),
        _BodyChain("nsfwFlags", to_int_or_null, _nullable(is_int_value)),
        _BodyChain("nsfwSummary", to_value_or_null, _nullable(_length(NSFW_SUMMARY_LENGTH))),
        _BodyChain("waitTranscoding", to_bool, is_boolean_value,
                   "Should have a valid waitTranscoding boolean"),
        _BodyChain("privacy", to_int_or_null, _in_table(PRIVACIES)),
        _BodyChain("description", to_value_or_null, _nullable(_length(DESCRIPTION_LENGTH))),
        _BodyChain("support", to_value_or_null, _nullable(_length(SUPPORT_LENGTH))),
        _BodyChain("tags", to_value_or_null, _tags_valid,
                   f"Should have an array of up to {TAGS_MAX} tags between {TAG_LENGTH[0]} "
                   f"and {TAG_LENGTH[1]} characters each"),
        _BodyChain("commentsPolicy", None, _nullable(_in_table(COMMENTS_POLICIES))),
        _BodyChain("downloadEnabled", to_bool, is_boolean_value,
                   "Should have downloadEnabled boolean"),
        _BodyChain("originallyPublishedAt", to_value_or_null, _nullable(_is_date)),
        _BodyChain("scheduleUpdate", to_value_or_null, lambda v: True),
        _BodyChain("scheduleUpdate.updateAt", None, _is_date,
                   "Should have a schedule update date that conforms to ISO 8601"),
        _BodyChain("scheduleUpdate.privacy", to_int_or_null,
                   lambda v: v in (PRIVACY_UNLISTED, PRIVACY_PUBLIC, PRIVACY_INTERNAL)
                   and is_js_number(v)),
    ]


def _run_body_chain(checked: Checked, body: Mapping[str, Any], chain: _BodyChain) -> None:
    value = _body_get(body, chain.path)
    if value is ABSENT:  # .optional(): only an absent field is skipped
        return
    if chain.sanitize is not None:
        value = chain.sanitize(value)
    checked.values[chain.path] = value
    msg = _custom(chain.check, value, chain.message)
    if msg is not None:
        checked.fail(chain.path, value, msg, "body")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart body, as multer describes it."""

    filename: str
    mimetype: str
    size: int


_IMAGE_MIMETYPE = re.compile(r"^image/(png|jpg|jpeg|webp)$", re.IGNORECASE)


def _check_images(checked: Checked, files: Mapping[str, UploadedFile]) -> None:
    """The thumbnailfile and previewfile chains (isVideoImageValid, optional files)."""
    for path, what in (("thumbnailfile", "thumbnail"), ("previewfile", "preview")):
        upload = files.get(path)
        if upload is None:
            continue
        if not (upload.filename and upload.size <= IMAGE_MAX_BYTES
                and _IMAGE_MIMETYPE.match(upload.mimetype)):
            checked.fail(path, ABSENT,
                         f"This {what} file is not supported or too large. Please, make sure "
                         "it is of the following type: .png, .jpg, .jpeg, .webp", "body")


def check_video_update(
    body: Mapping[str, Any],
    files: Mapping[str, UploadedFile],
    raw_id: str,
    categories: Callable[[], Mapping[int, str]],
) -> tuple[Checked, str]:
    """videosUpdateValidator's chains: (sanitized body fields and errors, sanitized id)."""
    checked = Checked()
    _check_images(checked, files)
    for chain in _common_edit_chains(categories):
        _run_body_chain(checked, body, chain)
    video_id = check_video_id(checked, raw_id)
    name = _body_get(body, "name")
    if name is not ABSENT:
        name = _trim(name)
        checked.values["name"] = name
        msg = _custom(lambda v: v is not None and is_length(v, *NAME_LENGTH), name,
                      f"Should have a video name between {NAME_LENGTH[0]} and "
                      f"{NAME_LENGTH[1]} characters long")
        if msg is not None:
            checked.fail("name", name, msg, "body")
    _run_body_chain(checked, body, _BodyChain("channelId", to_int_or_null, is_int_value))
    _run_body_chain(checked, body, _BodyChain(
        "videoPasswords", None, lambda v: isinstance(v, list),
        "Video passwords should be an array."))
    return checked, video_id


def nsfw_conflict(values: Mapping[str, Any]) -> str | None:
    """areErrorsInNSFW: flags or a summary on a video that is not NSFW."""
    if not values.get("nsfw"):
        if values.get("nsfwFlags"):
            return "Cannot set nsfwFlags if the video is not NSFW"
        if values.get("nsfwSummary"):
            return "Cannot set nsfwSummary if the video is not NSFW"
    return None


def schedule_conflict(body: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
    """areErrorsInScheduleUpdate: a schedule without its date."""
    schedule = values.get("scheduleUpdate", body.get("scheduleUpdate"))
    if schedule and not (isinstance(schedule, dict) and schedule.get("updateAt")):
        return '"scheduleUpdate.updateAt" parameter is mandatory'
    return None


def password_privacy_problem(body: Mapping[str, Any], privacy: Any) -> str | None:
    """isValidPasswordProtectedPrivacy (server/core/helpers/custom-validators/videos.ts)."""
    if privacy != PRIVACY_PASSWORD:
        return None
    if all(body.get(k) is None for k in ("videoPasswords", "passwords", "password")):
        return "Video passwords are missing."
    passwords = next((body[k] for k in ("videoPasswords", "passwords") if js_truthy(body.get(k))),
                     [body.get("password")])
    if not isinstance(passwords, list) or len(passwords) == 0:
        return "At least one video password is required."
    hashable = [p if not isinstance(p, list | dict) else repr(p) for p in passwords]
    if len(set(hashable)) != len(passwords):
        return "Duplicate video passwords are not allowed."
    for password in passwords:
        if not isinstance(password, str):
            return "Video password should be a string."
        if not 2 <= len(password) <= 100:
            return ("Invalid video password. Password length should be at least 2 characters "
                    "and no more than 100 characters.")
    return None


# ---------------------------------------------------------------------------- queries


def _query_int(checked: Checked, query: Mapping[str, Any], name: str, maximum: int | None,
               msg: str) -> None:
    """query(name).optional().isInt({min: 0[, max]}) — a standard validator, so each
    element of a repeated parameter is checked."""
    if name not in query:
        return
    value = query[name]
    for item in value if isinstance(value, list) else [value]:
        text = _express_string(item)
        ok = is_int_string(text) and int(text) >= 0 and (maximum is None or int(text) <= maximum)
        if not ok:
            checked.fail(name, value, msg, "query")


def check_pagination(query: Mapping[str, Any]) -> Checked:
    """paginationValidator."""
    checked = Checked()
    _query_int(checked, query, "start", None, "Invalid value")
    _query_int(checked, query, "count", PAGINATION_COUNT_MAX,
               f"Should have a number count (max: {PAGINATION_COUNT_MAX})")
    return checked


def check_sort(query: Mapping[str, Any], columns: tuple[str, ...]) -> Checked:
    """checkSort: sort is one of the columns, optionally prefixed with '-'."""
    checked = Checked()
    if "sort" in query:
        allowed = {*columns, *("-" + c for c in columns)}
        value = query["sort"]
        for item in value if isinstance(value, list) else [value]:
            if _express_string(item) not in allowed:
                checked.fail("sort", value, "Invalid value", "query")
    return checked


def first_number(value: Any) -> int:
    """forceNumber (parseInt of the string form) as setDefaultPagination applies it."""
    number = to_int_or_null(js_string(value))
    return 0 if number is None or (isinstance(number, float) and math.isnan(number)) \
        else int(number)


_FILTER_CHAINS: tuple[tuple[str, str], ...] = (
    ("categoryOneOf", "numbers"), ("licenceOneOf", "numbers"), ("languageOneOf", "strings"),
    ("privacyOneOf", "numbers"), ("tagsOneOf", "strings"), ("tagsAllOf", "strings"),
    ("nsfw", "both"), ("nsfwFlagsIncluded", "flags"), ("nsfwFlagsExcluded", "flags"),
    ("isLive", "boolean"), ("includeScheduledLive", "boolean"), ("include", "int"),
    ("isLocal", "boolean"), ("hasHLSFiles", "boolean"), ("hasWebVideoFiles", "boolean"),
    ("skipCount", "boolean"), ("search", "any"), ("excludeAlreadyWatched", "watched"),
    ("autoTagOneOf", "strings"),
)


def check_video_filters(query: Mapping[str, Any]) -> Checked:
    """commonVideosFiltersValidatorFactory's chains, in order."""
    # invented: ``host`` is neither checked nor applied (the sandbox has no remote servers).
    checked = Checked()
    for name, kind in _FILTER_CHAINS:
        if name not in query:
            continue
        value = query[name]
        msg = "Invalid value"
        if kind in ("numbers", "strings"):
            value = arrayify(value)
            ok = all(is_int_value(v) for v in value) if kind == "numbers" \
                else all(isinstance(v, str) for v in value)
            msg = f"Should have a valid {name} array"
        elif kind == "both":
            ok = value in ("true", "false", "both")
        elif kind == "flags":
            value = to_int_or_null(value)
            ok = value is None or is_int_value(value)
        elif kind == "boolean":
            value = to_boolean_or_null(value)
            ok = is_boolean_value(value)
            msg = f"Should have a valid {name} boolean"
        elif kind == "int":
            ok = is_int_value(value)
        elif kind == "watched":
            value = to_boolean_or_null(value)
            ok = value is not None
            msg = "Should be a valid excludeAlreadyWatched boolean"
        else:
            ok = value is not None
        checked.values[name] = value
        if not ok:
            checked.fail(name, value, msg, "query")
    return checked


# ---------------------------------------------------------------------------- plugins


def is_npm_plugin_name(value: Any) -> bool:
    """isNpmPluginNameValid (raises NotAString like validator.isLength for non-strings)."""
    return (
        value is not None
        and value is not ABSENT
        and is_length(value, *PLUGIN_NAME_LENGTH)
        and bool(_NPM_NAME.match(value))
        and (value.startswith("peertube-plugin-") or value.startswith("peertube-theme-"))
    )


def _is_safe_path(value: Any) -> bool:
    """isSafePath: no '..' segment."""
    return value is not None and ".." not in js_string(value).split("/")


def _is_version(value: Any) -> bool:
    """isStableOrUnstableVersionValid."""
    if value is None:
        return False
    stable, _, suffix = _ensure_text(value).partition("-")
    parts = stable.split(".")
    if len(parts) != 3 or not all(is_int_string(p) for p in parts):
        return False
    return not suffix or bool(re.fullmatch(r"(rc|alpha|beta)\.\d+", suffix))


def check_plugin_list(query: Mapping[str, Any]) -> Checked:
    """listPluginsValidator: pluginType is 1 or 2; uninstalled is any boolean-ish value
    (toBooleanOrNull makes every string a boolean, so it never fails on a string)."""
    checked = Checked()
    if "pluginType" in query:
        value = to_int_or_null(query["pluginType"])
        checked.values["pluginType"] = value
        if value not in (PLUGIN_TYPE_PLUGIN, PLUGIN_TYPE_THEME) or not is_js_number(value):
            checked.fail("pluginType", value, "Invalid value", "query")
    if "uninstalled" in query:
        value = to_boolean_or_null(query["uninstalled"])
        checked.values["uninstalled"] = value
        if not is_boolean_value(value):
            checked.fail("uninstalled", value, "Invalid value", "query")
    return checked


def check_plugin_install(body: Mapping[str, Any]) -> Checked:
    """installOrUpdatePluginValidator's chains."""
    checked = Checked()
    for path, check in (("npmName", is_npm_plugin_name), ("pluginVersion", _is_version),
                        ("path", _is_safe_path)):
        if path in body:
            msg = _custom(check, body[path], None)
            if msg is not None:
                checked.fail(path, body[path], msg, "body")
    return checked


def check_npm_name(value: Any, location: str) -> Checked:
    """uninstallPluginValidator / existingPluginValidator: a required npm name."""
    checked = Checked()
    msg = _custom(is_npm_plugin_name, value, None)
    if msg is not None:
        checked.fail("npmName", value, msg, location)
    return checked
