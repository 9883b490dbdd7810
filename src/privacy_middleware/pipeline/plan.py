"""Route plans: the ordered steps a capability contributes to one route.

A step is a small object with up to four hooks; the middleware calls them in the order of
`pipeline.order`. Hooks raise `PrivacyError` to refuse. Steps are built once at start-up (one per
route that needs it) by step factories, so the request path does no policy lookups. Steps pass facts
to each other through `ctx.facts` (`pipeline.facts.RequestFacts`), never through string keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..asgi.headers import ResponseEdits
from ..context import RequestContext
from ..fields.lazy import Skeleton, request_skeleton
from ..policy.compile import RouteSpec
from ..types import Scope


@dataclass(slots=True)
class Exchange:
    """One request/response as the steps see it."""

    scope: Scope
    ctx: RequestContext
    spec: RouteSpec
    request_body: bytes = b""
    request_json: Any = None
    request_has_json: bool = False
    request_changed: bool = False
    # The bodies are partly decoded (fields/lazy.py): raw subtrees off the policy's paths.
    request_lazy: bool = False
    # Request places (id of the container, key) a step filled with a value of its own (a tracking
    # pseudonym): the card check after the steps leaves them alone, as it does the route's field rules.
    # (A shared empty default: no set is made for the requests of routes without such a step.)
    request_replaced: frozenset[tuple[int, str | int]] = frozenset()
    status: int = 0
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    response_json: Any = None
    response_has_json: bool = False
    response_changed: bool = False
    # Extra response headers steps want set (e.g. consent hints), and Set-Cookie lines to add.
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Respond(Exception):
    """A step answers the request itself (e.g. a tracking event dropped without consent: 204)."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers or []
        self.body = body


class Step:
    """Base class: override the hooks you need. Flags tell the middleware what to buffer."""

    # The name of the step in `pipeline.order` (set when the plan is built; traces and reports use it).
    name: str = ""
    needs_request_json: bool = False
    # The raw request body, whatever its type (login attempts are audited even when not JSON).
    needs_request_body: bool = False
    needs_response_json: bool = False
    # Read a JSON response when there is one, without failing closed when there is not.
    peeks_response_json: bool = False
    needs_response_start: bool = False
    # The step reads a parsed body only along its route's declared selectors (the request body
    # rules, free text, birth date; the response body rules), so a partly decoded body serves it.
    declared_paths_only: bool = False
    # The step's `on_response` does nothing when no parsed body is there (`ex.response_has_json` false):
    # once its `on_response_bytes` gave the body, the plan does not call it.
    reads_parsed_response_only: bool = False

    async def before(self, ex: Exchange) -> None:
        """Before the body is read (reject early: lockout, consent)."""

    async def on_request(self, ex: Exchange) -> None:
        """With `ex.request_json` parsed (only if needs_request_json)."""

    async def on_response(self, ex: Exchange) -> None:
        """With status and headers (and `ex.response_json` if needs_response_json)."""

    async def on_response_bytes(self, ex: Exchange, body: bytes) -> bytes | None:
        """The JSON response rewritten from its bytes, or None to have it parsed for `on_response`.
        Offered (`RoutePlan.response_bytes`) only to a step that is its plan's one reader of the
        response body; after it gave bytes, the step's `on_response` sees no parsed body."""
        return None

    async def after(self, ex: Exchange) -> None:
        """After the response was sent: audit and counters. Never raises to the client."""


StepFactory = Callable[[RouteSpec], Step | None]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    spec: RouteSpec
    steps: tuple[Step, ...]
    needs_request_json: bool
    needs_request_body: bool
    needs_response_json: bool
    peeks_response_json: bool
    needs_response_start: bool
    has_before: bool
    label: str = ""  # "METHOD /template", for metrics and logs
    # Set when every step that reads the request body reads only declared paths (fields/lazy.py).
    # Responses are parsed in full (measured on order lists, a level-by-level decode costs more than
    # orjson's full parse), unless `response_bytes` rewrites them in one native pass (bench/README.md).
    lazy_request: Skeleton | None = None
    # The response header edits that do not depend on the request (Vary, Cache-Control, digests).
    response_edits: ResponseEdits = field(init=False, repr=False, compare=False)
    # Per hook, the steps that have one (the others' inherited no-op is not awaited per request).
    befores: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    on_requests: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    on_responses: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    afters: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    # The plan's one reader of the response body when it can rewrite the bytes itself (`on_response_bytes`).
    response_bytes: Step | None = field(init=False, repr=False, compare=False)
    # `on_responses` once `response_bytes` gave the body (without it, when its `on_response` would
    # do nothing then).
    on_responses_after_bytes: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    # (method, path template): the route as identity providers are told it
    route: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "route", (self.spec.method, self.spec.template))
        object.__setattr__(self, "response_edits", ResponseEdits(self.needs_response_json))
        readers = [s for s in self.steps if s.needs_response_json or s.peeks_response_json]
        bytes_step = (
            readers[0]
            if len(readers) == 1 and type(readers[0]).on_response_bytes is not Step.on_response_bytes
            else None
        )
        object.__setattr__(self, "response_bytes", bytes_step)
        for hook, kept in (
            ("before", "befores"),
            ("on_request", "on_requests"),
            ("on_response", "on_responses"),
            ("after", "afters"),
        ):
            object.__setattr__(self, kept, _with_hook(self.steps, hook))
        object.__setattr__(
            self,
            "on_responses_after_bytes",
            tuple(step for step in self.on_responses if not (step is bytes_step and step.reads_parsed_response_only)),
        )

    @classmethod
    def build(cls, spec: RouteSpec, factories: list[StepFactory]) -> RoutePlan | None:
        steps = tuple(step for factory in factories if (step := factory(spec)) is not None)
        if not steps:
            return None
        readers = [s for s in steps if s.needs_request_json or s.needs_request_body]
        lazy_request = (
            request_skeleton(spec)
            if spec.request is not None and readers and all(s.declared_paths_only for s in readers)
            else None
        )
        return cls(
            spec=spec,
            steps=steps,
            needs_request_json=any(s.needs_request_json for s in steps),
            needs_request_body=any(s.needs_request_body or s.needs_request_json for s in steps),
            needs_response_json=any(s.needs_response_json for s in steps),
            peeks_response_json=any(s.peeks_response_json for s in steps),
            needs_response_start=any(
                s.needs_response_start or s.needs_response_json or s.peeks_response_json for s in steps
            ),
            has_before=any(type(s).before is not Step.before for s in steps),
            label=f"{spec.method} {spec.template}",
            lazy_request=lazy_request,
        )


def _with_hook(steps: tuple[Step, ...], hook: str) -> tuple[Step, ...]:
    """The steps whose `hook` is their own (a class's override or one set on the instance), in order."""
    inherited = getattr(Step, hook)
    return tuple(step for step in steps if getattr(getattr(step, hook), "__func__", None) is not inherited)
