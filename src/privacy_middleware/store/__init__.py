"""Storage: one SQLAlchemy Core layer for every capability (SQLite or PostgreSQL)."""

from .database import DEFAULT_DATABASE_URL, Database, redact_url

__all__ = ["DEFAULT_DATABASE_URL", "Database", "redact_url"]
