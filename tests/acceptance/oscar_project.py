"""A django-oscar shop with django-oscar-api, as its documentation sets one up (SQLite, sessions)."""

import os

from oscar import INSTALLED_APPS as OSCAR_APPS
from oscar.defaults import *  # noqa: F403

DATA = os.environ["OSCAR_ACCEPTANCE_DATA"]
SECRET_KEY = "acceptance-only-" + "x" * 40
DEBUG = False
LOGGING = {
    "version": 1,
    "handlers": {"e": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["e"], "level": "ERROR"}},
}
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [*OSCAR_APPS, "rest_framework", "oscarapi", "drf_spectacular"]
# The shop describes its API as OpenAPI 3 (drf-spectacular), which `policy draft` reads.
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {"TITLE": "Oscar acceptance shop", "VERSION": "1"}
SITE_ID = 1
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
]
ROOT_URLCONF = "oscar_urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DATA, "shop.sqlite3")}}
HAYSTACK_CONNECTIONS = {"default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}]
USE_TZ = True
AUTHENTICATION_BACKENDS = [
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OSCAR_ALLOW_ANON_CHECKOUT = True
OSCARAPI_ENABLE_REGISTRATION = True
OSCARAPI_BLOCK_ADMIN_API_ACCESS = False  # the staff API (staff and the logistics partner's account)
STATIC_URL = "/static/"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"


class _NoMigrations(dict):  # tables straight from the models: seconds instead of minutes
    def __contains__(self, item: object) -> bool:
        return True

    def __getitem__(self, item: object) -> None:
        return None


MIGRATION_MODULES = _NoMigrations()
