"""Raw ASGI header helpers that compare names case-insensitively (Django sends `Content-Type`)."""

from __future__ import annotations

from collections.abc import Iterable

RawHeaders = list[tuple[bytes, bytes]]


def get_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """First value of a header; `name` must be lower-case."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def get_all(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def without(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> RawHeaders:
    """The headers minus every occurrence of the given lower-case names."""
    drop = set(names)
    return [(key, value) for key, value in headers if key.lower() not in drop]


def replace(headers: Iterable[tuple[bytes, bytes]], name: bytes, value: bytes) -> RawHeaders:
    return [*without(headers, name), (name, value)]


def media_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    value = get_header(headers, b"content-type")
    if not value:
        return ""
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


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
