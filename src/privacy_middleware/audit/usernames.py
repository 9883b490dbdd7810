"""One spelling per login name, so case, width, spacing or invisible characters never buy a
second lockout allowance (`Alice`, full-width `ALICE`, ` alice `, `al\u200bice` are one account)."""

from __future__ import annotations

import unicodedata


def normalise_username(raw: str) -> str:
    """NFKC, case-folded, without format characters (zero-width, bidi controls) or outer spaces.

    NFKC runs again after case folding because folding can produce sequences NFKC would compose.
    """
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKC", text.casefold())
    return text.strip()
