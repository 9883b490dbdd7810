"""Raw ASGI header helpers that compare names case-insensitively (Django sends `Content-Type`)."""

from __future__ import annotations

from collections.abc import Iterable

from ..fields import native

RawHeaders = list[tuple[bytes, bytes]]


def get_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """First value of a header; `name` must be lower-case."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _first_values_py(headers: Iterable[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> tuple[bytes | None, ...]:
    found: list[bytes | None] = [None] * len(names)
    for key, value in headers:
        name = key.lower()
        for index, wanted in enumerate(names):
            if found[index] is None and name == wanted:
                found[index] = value
                break
    return tuple(found)


_first_values_native = native.first_values


def first_values(headers: Iterable[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> tuple[bytes | None, ...]:
    """The first value of each of `names` (lower-case), in their order, None where absent: one scan
    of the headers, in C where the extension is built (it answers exactly as the Python scan,
    tests/properties/test_native_prefilter.py)."""
    if _first_values_native is not None:
        found = _first_values_native(headers, names)
        if found is not None:
            return found
    return _first_values_py(headers, names)


def get_all(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def without(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> RawHeaders:
    """The headers minus every occurrence of the given lower-case names."""
    drop = set(names)
    return [(key, value) for key, value in headers if key.lower() not in drop]


def replace(headers: Iterable[tuple[bytes, bytes]], name: bytes, value: bytes) -> RawHeaders:
    return [*without(headers, name), (name, value)]


def media_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    return media_of(get_header(headers, b"content-type"))


_MEDIA: dict[bytes, str] = {}  # Content-Type values seen and their media types (a shop sends a few)
_MEDIA_KEPT = 256


def media_of(value: bytes | None) -> str:
    """The media type of a Content-Type value ("" for none), lower-case, without parameters."""
    if not value:
        return ""
    media = _MEDIA.get(value) if type(value) is bytes else None
    if media is None:
        media = value.split(b";", 1)[0].strip().lower().decode("latin-1")
        if type(value) is bytes and len(_MEDIA) < _MEDIA_KEPT:
            _MEDIA[value] = media
    return media


def is_json_media_type(media: str) -> bool:
    """`application/json` and every `+json` type (problem+json, graphql-response+json)."""
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def merge_vary(headers: RawHeaders, *fields: str) -> RawHeaders:
    existing = [v.decode("latin-1") for v in get_all(headers, b"vary")]
    names = [n.strip() for value in existing for n in value.split(",") if n.strip()]
    if "*" in names:
        return headers
    lower = {n.lower() for n in names}
    names.extend(f for f in fields if f.lower() not in lower)
    return replace(headers, b"vary", ", ".join(names).encode("latin-1"))


DIGEST_HEADERS = (b"content-md5", b"digest", b"content-digest", b"repr-digest", b"etag")
_VARY_FIELDS = ("Authorization", "Cookie")


# The header names of a shop's header list `ResponseEdits` may remember: none that carries who the
# caller is or what the body holds (no Set-Cookie, Location, ETag, Link, request ids or dates).
KEPT_NAMES = frozenset(
    {
        b"content-type",
        b"content-length",
        b"cache-control",
        b"vary",
        b"content-language",
        b"x-content-type-options",
        b"x-frame-options",
        b"referrer-policy",
        b"strict-transport-security",
        b"content-security-policy",
        b"server",
    }
)


class ResponseEdits:
    """The response header edits of one route plan, prepared when the plan is built.

    A filtered answer depends on who asks, so it gets `Vary: Authorization, Cookie` and a private
    `Cache-Control`, and loses its digests once its body changed; a buffered body gets its new
    length. What a request adds is a filter over the shop's headers in one pass and the prepared
    values appended, in the order the edits were always applied (vary, cache-control, length).
    """

    __slots__ = ("_drops", "_edited", "_vary", "private")

    _KEPT = 256  # header lists remembered with their edits (a shop sends a few kinds); then computed
    # Only lists whose every name is in KEPT_NAMES are remembered: no cookie, location or tag is kept.

    def __init__(self, private: bool) -> None:
        self.private = private
        self._vary = ", ".join(_VARY_FIELDS).encode("latin-1")
        # (body changed, new length) -> the names a request drops before appending its own values
        self._drops = {
            (changed, sized): frozenset(
                ((b"vary",) if private else ())
                + (DIGEST_HEADERS if private and changed else ())
                + ((b"content-length",) if sized else ())
            )
            for changed in (False, True)
            for sized in (False, True)
        }
        # (the shop's headers as a tuple, body changed, new length given) -> the edited headers without
        # the new length and the steps' extra: a shop answers a route with the same headers again and again
        self._edited: dict[tuple[tuple[tuple[bytes, bytes], ...], bool, bool], RawHeaders] = {}

    def apply(self, headers: RawHeaders, extra: RawHeaders, *, changed: bool, length: int | None = None) -> RawHeaders:
        """The shop's headers with this plan's edits, then the steps' `extra` headers (a new list)."""
        if not self.private and length is None:
            return headers + extra
        sized = length is not None
        try:
            key = (tuple(headers), changed, sized)
            edited = self._edited.get(key)
        except TypeError:  # a header given as a list: not a key, edited below
            key, edited = None, None
        if edited is None:
            edited = self._edit(headers, changed=changed, sized=sized)
            if key is not None and len(self._edited) < self._KEPT and all(k.lower() in KEPT_NAMES for k, _ in headers):
                self._edited[key] = edited
        if sized:
            return [*edited, (b"content-length", str(length).encode()), *extra]
        return edited + extra

    def _edit(self, headers: RawHeaders, *, changed: bool, sized: bool) -> RawHeaders:
        """`apply`'s edits of the shop's headers, without the new length and the extra headers."""
        drop = self._drops[(changed and self.private, sized)]
        appended: RawHeaders = []
        if self.private:
            vary: list[bytes] = []
            cache_control: bytes | None = None
            for key, value in headers:
                name = key.lower()
                if name == b"vary":
                    vary.append(value)
                elif name == b"cache-control" and cache_control is None:
                    cache_control = value
            merged = _merged_vary(vary) if vary else self._vary
            if merged is None:  # `Vary: *` stays as the shop sent it
                drop = drop - {b"vary"}
            else:
                appended.append((b"vary", merged))
            cache_control = cache_control or b""
            if b"private" not in cache_control and b"no-store" not in cache_control:
                drop = drop | {b"cache-control"}
                appended.append((b"cache-control", b"private"))
        return [(key, value) for key, value in headers if key.lower() not in drop] + appended


def _merged_vary(values: list[bytes]) -> bytes | None:
    """The shop's Vary names plus ours (as `merge_vary`); None for `*`."""
    names = [n.strip() for value in values for n in value.decode("latin-1").split(",") if n.strip()]
    if "*" in names:
        return None
    lower = {n.lower() for n in names}
    names.extend(f for f in _VARY_FIELDS if f.lower() not in lower)
    return ", ".join(names).encode("latin-1")
