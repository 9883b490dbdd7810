"""Fail closed on every spelling (DESIGN.md §9), against real shops behind the middleware.

Hypothesis generates spellings of the planned routes (case, runs of slashes, dot segments,
`;matrix` parameters, percent-encoded separators and letters, double encoding, format suffixes,
trailing slashes, Unicode look-alikes, the method in any case) and request bodies of every shape
(key case and Unicode variants, `\\u`-escaped keys, duplicates, containers of the wrong type, deep
nesting, card codes under any name). Targets (support/fail_closed.py): a FastAPI app, Django REST
Framework's DefaultRouter with format suffixes, the reverse proxy in front of a real uvicorn shop
that routes like Express, that lenient shop in process (no router the middleware can ask), and that
lenient shop mounted in a Starlette app (Starlette's router reaches the mount, the canonicaliser
places the rest).

The invariants, for every example:
- the shop's checkout handler never reads the card number, a card code or the street in clear, and
  no handler of the shop ever receives a card number or a card code;
- a logistics partner never sees the card number or the customer's id in an order;
- every answer the middleware gives instead of the shop is problem+json with a `code`, and never
  holds a protected value.

Examples per test: PRIVACY_PROPERTY_EXAMPLES (default 25 here, so the folder stays well under a
minute); the dedicated run: `PRIVACY_PROPERTY_EXAMPLES=10000 .venv/bin/python -m pytest
tests/properties/test_shops_fail_closed.py -q -k <target>` (docs/server-behavior.md, "How this is tested").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from support import fail_closed as fc

EXAMPLES = int(os.environ.get("PRIVACY_PROPERTY_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
TARGETS = ["starlette", "drf", "proxy", "canonical", "mounted"]


@pytest.fixture(scope="module", params=TARGETS)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[fc.Target]:
    with fc.target(request.param, tmp_path_factory.mktemp(request.param)) as target:
        yield target


# --- spellings ------------------------------------------------------------------------------------

FULLWIDTH = {c: chr(ord(c) - 0x61 + 0xFF41) for c in "abcdefghijklmnopqrstuvwxyz"}
LOOKALIKES: dict[str, list[str]] = {
    "k": ["\u212a"],  # KELVIN SIGN: lower() is "k"
    "s": ["\u017f"],  # LATIN SMALL LETTER LONG S: NFKC and casefold give "s"
    "i": ["\u0131", "\u0130"],  # dotless i, dotted capital I
    "c": ["\u0441"],  # Cyrillic
    "e": ["\u0435"],
    "o": ["\u043e"],
    "a": ["\u0430"],
    "p": ["\u0440"],
}
SEPARATORS = ["//", "/./", "/zz/../", "%2F", "%2f", "\\", "%5C", "/%2e/", "/zz/%2e%2e/", "%252F", "/;x/"]
SUFFIXES = ["/", "//", ".json", ".JSON", ".json/", ".api", ".xml", "/.", "%2Ejson", ";x=1", ".json;x=1", "%3Bx=1"]
QUERIES = ["?format=json", "?x=1", "?rest_route=/api/checkout"]
REFS = ["ord_1", "A7", "12", "x-y"]


def quote_utf8(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


CHAR_FORMS = ["upper", "upper", "percent", "double", "fullwidth", "lookalike"]


def spelled_char(c: str, kind: str, lower_hex: bool, pick: int) -> str:
    if kind == "upper":
        return c.upper()
    if kind == "percent":
        return f"%{ord(c):02x}" if lower_hex else f"%{ord(c):02X}"
    if kind == "double":
        return f"%25{ord(c):02X}"
    if kind == "fullwidth":
        return quote_utf8(FULLWIDTH[c.lower()])
    options = LOOKALIKES.get(c.lower())
    return quote_utf8(options[pick % len(options)]) if options else c.upper()


@st.composite
def spelled_path(draw: Any, template: str) -> str:
    """The plain spelling with a few changes (most examples need few to still reach the route)."""
    segments = [list(draw(st.sampled_from(REFS)) if s == "{ref}" else s) for s in template[1:].split("/")]
    separators = ["/"] * len(segments)
    matrix = [""] * len(segments)
    lead, suffix, query = "", "", ""
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, 4, 6]))):
        change = draw(st.sampled_from(["char", "char", "separator", "matrix", "lead", "suffix", "suffix", "query"]))
        if change == "char":
            i = draw(st.integers(0, len(segments) - 1))
            j = draw(st.integers(0, len(segments[i]) - 1))
            if segments[i][j].isalpha() and len(segments[i][j]) == 1:
                kind = draw(st.sampled_from(CHAR_FORMS))
                segments[i][j] = spelled_char(segments[i][j], kind, draw(st.booleans()), draw(st.integers(0, 1)))
        elif change == "separator":
            separators[draw(st.integers(0, len(segments) - 1))] = draw(st.sampled_from(SEPARATORS))
        elif change == "matrix":
            matrix[draw(st.integers(0, len(segments) - 1))] = draw(st.sampled_from([";x=1", ";", ";jsessionid=A1"]))
        elif change == "lead":
            lead = draw(st.sampled_from(["/", "/./", "//"]))
        elif change == "suffix":
            suffix = draw(st.sampled_from(SUFFIXES))
        else:
            query = draw(st.sampled_from(QUERIES))
    out = lead + "".join(sep + "".join(chars) + m for sep, chars, m in zip(separators, segments, matrix, strict=True))
    if not out.startswith("/"):
        out = "/" + out
    return out + suffix + query


def check_answer(answer: fc.Answer) -> None:
    """A refusal by the middleware is problem+json with a code and no protected value."""
    event(f"{'shop' if answer.from_shop else 'middleware'} {answer.status} {answer.problem_code()}")
    for value in (*fc.CARDS, fc.CVV, fc.STREET):
        assert value not in answer.text or answer.from_shop
    if answer.from_shop:
        return
    assert answer.status >= 400 or answer.status in (301, 302, 307, 308), (answer.status, answer.text)
    if answer.status >= 400:
        assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
        problem = answer.problem()
        assert problem.get("code") and problem.get("status") == answer.status, problem


def check_shop(shop: fc.Target) -> None:
    event(f"reached checkout: {bool(shop.records.checkouts)}")
    for body in shop.records.checkouts:
        assert fc.leaks(body) == [], (fc.leaks(body), body[:300])
    for body in shop.records.bodies:
        found = [leak for leak in fc.leaks(body) if "street" not in leak]
        assert found == [], (found, body[:300])


CHECKOUT_BODIES = [
    # With a card the card sentinel refuses the body on any route without a plan for it; the street
    # alone is caught only if the route identity places the spelling on the checkout plan.
    json.dumps({"card": {"number": fc.CARDS[1], "cvv": fc.CVV}, "street": fc.STREET}).encode(),
    json.dumps({"card": {"expiry": "12/30"}, "street": fc.STREET}).encode(),
    json.dumps({"street": fc.STREET}).encode(),
]


@SETTINGS
@given(
    method=st.sampled_from(["POST", "POST", "post", "Post"]),
    path=spelled_path("/api/checkout"),
    body=st.sampled_from(CHECKOUT_BODIES),
)
def test_no_spelling_of_checkout_delivers_protected_data(shop: fc.Target, method: str, path: str, body: bytes) -> None:
    answer = shop.send(method, path, body=body, headers=fc.customer())
    check_answer(answer)
    check_shop(shop)


@SETTINGS
@given(method=st.sampled_from(["GET", "GET", "get", "Get"]), path=spelled_path("/api/orders/{ref}"))
def test_no_spelling_of_an_order_reaches_a_partner_unfiltered(shop: fc.Target, method: str, path: str) -> None:
    answer = shop.send(method, path, headers=fc.carrier())
    if answer.status == 200:
        assert fc.response_leaks(answer.text) == [], (path, answer.text)
    check_answer(answer)


# --- body shapes ----------------------------------------------------------------------------------

KEY_VARIANTS: dict[str, list[str]] = {
    "card": ["card", "Card", "CARD", "\uff43\uff41\uff52\uff44", "car\u0501"],
    "number": ["number", "Number", "NUMBER", "\uff4e\uff55\uff4d\uff42\uff45\uff52", "\u2115umber", "numbe\u0280"],
    "street": ["street", "Street", "STREET", "\u017ftreet", "\ufb06reet", "\uff53\uff54\uff52\uff45\uff45\uff54"],
    "cvv": ["cvv", "CVV", "Cvv", "cvc", "CVC2", "cvv2", "csc", "cid", "security_code", "Security-Code", "\uff43vv"],
}


@st.composite
def key(draw: Any, name: str) -> str:
    variants = KEY_VARIANTS[name]
    spelled = draw(st.sampled_from([variants[0]] * len(variants) + variants))  # the plain key half the time
    how = draw(st.sampled_from(["raw"] * 5 + ["escaped", "escaped-upper", "partly"]))
    if how == "raw":
        return json.dumps(spelled, ensure_ascii=False)
    if how == "escaped":
        return '"' + "".join(f"\\u{ord(c):04x}" for c in spelled) + '"'
    if how == "escaped-upper":
        return '"' + "".join(f"\\u{ord(c):04X}" for c in spelled) + '"'
    return '"' + "".join(f"\\u{ord(c):04x}" if i % 2 else c for i, c in enumerate(spelled)) + '"'


@st.composite
def card_value(draw: Any) -> str:
    card = draw(st.sampled_from(fc.CARDS))
    form = draw(st.sampled_from(["plain", "spaced", "dashed", "int"]))
    if form == "int":
        return card
    if form == "spaced":
        return json.dumps(" ".join(card[i : i + 4] for i in range(0, len(card), 4)))
    if form == "dashed":
        return json.dumps("-".join(card[i : i + 4] for i in range(0, len(card), 4)))
    return json.dumps(card)


def obj(members: list[str]) -> str:
    return "{" + ",".join(members) + "}"


@st.composite
def card_object(draw: Any) -> str:
    members = [draw(key("number")) + ":" + draw(card_value())]
    if draw(st.booleans()):
        members.append(draw(key("cvv")) + ":" + draw(st.sampled_from([json.dumps(fc.CVV), fc.CVV])))
    if draw(st.booleans()):
        members.append('"expiry":"12/30"')
    if draw(st.integers(0, 4)) == 0:  # a duplicate member
        members.append(draw(st.sampled_from(members)))
    order = draw(st.permutations(members))
    return obj(list(order))


@st.composite
def container(draw: Any, inner: str) -> str:
    """The value as declared, or in a container of the wrong type, or nested."""
    shape = draw(st.sampled_from(["as is"] * 4 + ["array", "object", "array of arrays"]))
    if shape == "array":
        return f"[{inner}]"
    if shape == "object":
        return obj(['"value":' + inner])
    if shape == "array of arrays":
        return f"[[{inner}]]"
    return inner


@st.composite
def deep(draw: Any, inner: str) -> str:
    depth = draw(st.sampled_from([1, 2, 31, 32, 33, 200, 1000]))
    opener = draw(st.sampled_from(['{"x":', "["]))
    closer = "}" if opener.startswith("{") else "]"
    return opener * depth + inner + closer * depth


@st.composite
def checkout_document(draw: Any) -> str:
    members: list[str] = []
    card = draw(container(draw(card_object())))
    members.append(draw(key("card")) + ":" + card)
    street = draw(container(json.dumps(fc.STREET)))
    members.append(draw(key("street")) + ":" + street)
    if draw(st.integers(0, 3)) == 0:  # a card code beside the card, not inside it
        members.append(draw(key("cvv")) + ":" + json.dumps(fc.CVV))
    if draw(st.integers(0, 3)) == 0:  # a duplicate member (same or other spelling)
        members.append(draw(st.sampled_from(members)))
    if draw(st.integers(0, 3)) == 0:
        members.append('"note":' + draw(deep(obj([draw(key("card")) + ":" + draw(card_object())]))))
    if draw(st.integers(0, 5)) == 0:
        members.append('"note":' + draw(deep(json.dumps(fc.STREET))))
    document = obj(list(draw(st.permutations(members))))
    if draw(st.integers(0, 6)) == 0:
        document = draw(container(document))
    return document


BODY_PATHS = ["/api/checkout"] * 3 + ["/api/checkout/"] * 3 + ["/api/checkout.json", "/API/Checkout", "/api/reviews/"]


@SETTINGS
@given(path=st.sampled_from(BODY_PATHS), document=checkout_document())
def test_no_body_shape_delivers_protected_data(shop: fc.Target, path: str, document: str) -> None:
    answer = shop.send("POST", path, body=document.encode(), headers=fc.customer())
    check_answer(answer)
    check_shop(shop)
    if not answer.from_shop and answer.status == 422:
        assert "field" in answer.problem(), answer.text


# --- an app with no router the middleware can ask: the canonicaliser places or refuses -------------

ROUTER = {
    "starlette": "starlette",
    "drf": "django",
    "proxy": "canonical",
    "canonical": "canonical",
    "mounted": "starlette",
}


def test_each_shop_is_placed_by_its_own_router_or_the_canonicaliser(shop: fc.Target) -> None:
    assert shop.app.identity.kind == ROUTER[shop.name]


POISON = ["%00", "%0A", "%1F", "%7F"]


@st.composite
def unplaceable(draw: Any) -> str:
    """A spelling of the checkout the canonicaliser cannot place on one route."""
    path = draw(spelled_path("/api/checkout")).partition("?")[0]
    how = draw(st.sampled_from(["control", "above root", "decoded twice"]))
    if how == "control":
        at = draw(st.integers(1, len(path)))
        while path[at - 1] == "%" or (at >= 2 and path[at - 2] == "%"):  # not inside an escape
            at -= 1
        return path[:at] + draw(st.sampled_from(POISON)) + path[at:]
    if how == "above root":
        # `%2e%2e`: httpx would resolve a literal `/..` before sending; a server decodes it to `..`
        return draw(st.sampled_from(["/%2e%2e", "/%2E%2E", "/.%2e"])) * draw(st.integers(1, 3)) + path
    return "/api%252Fcheckout" + draw(st.sampled_from(["", "/", ".json"]))


@SETTINGS
@given(path=unplaceable(), body=st.sampled_from(CHECKOUT_BODIES))
def test_spellings_the_canonicaliser_cannot_place_are_refused(shop: fc.Target, path: str, body: bytes) -> None:
    if ROUTER[shop.name] != "canonical":
        pytest.skip("the app's own router places spellings")
    # httpx resolves dot segments before sending: a poison inside a segment a later `..` removes
    # never reaches the server (`/%00zz/../api/checkout` is sent as `/api/checkout`).
    sent = httpx.URL("http://shop.example/").copy_with(raw_path=path.encode("ascii")).raw_path.decode().upper()
    assume(any(mark in sent for mark in (*POISON, "%2E", "%252F")))
    answer = shop.send("POST", path, body=body, headers=fc.customer())
    check_answer(answer)
    check_shop(shop)
    assert not answer.from_shop and answer.status == 400, (path, answer.status)
    assert answer.problem()["code"] in ("ambiguous_path", "bad_request_target")
    assert shop.records.bodies == []
