"""A minimal Django shop: one JSON view of an order, wrapped by the privacy middleware in asgi.py."""
