"""JWT verification: algorithm allow-list, issuer, audience, expiry, JWKS with rotation, caching."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytest_httpx import HTTPXMock

from privacy_middleware.errors import ConfigError, PrivacyError
from privacy_middleware.identity import TokenVerifier
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.settings import JwtSettings

pytestmark = pytest.mark.anyio

POLICY = validate_policy(
    {
        "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
        "categories": {"user.name": {}},
        "purposes": {"delivery": {"legal_basis": "contract"}, "payment": {"legal_basis": "contract"}},
        "recipients": {"logistics": {"purposes": ["delivery"]}, "support": {"purposes": ["delivery"]}},
        "identity": {"scope_recipients": {"staff": "support"}},
    }
)
SECRET = "a-test-secret-of-at-least-sixty-four-bytes-for-hs512-0123456789ab"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "cus_1", "iat": now, "exp": now + 60, "iss": "shop", "aud": "api", **extra}


def verifier(**settings: Any) -> TokenVerifier:
    base = {"issuer": "shop", "audience": "api"}
    v = TokenVerifier(JwtSettings(**{**base, **settings}), POLICY.identity)
    v.bind_policy(POLICY)
    return v


def bearer(token: str) -> bytes:
    return f"Bearer {token}".encode()


async def test_customer_token_becomes_subject() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    principal = await v.authenticate(bearer(jwt.encode(claims(), SECRET, algorithm="HS256")))
    assert principal is not None
    assert principal.subject == "cus_1" and principal.recipient == "customer"


async def test_partner_token_carries_recipient_and_purpose() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    token = jwt.encode(claims(sub="logistics-co", recipient="logistics", purpose="delivery"), SECRET, algorithm="HS256")
    principal = await v.authenticate(bearer(token))
    assert principal is not None and principal.recipient == "logistics" and principal.subject is None


async def test_staff_scope_maps_to_recipient() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    principal = await v.authenticate(
        bearer(jwt.encode(claims(sub="st1", scope="staff orders:read"), SECRET, algorithm="HS256"))
    )
    assert principal is not None and principal.recipient == "support" and principal.has_scope("orders:read")


@pytest.mark.parametrize(
    ("token_claims", "code", "status"),
    [
        ({"recipient": "stranger"}, "unknown_recipient", 403),
        ({"recipient": "logistics", "purpose": "payment"}, "purpose_not_allowed", 403),
        ({"aud": "other-api"}, "invalid_token", 401),
        ({"iss": "evil"}, "invalid_token", 401),
        ({"exp": int(time.time()) - 3600}, "invalid_token", 401),
        ({"nbf": int(time.time()) + 3600}, "invalid_token", 401),
    ],
)
async def test_bad_claims_are_refused(token_claims: dict[str, Any], code: str, status: int) -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    with pytest.raises(PrivacyError) as info:
        await v.authenticate(bearer(jwt.encode(claims(**token_claims), SECRET, algorithm="HS256")))
    assert (info.value.code, info.value.status) == (code, status)


async def test_missing_token_is_anonymous_and_other_schemes_are_ignored() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    assert await v.authenticate(None) is None
    assert await v.authenticate(b"Basic dXNlcjpwdw==") is None


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
async def test_malformed_tokens_are_401(token: str) -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    with pytest.raises(PrivacyError) as info:
        await v.authenticate(b"Bearer " + token.encode())
    assert info.value.status == 401


async def test_alg_none_and_wrong_alg_are_refused() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(PrivacyError):
        await v.authenticate(bearer(unsigned))
    with pytest.raises(PrivacyError):
        await v.authenticate(bearer(jwt.encode(claims(), SECRET, algorithm="HS512")))


async def test_public_key_cannot_be_used_as_hmac_secret() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    v = verifier(public_key=pem.decode(), algorithms=["EdDSA", "HS256"])
    assert v.algorithms == ["EdDSA"]
    # An attacker signs HS256 with the (public) PEM as the HMAC secret: the classic confusion attack.
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(orjson.dumps(claims())).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(PrivacyError):
        await v.authenticate(bearer((header + b"." + payload + b"." + signature).decode()))
    good = await v.authenticate(bearer(jwt.encode(claims(), key, algorithm="EdDSA")))
    assert good is not None


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_asymmetric_algorithms(alg: str) -> None:
    key: Any = {
        "RS256": lambda: rsa.generate_private_key(65537, 2048),
        "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": Ed25519PrivateKey.generate,
    }[alg]()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    v = verifier(public_key=pem.decode(), algorithms=[alg])
    assert await v.authenticate(bearer(jwt.encode(claims(), key, algorithm=alg))) is not None


def test_secret_with_only_asymmetric_algorithms_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        verifier(secret=SECRET, algorithms=["RS256"])


def jwk_for(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


async def test_jwks_is_fetched_cached_and_refetched_on_rotation(httpx_mock: HTTPXMock) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    url = "https://issuer.example/.well-known/jwks.json"
    httpx_mock.add_response(url=url, json={"keys": [jwk_for(old, "k1")]})
    async with httpx.AsyncClient() as http:
        v = TokenVerifier(
            JwtSettings(issuer="shop", audience="api", jwks_url=url, algorithms=["EdDSA"]),
            POLICY.identity,
            http=http,
        )
        v.bind_policy(POLICY)
        for n in range(3):
            token = jwt.encode(claims(jti=str(n)), old, algorithm="EdDSA", headers={"kid": "k1"})
            assert await v.authenticate(bearer(token)) is not None
        assert len(httpx_mock.get_requests()) == 1
        # The issuer rotates: a token with a new kid makes one refetch (after the minimum interval).
        httpx_mock.add_response(url=url, json={"keys": [jwk_for(old, "k1"), jwk_for(new, "k2")]})
        assert v._jwks is not None
        v._jwks._fetched_at -= 60
        token = jwt.encode(claims(), new, algorithm="EdDSA", headers={"kid": "k2"})
        assert await v.authenticate(bearer(token)) is not None
        assert len(httpx_mock.get_requests()) == 2
        # An unknown kid right after a refetch does not hammer the issuer.
        stranger = Ed25519PrivateKey.generate()
        with pytest.raises(PrivacyError):
            await v.authenticate(bearer(jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": "k9"})))
        assert len(httpx_mock.get_requests()) == 2


async def test_jwks_unreachable_is_503(httpx_mock: HTTPXMock) -> None:
    url = "https://issuer.example/jwks"
    httpx_mock.add_exception(httpx.ConnectError("down"), url=url)
    key = Ed25519PrivateKey.generate()
    async with httpx.AsyncClient() as http:
        v = TokenVerifier(
            JwtSettings(audience="api", issuer="shop", jwks_url=url, algorithms=["EdDSA"]),
            POLICY.identity,
            http=http,
        )
        with pytest.raises(PrivacyError) as info:
            await v.authenticate(bearer(jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "k"})))
    assert info.value.status == 503


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per call of jwt.decode (the verifier's real work) made while the test runs."""
    calls: list[None] = []
    real = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


