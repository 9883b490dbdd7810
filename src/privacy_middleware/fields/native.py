"""The common disclosure case in one native pass over the response's bytes (`_native.c`); also the
card-number prefilter's digit-run scan (`digit_run`), a header scan (`first_values`) and the strict
JSON reader's verdict (`strict_verdict`).

`FieldEngine.disclose` parses nothing and walks dicts; on a list of records most of its time is
Python dict work. For a plan whose rules are all plain key paths and whose transforms for a
recipient are all keep or drop, `_native.disclose` parses, drops, keeps and dumps in one pass and
gives back the body `orjson.dumps` would give after `disclose`, with the figures of its report.
Whatever it does not handle exactly (see `_native.c`) gives None, and the caller takes the
Python path. Without a compiler at install time the extension is absent and `AVAILABLE` is False:
the Python path serves every response, with the same output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# The C extension's interface this module was written against (`NATIVE_INTERFACE` in _native.c; both
# are bumped together whenever a function is added or changes). An extension built from another
# version of _native.c (a stale editable build, a copied .so) is not used: the Python path serves.
INTERFACE = 4


def usable(module: Any) -> bool:
    """Whether an imported `_native` was built from the _native.c this package was written against."""
    return getattr(module, "INTERFACE", None) == INTERFACE


try:
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # built without a compiler: the pure-Python path
    _native = None
if _native is not None and not usable(_native):
    logging.getLogger(__name__).warning(
        "the native extension at %s was built from another version of _native.c (interface %s, this package"
        " needs %s): the pure-Python path serves every request; rebuild it (pip install -e . or reinstall)",
        getattr(_native, "__file__", "?"),
        getattr(_native, "INTERFACE", None),
        INTERFACE,
    )
    _native = None

AVAILABLE = _native is not None

# Entry kinds, as `_native.c` numbers them.
COPY, DROP, KEEP, OBJECT, ITEMS = range(5)


@dataclass(slots=True)
class _Node:
    record: bool = False
    personal: frozenset[str] | None = None  # the keys a personal object may hold, else None
    entries: dict[str, list[Any]] = field(default_factory=dict)  # key -> [kind, arg or child, subject]


def _plain(key: str) -> bool:
    """A key the native pass compares byte for byte: printable ASCII, nothing JSON escapes."""
    return key.isascii() and key.isprintable() and '"' not in key and "\\" not in key


def _descend(node: _Node, path: tuple[str, ...]) -> _Node | None:
    """The node at `path` below `node`, made on the way; None when a key on it has a value rule."""
    for key in path:
        entry = node.entries.get(key)
        if entry is None:
            child = _Node()
            node.entries[key] = [OBJECT, child, False]
            node = child
        elif entry[0] == OBJECT:
            node = entry[1]
        else:
            return None
    return node


def build(plan: Any, transforms: tuple[str, ...], prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> Any:
    """The native program for a `DisclosurePlan` (fields/engine.py, which imports this module) and
    one recipient's transforms, or None when the plan is not the common case (a wildcard or index
    selector, a personal object checked apart, a transform other than keep and drop, a token-shaped
    rule, a record subject that is not a plain key path, records that are not the body or a list at
    a plain key path, GraphQL)."""
    body = plan.body
    if _native is None or body.rules.graphql or plan.complex or plan.personal_rest or plan.subject_path is None:
        return None
    if not all(_plain(needle) for needle in (*prefixes, *suffixes)):
        return None
    record = _Node(record=True)
    if plan.records_list:
        root = _Node()
        parent = _descend(root, plan.records_list[:-1])
        if parent is None:
            return None
        parent.entries[plan.records_list[-1]] = [ITEMS, record, False]
    elif not body.records.steps:
        root = record
    else:
        return None
    for (path, entries), static in zip(plan.groups, plan.unknown_at, strict=True):
        node = _descend(record, path)
        if node is None:
            return None
        node.personal = static
        for key, index in entries:
            transform = transforms[index]
            if key in node.entries or body.fields[index].rule.token_format or transform not in ("keep", "drop"):
                return None
            node.entries[key] = [KEEP, index, False] if transform == "keep" else [DROP, 0, False]
    subject_parent = _descend(record, plan.subject_path[:-1])
    if subject_parent is None:
        return None
    entry = subject_parent.entries.setdefault(plan.subject_path[-1], [COPY, 0, False])
    if entry[0] == OBJECT:
        return None
    entry[2] = True
    # Numbered parents first (the C checks a child's index is above its parent's).
    order = [root]
    for node in order:
        if node.personal is not None and set(node.entries) != node.personal:
            return None  # a key the Python path counts as unknown would be known here
        for key, (kind, child, _subject) in node.entries.items():
            if not _plain(key):
                return None
            if kind in (OBJECT, ITEMS):
                order.append(child)
    index_of = {id(node): i for i, node in enumerate(order)}
    table = tuple(
        (
            node.personal is not None,
            node.record,
            tuple(
                (key.encode(), kind, index_of[id(arg)] if kind in (OBJECT, ITEMS) else arg, subject)
                for key, (kind, arg, subject) in node.entries.items()
            ),
        )
        for node in order
    )
    spec = (table, len(body.fields), tuple(p.encode() for p in prefixes), tuple(s.encode() for s in suffixes))
    return _native.compile(spec)


def disclose(program: Any, raw: bytes) -> tuple[bytes, int, int, bytes, list[str | None], list[str]] | None:
    """(the disclosed body, values kept, keys dropped, per rule whether a kept value was present,
    each record's subject, the subjects of the records with a kept value), or None."""
    assert _native is not None
    result: tuple[bytes, int, int, bytes, list[str | None], list[str]] | None = _native.disclose(program, raw)
    return result


# The card-number prefilter (fields/card_sentinel.py) in one C pass: 1 a run of 13 digits, 2 none and
# the body is not plain ASCII, 0 none. None without the extension: the caller's pure-Python scan
# (`card_sentinel._digit_run_py`, tested to answer the same) is used instead.
digit_run: Callable[[bytes], int] | None = _native.digit_run if _native is not None else None

# The first value of each of several header names in one C pass (asgi/headers.py `first_values`);
# None without the extension. It answers None itself for a header list it does not read exactly.
first_values: Callable[[Any, tuple[bytes, ...]], tuple[bytes | None, ...] | None] | None = (
    _native.first_values if _native is not None else None
)

# The strict reader's verdict in one C pass (asgi/strict_json.py): True when the body certainly has
# no duplicate key and no nesting past the limit; False when the Python checks must decide.
strict_verdict: Callable[[bytes, int], bool] | None = _native.strict_verdict if _native is not None else None

# The response card guard's common case in C (asgi/card_responses.py `ResponseCardGuard.checking`):
# `card_send((json_types, resume), scope, send)` is one response's `send`; whatever it does not decide
# exactly it hands to the Python guard (`resume`), which decides it as without the extension.
card_send: Callable[[tuple[dict[bytes, bool], Callable[..., Any]], Any, Any], Any] | None = (
    _native.card_send if _native is not None else None
)

# `card_send` for a request that certainly carries no body (no Transfer-Encoding; a Content-Length of
# zeros, or none on GET, HEAD, OPTIONS or DELETE), else None: one C call for the route-without-a-plan
# pass-through (middleware.py), which takes the path that reads and checks a body on None.
bodiless_card_send: Callable[[tuple[dict[bytes, bool], Callable[..., Any]], Any, Any], Any] | None = (
    _native.bodiless_card_send if _native is not None else None
)

# The middleware's pass-through in one C call (middleware.py `__call__`): `pass_through((config,
# routes), scope, send)` is `bodiless_card_send`'s `send` when the scope's (method, path) is in `routes`
# (a dict of path -> set of methods), else None.
PassThroughState = tuple[tuple[dict[bytes, bool], Callable[..., Any]], dict[str, set[str]]]
pass_through: Callable[[PassThroughState, Any, Any], Any] | None = _native.pass_through if _native is not None else None


class _ServeFront:
    """`Front` where the extension is not there: without it no request takes the pass-through, so
    every call is `serve`'s (`arm` takes no state)."""

    def arm(self, state: PassThroughState | None, app: Callable[..., Any], serve: Callable[..., Any]) -> None:
        if state is not None:
            raise TypeError("arm: no pass-through without the C extension")
        self._front_serve = serve

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._front_serve(*args, **kwargs)


# The middleware's base class (middleware.py): its instances are called through `Front`'s call. In C,
# after `arm(state, app, serve)`, a request `pass_through(state, scope, send)` answers with a send goes
# to `app(scope, receive, that send)` and every other call to `serve`, with no Python frame of its own.
if TYPE_CHECKING:
    Front = _ServeFront
else:
    Front = _native.Front if _native is not None else _ServeFront

# The awaitable that sends a held start and its body in turn (`chain(send, first, second)`); the C guard
# makes it itself, and tests await it alone.
chain: Callable[..., Any] | None = _native.chain if _native is not None else None
