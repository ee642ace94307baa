"""PeerTube watch URLs and short UUIDs.

RECON stores a stream video's watch URL in `catalogue.path`
(`https://stream.echo6.co/w/<id>`, where `<id>` is a short UUID or a full UUID). PeerTube's
short UUID is the UUID's 128-bit number written in base58 with the Flickr alphabet, padded
to 22 characters with the alphabet's first character (PEERTUBE-FACTS.md; the `short-uuid`
npm library PeerTube uses). Real paths carry query strings, fragments, trailing slashes or
are garbage, so parsing never raises: it returns a reason instead.

The push writes to our PeerTube by video id, so a watch URL on another host (a federated
video whose origin is another instance, or a hostile row) must never reach it: given the
stream's hosts, parse_watch_url refuses any other. Hosts are compared as urllib parses
them (the host of `https://a@b/` is b, a port is no part of it), case-insensitively, in
IDNA form; a host name IDNA would rewrite (full-width letters, ideographic dots, ß) is
refused rather than mapped, as is any user info.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

FLICKR_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
SHORT_UUID_LENGTH = 22  # ceil(128 / log2(58))

_INDEX = {ch: i for i, ch in enumerate(FLICKR_BASE58)}
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_MAX_UUID_INT = (1 << 128) - 1


def _canonical_uuid(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def uuid_to_short(uuid_str: str) -> str:
    """The 22-character PeerTube short UUID of a UUID (any case, with hyphens).

    Raises ValueError when uuid_str is not a UUID in its 8-4-4-4-12 hex form.
    """
    if not isinstance(uuid_str, str) or not _UUID_RE.fullmatch(uuid_str):
        raise ValueError(
            f"expected a UUID like 9ae4afdc-a21a-42bf-9fe9-ca247e5e5f39, got {uuid_str!r}"
        )
    number = int(uuid_str.replace("-", ""), 16)
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(FLICKR_BASE58[rem])
    return "".join(reversed(digits)).rjust(SHORT_UUID_LENGTH, FLICKR_BASE58[0])


def short_to_uuid(short: str) -> str:
    """The canonical lowercase UUID of a PeerTube short UUID.

    Accepts 1–22 Flickr-base58 characters (unpadded short UUIDs decode the same: leading
    '1's are zeros). Raises ValueError for an empty string, more than 22 characters, a
    character outside the alphabet (0, O, I, l, punctuation), or a number above 128 bits.
    """
    if not isinstance(short, str) or not short:
        raise ValueError(f"expected a short UUID (22 base58 characters), got {short!r}")
    if len(short) > SHORT_UUID_LENGTH:
        raise ValueError(
            f"short UUID {short!r} has {len(short)} characters; at most {SHORT_UUID_LENGTH}"
        )
    number = 0
    for ch in short:
        digit = _INDEX.get(ch)
        if digit is None:
            raise ValueError(f"short UUID {short!r} contains {ch!r}, not a Flickr base58 character")
        number = number * 58 + digit
    if number > _MAX_UUID_INT:
        raise ValueError(f"short UUID {short!r} decodes to a number wider than 128 bits")
    return _canonical_uuid(number)


@dataclass(frozen=True)
class WatchUrlResult:
    """Outcome of parsing a watch URL.

    video_id: the canonical lowercase UUID, or None when the URL could not be parsed.
    raw_id:   the id segment as found in the URL (None when there was none).
    reason:   why it could not be parsed (None on success); meant for an operator.
    """

    video_id: str | None
    raw_id: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when a video id was found."""
        return self.video_id is not None


def _id_segment(path: str) -> tuple[str | None, str | None]:
    """(raw id, None) or (None, reason) for a URL path like /w/<id> or /videos/watch/<id>."""
    segments = [unquote(s) for s in path.split("/") if s]
    if len(segments) >= 1 and segments[0] == "w":
        rest = segments[1:]
        if len(rest) >= 1 and rest[0] == "p":
            return None, "a playlist URL (/w/p/…), not a video watch URL"
    elif len(segments) >= 2 and segments[0] == "videos" and segments[1] == "watch":
        rest = segments[2:]
        if len(rest) >= 1 and rest[0] == "playlist":
            return None, "a playlist URL (/videos/watch/playlist/…), not a video watch URL"
    else:
        return None, f"path {path!r} is not /w/<id> or /videos/watch/<id>"
    if not rest:
        return None, "watch URL without a video id"
    if len(rest) > 1:
        return None, f"unexpected segments after the video id: {'/'.join(rest[1:])!r}"
    return rest[0], None


