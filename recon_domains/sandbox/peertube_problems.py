"""How PeerTube 8.0.1 words a refusal, and the JavaScript coercions its validators rely on.

Every error PeerTube's API sends goes through ``res.fail`` (server/core/middlewares/error.ts):
an RFC 7807 document built by http-problem-details, ``docs`` being the operation's
documentation link when the route set one (server/core/middlewares/doc.ts) and ``code`` the
error type. express-validator failures are rendered by ``areValidationErrors``
(server/core/middlewares/validators/shared/utils.ts). The validators themselves coerce
values the JavaScript way (``'' + value``, ``parseInt``, object keys as strings); the
helpers here reproduce those coercions for the JSON and form values a client can send, so
the sandbox reaches the same verdict and reports the same sanitized ``value``.
"""

from __future__ import annotations

import math
import re
from http import HTTPStatus
from typing import Any

DOCS = "https://docs.joinpeertube.org/api-rest-reference.html"
ERRORS_URL = f"{DOCS}#section/Errors/"

# Node's http.STATUS_CODES for the statuses the sandbox answers without a type (Python's
# phrases differ for some, e.g. 413).
NODE_STATUS_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def operation_docs(operation_id: str) -> str:
    """The ``docs`` link openapiOperationDoc sets for an operation."""
    return f"{DOCS}#operation/{operation_id}"


class ApiError(Exception):
    """An answer other than success, raised by a route and rendered by the HTTP layer.

    status/detail/code/instance/extra are ``res.fail``'s status, message, type, instance
    and data; docs is the route's documentation link (None where PeerTube sets none).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        instance: str | None = None,
        extra: dict[str, Any] | None = None,
        docs: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.instance = instance
        self.extra = extra or {}
        self.docs = docs

    def body(self) -> dict[str, Any]:
        """The problem document, keys in http-problem-details' order."""
        doc: dict[str, Any] = {}
        if self.code:
            doc["type"] = ERRORS_URL + self.code
        else:
            # No type: about:blank, titled with Node's phrase for the status.
            doc["type"] = "about:blank"
            doc["title"] = NODE_STATUS_PHRASES.get(self.status) or HTTPStatus(self.status).phrase
        doc["detail"] = self.detail
        if self.instance:
            doc["instance"] = self.instance
        doc["status"] = self.status
        doc.update(self.extra)
        if self.docs:
            doc["docs"] = self.docs
        if self.code:
            doc["code"] = self.code
        return doc


class _Absent:
    """A field the request does not carry (JavaScript's undefined)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def field_error(value: Any, msg: str, path: str, location: str) -> dict[str, Any]:
    """One express-validator error as ``errors.mapped()`` lists it: the value already
    sanitized, written as JSON.stringify writes it (NaN is null, undefined is left out)."""
    error: dict[str, Any] = {"type": "field"}
    if value is not ABSENT:
        error["value"] = json_value(value)
    return {**error, "msg": msg, "path": path, "location": location}


def validation_error(
    instance: str, errors: dict[str, dict[str, Any]], docs: str | None
) -> ApiError:
    """areValidationErrors' answer: one entry per field, in the order the chains ran."""
    return ApiError(
        400,
        "Incorrect request parameters: " + ", ".join(errors),
        instance=instance,
        extra={"invalid-params": errors},
        docs=docs,
    )


# ---------------------------------------------------------------------------- JS coercions


def json_value(value: Any) -> Any:
    """What JSON.stringify writes for a value: NaN and ±Infinity become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON numbers have no separate integer type
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def js_number_text(value: float | int) -> str:
    """String(number) for the numbers a JSON body can carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    # JavaScript writes exponents as e+21 / e-7, Python as e+21 / e-07.
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", text)


def js_string(value: Any) -> str:
    """``'' + value`` in JavaScript, for values parsed from JSON or a form."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        # Array.prototype.join: null and undefined elements are empty strings.
        return ",".join("" if v is None else js_string(v) for v in value)
    return "[object Object]"


def js_truthy(value: Any) -> bool:
    """JavaScript's truthiness (arrays and objects, even empty, are true)."""
    if value is None or value is ABSENT:
        return False
    if isinstance(value, bool):
        return value
    if is_js_number(value):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def is_js_number(value: Any) -> bool:
    """typeof value === 'number'."""
    return isinstance(value, int | float) and not isinstance(value, bool)


_PARSE_INT = re.compile(r"^[\s\ufeff\xa0]*([+-]?[0-9]+)")


def parse_int(text: str) -> float | int:
    """parseInt(text, 10): leading whitespace, a sign and digits, else NaN."""
    match = _PARSE_INT.match(text)
    return int(match.group(1)) if match else math.nan


def to_value_or_null(value: Any) -> Any:
    """PeerTube's toValueOrNull: the string 'null' means null."""
    return None if value == "null" else value


def to_int_or_null(value: Any) -> Any:
    """PeerTube's toIntOrNull (server/core/helpers/custom-validators/misc.ts)."""
    v = to_value_or_null(value)
    if v is None or is_js_number(v):
        return v
    return parse_int(js_string(v))


def to_boolean_or_null(value: Any) -> Any:
    """PeerTube's toBooleanOrNull: validator's non-strict toBoolean on anything but a bool."""
    v = to_value_or_null(value)
    if v is None or isinstance(v, bool):
        return v
    text = js_string(v)
    return text not in ("0", "") and text.lower() != "false"


def js_key(value: Any) -> str:
    """The property name ``object[value]`` looks up."""
    if value is None:
        return "null"
    if is_js_number(value):
        return js_number_text(value)
    return js_string(value)


_INT_STRING = re.compile(r"^[-+]?[0-9]+$")


def is_int_string(text: str) -> bool:
    """validator.isInt with its default options (leading zeros allowed)."""
    return bool(_INT_STRING.match(text))


def is_int_value(value: Any) -> bool:
    """validator.isInt('' + value)."""
    return value is not None and is_int_string(js_string(value))


def is_boolean_value(value: Any) -> bool:
    """PeerTube's isBooleanValid: a boolean, or a string validator.isBoolean accepts."""
    return isinstance(value, bool) or (
        isinstance(value, str) and value in ("true", "false", "1", "0")
    )


class NotAString(TypeError):
    """validator.js refusing a non-string (assertString): its message becomes the
    express-validator message of a custom validator without withMessage."""


def assert_string(value: Any) -> str:
    """validator.js's assertString."""
    if isinstance(value, str):
        return value
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "boolean"
    elif is_js_number(value):
        kind = "number"
    elif isinstance(value, list):
        kind = "Array"
    else:
        kind = "Object"
    raise NotAString(f"Expected a string but received a {kind}")


def is_length(value: Any, minimum: int, maximum: int | None = None) -> bool:
    """validator.isLength (UTF-16 length, as JavaScript counts it)."""
    text = assert_string(value)
    length = len(text.encode("utf-16-le")) // 2
    return length >= minimum and (maximum is None or length <= maximum)


def arrayify(value: Any) -> list[Any]:
    """@peertube/peertube-core-utils arrayify."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")


def decode_uri_component(text: str) -> str | None:
    """decodeURIComponent, or None where it throws URIError (a lone %, bad UTF-8)."""
    if _PERCENT.search(text):
        return None
    from urllib.parse import unquote

    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return None
