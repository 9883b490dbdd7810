"""Django sessions resolved in-process: the session cookie -> the session store -> the user id.

For a Django (or DRF, Oscar) shop wrapped by the middleware in the same process. Django is set up on
first use (`django.setup()` with PRIVACY_IDENTITY__DJANGO_SETTINGS_MODULE or DJANGO_SETTINGS_MODULE)
when the shop's ASGI application has not done it yet. The session store and the user model are
synchronous, so they run through asgiref's `sync_to_async` (thread-sensitive, as Django's own async
views do). Staff users get the staff scope, and with `group_scopes` a user's group names are scopes
(the policy's `identity.scope_recipients` maps them to recipients: a partner's account). The
session's auth hash is checked against the user's, as `django.contrib.auth` does, so a password
change signs old sessions out here too. Results are cached under a keyed hash of the cookie
for a bounded time and dropped on the policy's logout routes. A database error is 503.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from typing import Any

from ..context import Principal
from .base import CallerRequest, unavailable
from .cache import KeyedCache
from .jwt import TokenVerifier
from .session import Resolved

logger = logging.getLogger("privacy_middleware.identity")


def setup_django(settings_module: str | None = None) -> None:
    """`django.setup()` once, unless the app registry is already ready."""
    if settings_module:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


class DjangoSessionProvider:
    name = "django"

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        cache: KeyedCache[Resolved],
        logout_routes: Collection[tuple[str, str]] = (),
        settings_module: str | None = None,
        staff_scope: str = "",
        group_scopes: bool = False,
        cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.logout_routes = frozenset(logout_routes)
        self.settings_module = settings_module
        self.staff_scope = staff_scope
        self.group_scopes = group_scopes
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cookie_name: str | None = None

    def _cookie(self) -> str:
        if self._cookie_name is None:
            setup_django(self.settings_module)
            from django.conf import settings

            self._cookie_name = str(settings.SESSION_COOKIE_NAME)
        return self._cookie_name

    async def resolve(self, request: CallerRequest) -> Principal | None:
        try:
            name = self._cookie()
        except Exception as exc:  # Django is not configured here: a deployment mistake, never "anonymous"
            logger.error("Django cannot be set up for session identity: %s", type(exc).__name__)
            raise unavailable(self.name) from None
        cookie = request.cookie(name)
        if cookie is None:
            return None
        on_logout = request.route is not None and request.route in self.logout_routes
        if on_logout:
            self.cache.drop(cookie)
        else:
            cached = self.cache.get(cookie)
            if cached is not None:
                return cached.principal
        from asgiref.sync import sync_to_async

        try:
            found = await sync_to_async(self._lookup, thread_sensitive=True)(cookie, self.group_scopes)
        except Exception as exc:  # the session store or the user table could not be read
            logger.warning("Django session lookup failed: %s", type(exc).__name__)
            raise unavailable(self.name) from None
        principal = None
        if found is not None:
            user_id, staff, groups = found
            claims: dict[str, Any] = {"sub": user_id}
            scopes = [*groups, *(self.staff_scope.split() if staff else [])]
            if scopes:
                claims[self.verifier.identity.scope_claim] = scopes
            principal = self.verifier.principal_from_claims(claims)
        if not on_logout:
            self.cache.put(cookie, Resolved(principal), until=self.clock() + self.cache_seconds)
        return principal

    @staticmethod
    def _lookup(session_key: str, with_groups: bool = False) -> tuple[str, bool, list[str]] | None:
        """(user id, is staff, group names) of a signed-in session, None for a visitor's or an unknown one."""
        from importlib import import_module

        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
        from django.utils.crypto import constant_time_compare

        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user_id = store.get(SESSION_KEY)
        backend_path = store.get(BACKEND_SESSION_KEY)
        if user_id is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
            return None
        user = load_backend(backend_path).get_user(user_id)
        if user is None:
            return None
        verify = getattr(user, "get_session_auth_hash", None)
        if verify is not None and not constant_time_compare(store.get(HASH_SESSION_KEY) or "", verify()):
            return None
        groups = [str(name) for name in user.groups.values_list("name", flat=True)] if with_groups else []
        return str(user.pk), bool(getattr(user, "is_staff", False)), groups