def host_key(name: str) -> str | None:
    """A host name as hosts are compared: lower case, in IDNA (xn--) form, without one
    trailing dot; None when it is empty, not valid IDNA, or a name IDNA would rewrite
    (its Unicode form must be exactly what was written)."""
    name = name.lower()
    name = name[:-1] if name.endswith(".") else name
    if not name:
        return None
    try:
        key = name.encode("idna").decode("ascii")
        if key != name and key.encode("ascii").decode("idna") != name:
            return None  # nameprep mapped something: not the name as written
    except UnicodeError:
        return None
    return key


@functools.lru_cache(maxsize=16)
def _host_keys(hosts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(k for k in map(host_key, hosts) if k is not None)


def _foreign_host(parts: SplitResult, hosts: Iterable[str]) -> str | None:
    """Why a parsed watch URL is not on one of `hosts` (None when it is, or names no host:
    a bare path is our own instance's)."""
    if not parts.netloc:
        # "https:/w/<id>": a browser takes "w" for its host.
        return "a scheme without a host" if parts.scheme else None
    if "@" in parts.netloc:
        # Not repeated: user info may carry a password.
        return "user info before the host (…@host) is refused: it hides which host is meant"
    try:
        _ = parts.port  # urllib checks it only when asked
    except ValueError:
        return f"host part {parts.netloc!r} has a malformed port"
    accepted = _host_keys(tuple(hosts))
    key = host_key(parts.hostname or "")
    if key in accepted:
        return None
    if key is None:
        return f"host {parts.hostname!r} is not a name as written (IDNA refuses or rewrites it)"
    return (
        f"host {parts.hostname!r} is not the stream host ({', '.join(sorted(accepted))}): a "
        "video of another instance is never pushed to ours by id (if this host is ours, add "
        "it to RECON_ACCEPTED_HOSTS)"
    )


def parse_watch_url(path: object, hosts: Iterable[str] | None = None) -> WatchUrlResult:
    """Extract the video UUID from a PeerTube watch URL; never raises.

    Accepts `https://host/w/<short uuid or uuid>` and `https://host/videos/watch/<id>`, with
    or without scheme and host, with query strings, fragments and trailing slashes. Full
    UUIDs may be upper case; a short UUID must be exactly 22 Flickr-base58 characters (what
    PeerTube generates) whose number fits in 128 bits. With `hosts` (the stream's: what the
    push may write to), a URL naming any other host is refused too. Anything else gets a
    reason.
    """
    if path is None:
        return WatchUrlResult(None, None, "no path (NULL)")
    if not isinstance(path, str):
        return WatchUrlResult(None, None, f"path is a {type(path).__name__}, not a string")
    text = path.strip()
    if not text:
        return WatchUrlResult(None, None, "empty path")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host part
        return WatchUrlResult(None, None, f"not a URL: {exc}")
    if parts.scheme and parts.scheme not in ("http", "https"):
        return WatchUrlResult(None, None, f"scheme {parts.scheme!r} is not http(s)")
    if hosts is not None and (foreign := _foreign_host(parts, hosts)):
        return WatchUrlResult(None, None, foreign)
    raw_id, reason = _id_segment(parts.path)
    if raw_id is None:
        return WatchUrlResult(None, None, reason)
    if _UUID_RE.fullmatch(raw_id):
        return WatchUrlResult(raw_id.lower(), raw_id)
    if len(raw_id) != SHORT_UUID_LENGTH:
        return WatchUrlResult(
            None,
            raw_id,
            f"id {raw_id!r} is neither a UUID nor a {SHORT_UUID_LENGTH}-character short UUID",
        )
    try:
        return WatchUrlResult(short_to_uuid(raw_id), raw_id)
    except ValueError as exc:
        return WatchUrlResult(None, raw_id, str(exc))


def canonical_video_id(video_id: str) -> str:
    """The video's canonical lowercase UUID when `video_id` is a UUID (any case) or a
    22-character short UUID (watch URLs carry either, so ledgers may hold either); anything
    else unchanged, for PeerTube to answer it."""
    text = video_id.strip()
    if _UUID_RE.fullmatch(text):
        return text.lower()
    if len(text) == SHORT_UUID_LENGTH:
        try:
            return short_to_uuid(text)
        except ValueError:
            pass
    return video_id
