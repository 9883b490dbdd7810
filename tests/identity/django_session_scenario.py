"""Run by test_django_sessions.py in its own process (Django is configured once per process):
a real Django project with sessions and auth on SQLite, wrapped by the middleware, whose callers
are resolved from their Django session cookie; and the declarative Django ORM adapter on it."""

from __future__ import annotations

import asyncio
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent


def configure(data_dir: Path) -> None:
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path

    def person(request: HttpRequest, pid: str) -> HttpResponse:
        return JsonResponse({"id": pid, "name": "Ada Lovelace", "email": "ada@example.com"})

    urls = ModuleType("identity_django_urls")
    urls.urlpatterns = [path("people/<str:pid>", person)]  # type: ignore[attr-defined]
    settings.configure(
        SECRET_KEY="django-insecure-identity-test",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"],
        MIDDLEWARE=[],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(data_dir / "shop.sqlite3")}},
        USE_TZ=True,
        ROOT_URLCONF=urls,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )


def sign_in(user: Any) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


async def scenario(data_dir: Path, cookies: dict[str, str], ids: dict[str, str]) -> None:
    from asgiref.sync import sync_to_async
    from django.core.asgi import get_asgi_application

    from privacy_middleware.middleware import PrivacyMiddleware
    from privacy_middleware.policy.load import validate_policy
    from privacy_middleware.runtime import Runtime
    from privacy_middleware.settings import Settings

    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from test_providers import POLICY_TOML

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{data_dir / 'privacy.db'}",
        data_dir=data_dir,
        identity={"providers": ["django"], "django_staff_scope": "staff"},
        audit={"retention_interval_seconds": 0},
    )
    runtime = Runtime(settings, policy=validate_policy(tomllib.loads(POLICY_TOML)))
    app = PrivacyMiddleware(get_asgi_application(), runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:

        async def get(person: str, cookie: str | None) -> httpx.Response:
            headers = {"cookie": f"sessionid={cookie}"} if cookie else {}
            return await client.get(f"/people/{person}", headers=headers)

        ada = ids["ada"]
        own = await get(ada, cookies["ada"])
        assert own.json() == {"id": ada, "name": "Ada Lovelace", "email": "ada@example.com"}, own.text
        assert "email" not in (await get("999", cookies["ada"])).json()
        assert (await get(ada, cookies["staff"])).json() == {"name": "Ada Lovelace"}
        assert (await get(ada, None)).json() == {}
        assert (await get(ada, "not-a-session")).json() == {}

        # A password change signs the old session out (its auth hash no longer matches).
        def change_password() -> None:
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.get(username="bob")
            user.set_password("another-password-1")
            user.save()

        await sync_to_async(change_password)()
        assert (await get(ids["bob"], cookies["bob"])).json() == {}

        await django_adapter(ids)

        # The session store cannot be read: 503, not an anonymous caller.
        def break_sessions() -> None:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE django_session RENAME TO django_session_gone")

        await sync_to_async(break_sessions)()
        broken = await get(ada, "another-cookie")
        assert broken.status_code == 503 and broken.json()["code"] == "identity_unavailable", broken.text
    await runtime.stop()


async def django_adapter(ids: dict[str, str]) -> None:
    """The declarative Django ORM adapter on the same project: export, erase, legal hold."""
    from asgiref.sync import sync_to_async
    from test_providers import POLICY_TOML

    from privacy_middleware.integrations.declarative.django_orm import DjangoAdapter
    from privacy_middleware.policy.load import validate_policy

    document = tomllib.loads(POLICY_TOML)
    document["categories"]["user.financial.invoice"] = {}
    document["adapter"] = {
        "models": [
            {
                "model": "auth.User",
                "subject": "id",
                "kind": "account",
                "categories": ["user.financial.invoice"],
                "fields": {"email": "erase", "first_name": "anonymise", "username": "anonymise"},
            }
        ]
    }
    adapter = DjangoAdapter(validate_policy(document))
    [record] = await adapter.records(ids["ada"])
    assert (record.kind, record.id, record.data["username"]) == ("account", ids["ada"], "ada"), record
    assert "password" in record.data

    deleted = await adapter.erase(ids["bob"], keep_for_legal_hold={})
    assert deleted.deleted == [f"account:{ids['bob']}"] and not deleted.kept
    held = await adapter.erase(ids["ada"], keep_for_legal_hold={"user.financial.invoice": "tax law"})
    assert held.anonymised == [f"account:{ids['ada']}"] and held.kept == [(f"account:{ids['ada']}", "tax law")]

    def rows() -> list[tuple[Any, ...]]:
        from django.contrib.auth import get_user_model

        return list(get_user_model().objects.order_by("id").values_list("id", "username", "email", "first_name"))

    remaining = await sync_to_async(rows)()
    anonymised = f"anonymised-{ids['ada']}"
    assert (int(ids["ada"]), anonymised, "", anonymised) in remaining, remaining
    assert all(str(row[0]) != ids["bob"] for row in remaining)


def main(data_dir: Path) -> None:
    configure(data_dir)
    import django
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    ada = users.create_user("ada", password="password-1")
    bob = users.create_user("bob", password="password-1")
    staff = users.create_user("staff", password="password-1", is_staff=True)
    cookies = {"ada": sign_in(ada), "bob": sign_in(bob), "staff": sign_in(staff)}
    asyncio.run(scenario(data_dir, cookies, {"ada": str(ada.pk), "bob": str(bob.pk)}))
    print("django session scenario passed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
