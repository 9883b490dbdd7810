"""Django and other Python ASGI shops: the middleware wraps the app in-process (see README.md)."""
