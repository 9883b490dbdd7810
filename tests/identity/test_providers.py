"""Identity providers beyond JWT, through the middleware: token introspection (RFC 7662), the shop's
session "who am I" endpoint (in-process and behind the proxy), callables, and the order they run in."""

from __future__ import annotations

import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pytest_httpx import HTTPXMock
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from privacy_middleware.context import Principal
from privacy_middleware.errors import ConfigError
from privacy_middleware.middleware import PrivacyMiddleware
from privacy_middleware.policy.load import validate_policy
from privacy_middleware.runtime import Runtime
from privacy_middleware.serve import build_proxy_app
from privacy_middleware.settings import Settings
from support.servers import uvicorn_in_thread

pytestmark = pytest.mark.anyio

SECRET = "identity-providers-test-secret-0123456789"
INTROSPECT = "https://auth.example/oauth/introspect"
POLICY_TOML = """
[policy]
name = "t"
version = "1"
effective_date = "2026-01-01"

[categories."user.name"]
[categories."user.contact.email"]
[categories."user.id"]

[purposes.support]
legal_basis = "contract"

[recipients.support]
purposes = ["support"]
sees = { "user.name" = "keep" }

[identity]
scope_recipients = { staff = "support" }

[audit]
account_routes = [{ method = "POST", path = "/api/logout", event = "logout" }]

[[routes]]
method = "GET"
path = "/people/{pid}"
[routes.response]
subject = "id"
personal_objects = ["$"]
fields = [
  { select = "id", category = "user.id" },
  { select = "name", category = "user.name" },
  { select = "email", category = "user.contact.email" },
]
"""
POLICY = validate_policy(tomllib.loads(POLICY_TOML))


