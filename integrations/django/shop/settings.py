"""Django settings for the example shop (no database: the order is a constant)."""

SECRET_KEY = "django-insecure-example-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, object] = {}
ROOT_URLCONF = "shop.urls"
USE_TZ = True