async def test_verified_tokens_are_cached_until_expiry(decodes: list[None]) -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    for _ in range(5):
        await v.authenticate(bearer(token))
    assert len(decodes) == 1


async def test_a_token_without_sub_is_named_by_the_configured_subject_claim() -> None:
    """Saleor's tokens carry `user_id` instead of `sub`."""
    policy = validate_policy(
        {
            "policy": {"name": "t", "version": "1", "effective_date": "2026-01-01"},
            "categories": {"user.name": {}},
            "purposes": {"delivery": {"legal_basis": "contract"}},
            "identity": {"subject_claim": "user_id"},
        }
    )
    v = TokenVerifier(JwtSettings(issuer="shop", audience="api", secret=SECRET, algorithms=["HS256"]), policy.identity)
    v.bind_policy(policy)
    token_claims = claims(user_id="VXNlcjoy")
    del token_claims["sub"]
    principal = await v.authenticate(bearer(jwt.encode(token_claims, SECRET, algorithm="HS256")))
    assert principal is not None and principal.subject == "VXNlcjoy" and principal.id == "VXNlcjoy"


async def test_every_missing_claim_is_named_in_one_answer() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    token = jwt.encode({"iss": "shop", "aud": "api", "scope": "x"}, SECRET, algorithm="HS256")
    with pytest.raises(PrivacyError) as refused:
        await v.authenticate(bearer(token))
    assert refused.value.status == 401
    assert refused.value.extra == {"missing_claims": ["exp", "iat", "sub"]}
    assert "'exp', 'iat', 'sub'" in refused.value.message


async def test_the_same_authorization_value_is_named_from_the_cache_until_the_token_expires() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"], leeway_seconds=0)
    now = int(time.time())
    header = bearer(jwt.encode(claims(iat=now, exp=now + 2), SECRET, algorithm="HS256"))
    first = await v.authenticate(header)
    assert first is not None and await v.authenticate(header) is first
    time.sleep(max(0.0, now + 2.2 - time.time()))
    with pytest.raises(PrivacyError) as refused:
        await v.authenticate(header)
    assert refused.value.status == 401


async def test_a_new_policy_renames_cached_callers() -> None:
    v = verifier(secret=SECRET, algorithms=["HS256"])
    header = bearer(jwt.encode(claims(sub="svc", recipient="logistics"), SECRET, algorithm="HS256"))
    assert (await v.authenticate(header)).recipient == "logistics"  # type: ignore[union-attr]
    narrower = POLICY.model_copy(update={"recipients": {"support": POLICY.recipients["support"]}})
    v.bind_policy(narrower)
    with pytest.raises(PrivacyError) as refused:
        await v.authenticate(header)
    assert refused.value.code == "unknown_recipient"


async def test_the_identity_chain_names_a_verified_authorization_value_from_the_cache_until_it_expires(
    decodes: list[None],
) -> None:
    from privacy_middleware.identity.chain import IdentityChain, JwtProvider

    v = verifier(secret=SECRET, algorithms=["HS256"], leeway_seconds=0)
    chain = IdentityChain([JwtProvider(v, leave_opaque=False)])
    now = int(time.time())
    scope = {"type": "http", "headers": [(b"authorization", bearer(jwt.encode(claims(iat=now, exp=now + 1), SECRET)))]}
    first = await chain.authenticate(scope)
    assert first is not None and await chain.authenticate(scope) is first
    assert len(decodes) == 1  # the second request named the caller without decoding, hashing or mapping claims
    time.sleep(max(0.0, now + 1.2 - time.time()))
    with pytest.raises(PrivacyError) as refused:
        await chain.authenticate(scope)
    assert refused.value.status == 401 and len(decodes) == 2