class Shop:
    """A shop with server-side sessions and a who-am-I endpoint, counting how often it is asked."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.whoami_calls = 0
        self.whoami_cookies: list[str] = []
        self.broken = False

    async def me(self, request: Request) -> Response:
        self.whoami_calls += 1
        self.whoami_cookies.append(request.headers.get("cookie", ""))
        if self.broken:
            return Response("upstream trouble", status_code=502)
        user = self.sessions.get(request.cookies.get("sessionid", ""))
        if user is None:
            return JSONResponse({"detail": "not signed in"}, status_code=401)
        return JSONResponse(user)

    async def logout(self, request: Request) -> Response:
        self.sessions.pop(request.cookies.get("sessionid", ""), None)
        return Response(status_code=204)

    async def person(self, request: Request) -> Response:
        pid = request.path_params["pid"]
        return JSONResponse({"id": pid, "name": "Ada Lovelace", "email": "ada@example.com"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/me", self.me),
                Route("/api/logout", self.logout, methods=["POST"]),
                Route("/people/{pid}", self.person),
            ]
        )


def settings_for(tmp_path: Path, **identity: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        data_dir=tmp_path,
        jwt={"secret": SECRET, "algorithms": ["HS256"]},
        identity=identity,
        audit={"retention_interval_seconds": 0},
    )


@pytest.fixture
def shop() -> Shop:
    return Shop()


async def client_for(shop: Shop, settings: Settings, http: httpx.AsyncClient | None = None) -> Any:
    runtime = Runtime(settings, policy=POLICY, http=http)
    app = PrivacyMiddleware(shop.app(), runtime=runtime)
    return app, runtime


@pytest.fixture
async def session_client(shop: Shop, tmp_path: Path, asgi_lifespan: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(tmp_path, providers=["jwt", "session"], session_whoami_url="/api/me")
    app, _ = await client_for(shop, settings)
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        yield client


async def test_a_session_cookie_makes_the_caller_the_customer_and_is_cached(
    session_client: httpx.AsyncClient, shop: Shop
) -> None:
    shop.sessions["s-ada"] = {"id": "cus_1"}
    cookies = {"cookie": "sessionid=s-ada; theme=dark"}
    own = await session_client.get("/people/cus_1", headers=cookies)
    assert own.json() == {"id": "cus_1", "name": "Ada Lovelace", "email": "ada@example.com"}
    other = await session_client.get("/people/cus_2", headers=cookies)
    assert "email" not in other.json()
    assert shop.whoami_calls == 1  # the second request was answered from the cache
    assert shop.whoami_cookies == ["sessionid=s-ada"]  # only the session cookie reaches the shop


async def test_no_session_or_a_signed_out_one_is_anonymous(session_client: httpx.AsyncClient, shop: Shop) -> None:
    anonymous = await session_client.get("/people/cus_1")
    assert "email" not in anonymous.json() and shop.whoami_calls == 0
    unknown = await session_client.get("/people/cus_1", headers={"cookie": "sessionid=nobody"})
    assert "email" not in unknown.json() and shop.whoami_calls == 1


async def test_logout_route_drops_the_cached_session(session_client: httpx.AsyncClient, shop: Shop) -> None:
    shop.sessions["s-ada"] = {"id": "cus_1"}
    cookies = {"cookie": "sessionid=s-ada"}
    assert "email" in (await session_client.get("/people/cus_1", headers=cookies)).json()
    assert (await session_client.post("/api/logout", headers=cookies)).status_code == 204
    after = await session_client.get("/people/cus_1", headers=cookies)
    assert "email" not in after.json()


async def test_staff_session_scopes_map_to_a_recipient(session_client: httpx.AsyncClient, shop: Shop) -> None:
    shop.sessions["s-staff"] = {"id": "staff_9", "scopes": ["staff"]}
    seen = (await session_client.get("/people/cus_1", headers={"cookie": "sessionid=s-staff"})).json()
    assert seen == {"name": "Ada Lovelace"}


async def test_a_shop_that_cannot_say_who_is_calling_gives_503_never_anonymous(
    session_client: httpx.AsyncClient, shop: Shop
) -> None:
    shop.broken = True
    response = await session_client.get("/people/cus_1", headers={"cookie": "sessionid=s-ada"})
    assert response.status_code == 503
    assert response.json()["code"] == "identity_unavailable"
    assert "s-ada" not in response.text


async def test_the_session_is_resolved_through_the_proxy_too(shop: Shop, tmp_path: Path, asgi_lifespan: Any) -> None:
    shop.sessions["s-ada"] = {"id": "cus_1"}
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(POLICY_TOML)
    settings = settings_for(tmp_path, providers=["session"], session_whoami_url="/api/me")
    settings.policy_file = policy_file
    with uvicorn_in_thread(shop.app()) as upstream:
        app = build_proxy_app(upstream, settings)
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
        ):
            own = await client.get("/people/cus_1", headers={"cookie": "sessionid=s-ada"})
            anonymous = await client.get("/people/cus_1", headers={"cookie": "sessionid=other"})
    assert own.json()["email"] == "ada@example.com"
    assert "email" not in anonymous.json()
    assert shop.whoami_calls == 2


def active(sub: str = "cus_1", **extra: Any) -> dict[str, Any]:
    return {"active": True, "sub": sub, "exp": int(time.time()) + 600, "scope": "orders:read", **extra}


@pytest.fixture
async def introspecting(tmp_path: Path, shop: Shop, asgi_lifespan: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for(
        tmp_path,
        providers=["jwt", "introspection"],
        introspection_url=INTROSPECT,
        introspection_client_id="mw",
        introspection_client_secret="s3cret",
    )
    async with httpx.AsyncClient() as http:
        app, _ = await client_for(shop, settings, http=http)
        async with (
            asgi_lifespan(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
        ):
            yield client


async def test_opaque_tokens_are_introspected_once_and_cached(
    introspecting: httpx.AsyncClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=INTROSPECT, method="POST", json=active())
    headers = {"authorization": "Bearer opaque-token-abc"}
    for _ in range(3):
        response = await introspecting.get("/people/cus_1", headers=headers)
        assert response.json()["email"] == "ada@example.com"
    [call] = httpx_mock.get_requests()
    assert call.headers["authorization"].startswith("Basic ")
    assert b"token=opaque-token-abc" in call.content and b"token_type_hint=access_token" in call.content


async def test_jwts_still_verify_locally_before_introspection(
    introspecting: httpx.AsyncClient, httpx_mock: HTTPXMock
) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "cus_1", "iat": now, "exp": now + 60}, SECRET, algorithm="HS256")
    response = await introspecting.get("/people/cus_1", headers={"authorization": f"Bearer {token}"})
    assert response.json()["email"] == "ada@example.com"
    assert httpx_mock.get_requests() == []


async def test_an_inactive_token_is_401(introspecting: httpx.AsyncClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=INTROSPECT, method="POST", json={"active": False})
    response = await introspecting.get("/people/cus_1", headers={"authorization": "Bearer revoked"})
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


@pytest.mark.parametrize("failure", ["down", "500", "not-json"])
async def test_an_unreachable_authorization_server_is_503(
    introspecting: httpx.AsyncClient, httpx_mock: HTTPXMock, failure: str
) -> None:
    if failure == "down":
        httpx_mock.add_exception(httpx.ConnectError("refused"), url=INTROSPECT)
    elif failure == "500":
        httpx_mock.add_response(url=INTROSPECT, status_code=500)
    else:
        httpx_mock.add_response(url=INTROSPECT, text="<html>")
    response = await introspecting.get("/people/cus_1", headers={"authorization": "Bearer opaque"})
    assert response.status_code == 503 and response.json()["code"] == "identity_unavailable"


async def test_the_cache_never_outlives_the_token(tmp_path: Path) -> None:
    from privacy_middleware.identity import CallerRequest, TokenVerifier
    from privacy_middleware.identity.cache import KeyedCache
    from privacy_middleware.identity.introspection import IntrospectionProvider

    now = [1000.0]
    answers = [active(exp=1010), active(sub="cus_2", exp=2000)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers.pop(0))

    verifier = TokenVerifier(Settings().jwt, POLICY.identity)
    verifier.bind_policy(POLICY)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = IntrospectionProvider(
            INTROSPECT,
            verifier=verifier,
            http=http,
            cache=KeyedCache(b"k" * 32, size=10, clock=lambda: now[0]),
            max_cache_seconds=300,
            clock=lambda: now[0],
        )
        request = CallerRequest({"headers": [(b"authorization", b"Bearer t1")]})
        first = await provider.resolve(request)
        now[0] = 1009
        assert (await provider.resolve(request)) == first
        now[0] = 1011  # past the token's exp: asked again
        second = await provider.resolve(request)
    assert first is not None and second is not None
    assert (first.subject, second.subject) == ("cus_1", "cus_2")
    assert answers == []


def staff_principal(scope: Any) -> Principal | None:
    for key, value in scope.get("headers") or []:
        if key == b"x-api-key" and value == b"partner-key":
            return Principal(id="partner", subject=None, recipient="support", purpose="support")
    return None


def broken_resolver(scope: Any) -> Principal | None:
    raise RuntimeError("the resolver's database is down")


async def test_a_python_callable_resolves_callers(tmp_path: Path, shop: Shop, asgi_lifespan: Any) -> None:
    settings = settings_for(tmp_path, providers=[f"{__name__}:staff_principal", "jwt"])
    app, _ = await client_for(shop, settings)
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        seen = (await client.get("/people/cus_1", headers={"x-api-key": "partner-key"})).json()
        anonymous = (await client.get("/people/cus_1")).json()
    assert seen == {"name": "Ada Lovelace"}
    assert anonymous == {}


async def test_a_failing_callable_is_503(tmp_path: Path, shop: Shop, asgi_lifespan: Any) -> None:
    settings = settings_for(tmp_path, providers=[f"{__name__}:broken_resolver"])
    app, _ = await client_for(shop, settings)
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        response = await client.get("/people/cus_1")
    assert response.status_code == 503 and response.json()["code"] == "identity_unavailable"


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ({"providers": ["saml"]}, "unknown identity provider 'saml'"),
        ({"providers": ["introspection"]}, "PRIVACY_IDENTITY__INTROSPECTION_URL"),
        ({"providers": ["session"]}, "PRIVACY_IDENTITY__SESSION_WHOAMI_URL"),
        ({"providers": ["no.such.module:resolve"]}, "cannot load the identity provider"),
    ],
)
def test_misconfigured_providers_fail_at_start(tmp_path: Path, identity: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Runtime(settings_for(tmp_path, **identity), policy=POLICY)


def test_providers_are_named_in_one_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVACY_IDENTITY__PROVIDERS", "jwt, session")
    monkeypatch.setenv("PRIVACY_IDENTITY__SESSION_WHOAMI_URL", "/api/me")
    settings = Settings()
    assert settings.identity.providers == ["jwt", "session"]
    assert settings.identity.session_whoami_url == "/api/me"


async def test_django_sessions_without_django_configured_are_503(
    tmp_path: Path, shop: Shop, asgi_lifespan: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.conf import settings as django_settings

    if django_settings.configured:
        pytest.skip("Django is already configured in this process by another test")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    app, _ = await client_for(shop, settings_for(tmp_path, providers=["django"]))
    async with (
        asgi_lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client,
    ):
        response = await client.get("/people/cus_1", headers={"cookie": "sessionid=abc"})
    assert response.status_code == 503 and response.json()["code"] == "identity_unavailable"
