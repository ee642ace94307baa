"""Short UUIDs and watch URL parsing (PEERTUBE-FACTS.md: observed pair from PeerTube 8.0.1)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_domains.peertube.urls import (
    FLICKR_BASE58,
    WatchUrlResult,
    canonical_video_id,
    parse_watch_url,
    short_to_uuid,
    uuid_to_short,
)

OBSERVED_UUID = "9ae4afdc-a21a-42bf-9fe9-ca247e5e5f39"
OBSERVED_SHORT = "k8mQZHTJKUcohGWKxxzwvX"

uuids = st.integers(min_value=0, max_value=(1 << 128) - 1).map(lambda n: str(uuid.UUID(int=n)))


def test_observed_pair_both_ways():
    assert uuid_to_short(OBSERVED_UUID) == OBSERVED_SHORT
    assert short_to_uuid(OBSERVED_SHORT) == OBSERVED_UUID
    assert uuid_to_short(OBSERVED_UUID.upper()) == OBSERVED_SHORT


def test_padding_with_first_alphabet_character():
    assert uuid_to_short("00000000-0000-0000-0000-000000000000") == "1" * 22
    assert uuid_to_short("00000000-0000-0000-0000-000000000001") == "1" * 21 + "2"
    assert short_to_uuid("1" * 22) == "00000000-0000-0000-0000-000000000000"
    # Unpadded short UUIDs (old short-uuid versions) decode to the same number.
    assert short_to_uuid("2") == "00000000-0000-0000-0000-000000000001"


def test_largest_uuid_and_overflow():
    top = "ffffffff-ffff-ffff-ffff-ffffffffffff"
    short = uuid_to_short(top)
    assert len(short) == 22
    assert short_to_uuid(short) == top
    with pytest.raises(ValueError, match="128 bits"):
        short_to_uuid("Z" * 22)


@pytest.mark.parametrize("bad", ["", "0" * 22, "l" * 22, "k8mQZHTJKUcohGWKxxzwv!", "2" * 23])
def test_short_to_uuid_rejects(bad):
    with pytest.raises(ValueError):
        short_to_uuid(bad)


@pytest.mark.parametrize("bad", ["", "not-a-uuid", OBSERVED_UUID.replace("-", ""), "9ae4afdc"])
def test_uuid_to_short_rejects(bad):
    with pytest.raises(ValueError):
        uuid_to_short(bad)


@given(uuids)
def test_round_trip_uuid(u):
    short = uuid_to_short(u)
    assert len(short) == 22
    assert set(short) <= set(FLICKR_BASE58)
    assert short_to_uuid(short) == u


@given(st.text(alphabet=FLICKR_BASE58, min_size=22, max_size=22))
def test_round_trip_short(short):
    try:
        u = short_to_uuid(short)
    except ValueError:
        # Only numbers wider than 128 bits may be refused.
        value = 0
        for ch in short:
            value = value * 58 + FLICKR_BASE58.index(ch)
        assert value >= 1 << 128
        return
    assert uuid_to_short(u) == short


@given(uuids, st.sampled_from(["", "/", "?start=30", "#t=12", "/?a=1#b", "?playlistPosition=2"]))
def test_parse_short_and_full_forms(u, tail):
    short = uuid_to_short(u)
    for url in (
        f"https://stream.echo6.co/w/{short}{tail}",
        f"https://stream.echo6.co/w/{u}{tail}",
        f"https://stream.echo6.co/w/{u.upper()}{tail}",
        f"https://stream.echo6.co/videos/watch/{u}{tail}",
        f"http://10.0.0.5:9000/videos/watch/{short}{tail}",
        f"/w/{short}{tail}",
    ):
        result = parse_watch_url(url)
        assert result.video_id == u, url
        assert result.reason is None
        assert result.ok


def test_parse_observed_url():
    result = parse_watch_url(f"https://stream.echo6.co/w/{OBSERVED_SHORT}?start=1m#x")
    assert result == WatchUrlResult(OBSERVED_UUID, OBSERVED_SHORT, None)


@pytest.mark.parametrize(
    "path",
    [
        None,
        "",
        "   ",
        "garbage",
        "https://stream.echo6.co/",
        "https://stream.echo6.co/w/",
        "https://stream.echo6.co/w/p/k8mQZHTJKUcohGWKxxzwvX",
        "https://stream.echo6.co/videos/watch/playlist/" + OBSERVED_UUID,
        "https://stream.echo6.co/c/some_channel/videos",
        "https://stream.echo6.co/a/root",
        "https://stream.echo6.co/w/k8mQZHTJKUcohGWKxxzwvX/extra",
        "https://stream.echo6.co/w/k8mQZHTJKUcohGWKxxzw0X",  # '0' is not base58
        "https://stream.echo6.co/w/" + "Z" * 22,  # > 128 bits
        "https://stream.echo6.co/w/abc",  # too short for a PeerTube short UUID
        "https://stream.echo6.co/w/12345",
        "ftp://stream.echo6.co/w/" + OBSERVED_SHORT,
        "https://[broken/w/" + OBSERVED_SHORT,
        "https://stream.echo6.co/w/" + OBSERVED_UUID[:-1],
        "file:///home/zvx/video.mp4",
    ],
)
def test_parse_refuses_with_reason(path):
    result = parse_watch_url(path)
    assert result.video_id is None
    assert not result.ok
    assert isinstance(result.reason, str) and result.reason


def test_parse_non_string():
    result = parse_watch_url(12345)
    assert result.video_id is None and "int" in result.reason


def test_raw_id_kept_on_invalid_id():
    result = parse_watch_url("https://stream.echo6.co/w/" + "Z" * 22)
    assert result.raw_id == "Z" * 22
    assert "128 bits" in result.reason


@given(st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=40), st.integers()))
def test_parse_never_raises(value):
    result = parse_watch_url(value)
    assert (result.video_id is None) == (result.reason is not None)


# -- the stream's hosts ---------------------------------------------------------------------
STREAM = ("stream.echo6.co",)
ID = OBSERVED_SHORT


@pytest.mark.parametrize(
    "url",
    [
        f"https://stream.echo6.co/w/{ID}",
        f"http://stream.echo6.co/videos/watch/{OBSERVED_UUID}",
        f"https://STREAM.Echo6.CO/w/{ID}",  # host names are case-insensitive
        f"https://stream.echo6.co:443/w/{ID}",  # a port is no part of the host
        f"https://stream.echo6.co:8443/w/{ID}?start=3",
        f"https://stream.echo6.co./w/{ID}",  # the fully qualified form
        f"/w/{ID}",  # a bare path names no other host
    ],
)
def test_a_watch_url_on_the_stream_host_is_accepted(url):
    parsed = parse_watch_url(url, STREAM)
    assert parsed == parse_watch_url(url) and parsed.video_id == OBSERVED_UUID


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"https://evil.example/w/{ID}", "host 'evil.example' is not the stream host"),
        (f"https://peertube.other.org/videos/watch/{OBSERVED_UUID}", "not the stream host"),
        (f"https://stream.echo6.co.evil.example/w/{ID}", "not the stream host"),
        (f"https://evil-stream.echo6.co/w/{ID}", "not the stream host"),
        (f"https://stream.echo6.co@evil.example/w/{ID}", "user info"),
        (f"https://user:secret@stream.echo6.co/w/{ID}", "user info"),
        (f"https://@stream.echo6.co/w/{ID}", "user info"),
        (f"https://stream.echo6.co\\@evil.example/w/{ID}", "user info"),
        (f"https://stream.echo6.co:evil.example/w/{ID}", "malformed port"),
        (f"https://stream.echo6.co:99999/w/{ID}", "malformed port"),
        (f"https://stream.echo6.co:-1/w/{ID}", "malformed port"),
        (f"//evil.example/w/{ID}", "not the stream host"),  # scheme-relative
        (f"https:/w/{ID}", "a scheme without a host"),  # a browser's host would be "w"
        (f"https://xn--tream-5se.echo6.co/w/{ID}", "not the stream host"),  # ѕtream, Cyrillic
        (f"https://ѕtream.echo6.co/w/{ID}", "not the stream host"),
        (f"https://ｓｔｒｅａｍ.echo6.co/w/{ID}", "not a name as written"),  # full-width
        (f"https://stream。echo6。co/w/{ID}", "not a name as written"),  # ideographic dots
        (f"https://stream..echo6.co/w/{ID}", "not a name as written"),
        (f"https://stream%2Eecho6.co/w/{ID}", "not the stream host"),
        (f"https://[::1]/w/{ID}", "not the stream host"),
    ],
)
def test_a_watch_url_on_another_host_is_refused_with_its_reason(url, why):
    parsed = parse_watch_url(url, STREAM)
    assert parsed.video_id is None and why in parsed.reason
    assert "secret" not in parsed.reason  # user info may carry a password


def test_idna_names_compare_in_their_ascii_form_and_no_other():
    ours = ("bücher.example",)
    assert parse_watch_url(f"https://xn--bcher-kva.example/w/{ID}", ours).ok
    assert parse_watch_url(f"https://BÜCHER.example/w/{ID}", ours).ok
    assert not parse_watch_url(f"https://bucher.example/w/{ID}", ours).ok
    # IDNA 2003 would map ß to ss: under IDNA 2008 they are different names, so neither.
    assert not parse_watch_url(f"https://straße.example/w/{ID}", ("strasse.example",)).ok


def test_accepted_hosts_extend_the_stream_host():
    hosts = ("stream.echo6.co", "old-name.example")
    assert parse_watch_url(f"https://old-name.example/w/{ID}", hosts).ok
    assert parse_watch_url(f"https://stream.echo6.co/w/{ID}", hosts).ok
    refused = parse_watch_url(f"https://evil.example/w/{ID}", hosts)
    assert "(old-name.example, stream.echo6.co)" in refused.reason


hosts_text = st.text(
    alphabet=st.sampled_from("stream.echo6.coSTREAM-_:@\\/%[]。ｓ0é\t ") | st.characters(),
    max_size=30,
)


@given(hosts_text, st.sampled_from(["", ":443", ":8080", ":x", "."]))
def test_property_only_a_host_urllib_reads_as_the_stream_host_is_accepted(host, suffix):
    url = f"https://{host}{suffix}/w/{ID}"
    parsed = parse_watch_url(url, STREAM)
    if parsed.ok:
        netloc = urlsplit(url).netloc
        assert "@" not in netloc
        name = urlsplit(url).hostname
        assert name is not None and name.removesuffix(".") == "stream.echo6.co"


@given(st.sampled_from(["stream.echo6.co", "STREAM.ECHO6.CO", "Stream.Echo6.Co."]),
       st.one_of(st.none(), st.integers(min_value=0, max_value=65535)),
       st.sampled_from(["https", "http", "HTTPS"]))
def test_property_every_spelling_of_the_stream_host_is_accepted(host, port, scheme):
    netloc = host if port is None else f"{host}:{port}"
    assert parse_watch_url(f"{scheme}://{netloc}/w/{ID}", STREAM).video_id == OBSERVED_UUID


@given(st.text(max_size=20))
def test_property_any_user_info_is_refused(userinfo):
    assert not parse_watch_url(f"https://{userinfo}@stream.echo6.co/w/{ID}", STREAM).ok


def test_canonical_video_id_of_a_short_uuid_a_uuid_or_anything_else():
    assert canonical_video_id(OBSERVED_SHORT) == OBSERVED_UUID
    assert canonical_video_id(OBSERVED_UUID.upper()) == OBSERVED_UUID
    assert canonical_video_id(f" {OBSERVED_UUID} ") == OBSERVED_UUID
    # Not a video id PeerTube generates: kept as it is, for PeerTube to answer it.
    for other in ("uuid-0", "0" * 22, "k8mQZHTJKUcohGWKxxzwv"):
        assert canonical_video_id(other) == other
