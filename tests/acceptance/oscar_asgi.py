"""The acceptance shop as an ASGI application, for `privacy-middleware policy coverage --app`."""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
