"""Table definitions shared by every capability.

All tables live on one `metadata`; each capability keeps its own tables in its own
`store/<capability>.py` module and adds a numbered migration under `store/migrations/`.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

schema_version = sa.Table(
    "privacy_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

policy_versions = sa.Table(
    "privacy_policy_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("first_loaded_at", sa.DateTime(timezone=True), nullable=False),
)
