"""One canonicaliser for request paths: every spelling a shop's router may treat as a planned route.

Servers and frameworks disagree on what a path means. Express, ASP.NET Core and Spring match case-
insensitively or normalise; servlet containers drop `;matrix` parameters; IIS reads `\\` as `/`;
Django REST Framework adds `.json` (any `.<format>`) aliases to every route; some stacks decode a
path twice. The middleware matches its plans on the path the wrapped app will really dispatch to
where it can ask the app's router (routing/identity.py); for any other app, and for the reverse
proxy, this module maps a spelling onto a planned route:

- case is ignored (Unicode case folding and NFKC too: full-width letters, ligatures, the Kelvin
  sign), runs of slashes collapse, a trailing slash is ignored;
- `.` and `..` segments are resolved; `\\` counts as `/`; `;params` are dropped from each segment;
- a `.<format>` suffix on the last segment is dropped when the path without it is planned;
- WordPress's `?rest_route=/x` counts as `/wp-json/x`.

A spelling it cannot place is refused (400 `ambiguous_path`): control characters, `..` above the
root, and a path that means another planned route once percent-decoded a second time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote

from ..errors import PrivacyError
from ..policy.load import PATH_PARAM_RE

T = TypeVar("T")

# A path in this form is its own canonical spelling: nothing here can alias it.
_PLAIN = re.compile(r"(?:/[a-z0-9_\-~]+)*/?")
_FORMAT_SUFFIX = re.compile(r"\.[A-Za-z0-9]+$")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def ambiguous_path(reason: str) -> PrivacyError:
    return PrivacyError(
        "ambiguous_path",
        f"The request path cannot be placed on one route ({reason}); use the route's plain spelling.",
        400,
    )


def is_plain(path: str) -> bool:
    """True when no rule below can change the path (the fast path for ordinary requests)."""
    return _PLAIN.fullmatch(path) is not None


def normalise(path: str) -> str:
    """Slashes, dot segments, backslashes and matrix parameters resolved; case kept.

    Raises 400 `ambiguous_path` for control characters or `..` above the root.
    """
    if _CONTROL.search(path):
        raise ambiguous_path("control character")
    segments: list[str] = []
    for raw in path.replace("\\", "/").split("/"):
        segment = raw.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise ambiguous_path("'..' above the root")
            segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def candidates(path: str, query: bytes = b"") -> list[str]:
    """Canonical spellings to try, most literal first (without and with the format suffix)."""
    out: list[str] = []
    bases = [path]
    if query and b"rest_route=" in query:
        bases += [
            "/wp-json" + value
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            if key == "rest_route" and value.startswith("/")
        ]
    for base in bases:
        canonical = normalise(base)
        out.append(canonical)
        stripped = _FORMAT_SUFFIX.sub("", canonical)
        if stripped != canonical and stripped not in ("", "/"):
            out.append(stripped)
    return out


def _template_regex(template: str) -> str:
    pattern, last = "", 0
    for match in PATH_PARAM_RE.finditer(template):
        pattern += re.escape(template[last : match.start()])
        greedy = match.group(0).endswith(":path}")
        pattern += f"(?P<{match.group(1)}>{'.+' if greedy else '[^/]+'})"
        last = match.end()
    return pattern + re.escape(template[last:])


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    regex: re.Pattern[str]
    literal: int
    value: T


class AliasTable(Generic[T]):
    """Planned templates matched case-insensitively against canonical spellings."""

    def __init__(self, entries: Iterable[tuple[str, str, T]]) -> None:
        by_method: dict[str, list[_Entry[T]]] = {}
        for method, template, value in entries:
            regex = re.compile(_template_regex(normalise(template)), re.IGNORECASE)
            literal = len(PATH_PARAM_RE.sub("", template))
            by_method.setdefault(method, []).append(_Entry(regex, literal, value))
        for items in by_method.values():
            items.sort(key=lambda entry: -entry.literal)  # `/orders/export` before `/orders/{id}`
        self._by_method = by_method

    def match_one(self, method: str, canonical: str) -> tuple[T, dict[str, str]] | None:
        for entry in self._by_method.get(method, ()):
            found = entry.regex.fullmatch(canonical)
            if found is not None:
                return entry.value, found.groupdict()
        return None

    def place(self, method: str, path: str, query: bytes = b"") -> tuple[T, dict[str, str]] | None:
        """The planned route a spelling reaches, None when none does; 400 when it cannot be placed."""
        if method not in self._by_method:
            return None
        found = self._lookup(method, path, query)
        if _PERCENT.search(path):
            # Some stacks decode twice: both readings must agree on the plan.
            twice = self._lookup(method, unquote(path), query)
            if (found is None) != (twice is None) or (
                found is not None and twice is not None and found[0] is not twice[0]
            ):
                raise ambiguous_path("encoded separator or double encoding")
        return found

    def _lookup(self, method: str, path: str, query: bytes) -> tuple[T, dict[str, str]] | None:
        found = self._first(method, candidates(path, query))
        if found is None and not path.isascii():
            # A router that normalises Unicode reaches `/api/checkout` through full-width letters
            # or ligatures (NFKC), or through the Kelvin sign or long s (case folding).
            found = self._first(method, candidates(unicodedata.normalize("NFKC", path).casefold(), query))
        return found

    def _first(self, method: str, spellings: list[str]) -> tuple[T, dict[str, str]] | None:
        # The most literal template wins across spellings: `/orders/export.json` is `/orders/export`
        # without its suffix before it is `/orders/{id}` with id "export.json".
        for entry in self._by_method.get(method, ()):
            for spelling in spellings:
                found = entry.regex.fullmatch(spelling)
                if found is not None:
                    return entry.value, found.groupdict()
        return None
