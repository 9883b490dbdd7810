"""The ASGI entry point: Django's application inside the privacy middleware (settings from PRIVACY_*)."""

import os

from django.core.asgi import get_asgi_application

from privacy_middleware.middleware import PrivacyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = PrivacyMiddleware(get_asgi_application())
