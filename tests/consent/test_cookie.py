import base64
import secrets

import orjson
import pytest
from prometheus_client import CollectorRegistry

from privacy_middleware.consent.cookie import ConsentCookieCodec
from privacy_middleware.store.consent_records import Holder

SECRET = secrets.token_bytes(32)


class Clock:
    def __init__(self, now: float = 1_770_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def codec(registry: CollectorRegistry, clock: Clock, secret: bytes = SECRET, **kw: object) -> ConsentCookieCodec:
    return ConsentCookieCodec(secret, registry=registry, clock=clock, max_age=3600, **kw)  # type: ignore[arg-type]


def rejected(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("privacy_consent_cookie_rejected_total", {"reason": reason})
    return value or 0.0


def test_cookie_round_trips_what_it_was_given() -> None:
    registry, clock = CollectorRegistry(), Clock()
    c = codec(registry, clock)
    value = c.encode(Holder.visitor("vAbc"), {"analytics"}, {"marketing"}, "2026-03")
    decoded = c.decode(value)
    assert decoded is not None
    assert decoded.holder == Holder.visitor("vAbc")
    assert decoded.granted == {"analytics"} and decoded.denied == {"marketing"}
    assert decoded.policy_version == "2026-03"
    assert decoded.expires_at - decoded.issued_at == 3600
    assert len(value) < 300


def test_expired_cookie_is_ignored_and_counted() -> None:
    registry, clock = CollectorRegistry(), Clock()
    c = codec(registry, clock)
    value = c.encode(Holder.subject("s1"), {"analytics"}, set(), "v")
    clock.now += 3600
    assert c.decode(value) is None
    assert rejected(registry, "expired") == 1


def test_forged_cookies_are_ignored_and_counted() -> None:
    registry, clock = CollectorRegistry(), Clock()
    c = codec(registry, clock)
    value = c.encode(Holder.visitor("v1"), set(), {"marketing"}, "v")
    prefix, payload, signature = value.split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["g"] = ["marketing"]
    data["d"] = []
    tampered = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    assert c.decode(f"{prefix}.{tampered}.{signature}") is None
    other = codec(CollectorRegistry(), clock, secrets.token_bytes(32))
    assert c.decode(other.encode(Holder.visitor("v1"), {"marketing"}, set(), "v")) is None
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert c.decode(f"{prefix}.{payload}.{flipped}") is None
    assert rejected(registry, "forged") == 3


@pytest.mark.parametrize(
    "value", ["garbage", "c1.", "c1..", "c1.a.b.c", "c2.abc.def", "c1.abc.@@@", "c1.abc", "c1." + "A" * 5000]
)
def test_malformed_cookies_are_ignored_and_counted(value: str) -> None:
    registry = CollectorRegistry()
    assert codec(registry, Clock()).decode(value) is None
    assert rejected(registry, "malformed") + rejected(registry, "forged") == 1


def test_absent_cookie_is_not_counted() -> None:
    registry = CollectorRegistry()
    c = codec(registry, Clock())
    assert c.decode(None) is None
    assert c.decode("") is None
    assert registry.get_sample_value("privacy_consent_cookie_rejected_total", {"reason": "malformed"}) is None


def test_old_secret_still_verifies_after_rotation() -> None:
    clock = Clock()
    old = codec(CollectorRegistry(), clock)
    value = old.encode(Holder.visitor("v1"), {"analytics"}, set(), "v")
    rotated = codec(CollectorRegistry(), clock, secrets.token_bytes(32), old_secrets=(SECRET,))
    assert rotated.decode(value) is not None


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        ConsentCookieCodec(b"too short")


def test_set_cookie_header_is_locked_down() -> None:
    c = codec(CollectorRegistry(), Clock())
    header = c.set_cookie_header("c1.x.y")
    assert header.startswith("pm_consent=c1.x.y;")
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=3600"):
        assert attribute in header
