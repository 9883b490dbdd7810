"""Token vault: the category a token stands for and a keyed lookup for deterministic tokens."""

import sqlalchemy as sa

VERSION = 7
DESCRIPTION = "token vault category and deterministic lookup"


def upgrade(conn: sa.Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns("privacy_token_vault")}
    if "category" not in columns:
        conn.execute(sa.text("ALTER TABLE privacy_token_vault ADD COLUMN category VARCHAR(200)"))
    if "lookup" not in columns:
        conn.execute(sa.text("ALTER TABLE privacy_token_vault ADD COLUMN lookup VARCHAR(64)"))
    conn.execute(
        sa.text(
            "CREATE UNIQUE INDEX IF NOT EXISTS ix_privacy_token_vault_lookup ON privacy_token_vault (tenant, lookup)"
        )
    )
