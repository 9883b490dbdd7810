"""What an erasure covers and what it leaves, stated in the signed receipt so nobody has to guess."""

from __future__ import annotations

from typing import Any

from .middleware_only import reaches_shop


def erasure_coverage(adapter: object, *, kept: bool) -> dict[str, Any]:
    covered = [
        "subject_key: destroyed; every value the middleware encrypted or tokenised for this subject, wherever it "
        "is stored (the shop's database, its backups and logs), can no longer be read",
        "vault_tokens: destroyed",
        "consent: the subject's consent records and visitor links deleted",
        "middleware_store: kept exports and restriction/objection flags deleted",
        "audit_side_records: the raw personal values behind audit events (IP addresses, usernames) deleted",
    ]
    not_covered = [
        "audit_events: the tamper-evident audit log keeps its events (who saw which categories, when) "
        "without their personal side records, as proof of lawful processing",
        "rights_requests: the request records are kept as proof that this request was handled",
    ]
    if reaches_shop(adapter):
        covered.insert(0, "shop: the shop's records deleted, or anonymised where a legal hold applies")
        if kept:
            not_covered.append("shop_legal_hold: the items listed under shop.kept are kept for their stated reason")
    else:
        not_covered.insert(
            0,
            "shop: no shop adapter is configured, so the shop's own records were not reached; values it stores "
            "in clear (not protected by the policy) remain there and must be erased in the shop",
        )
    return {"covered": covered, "not_covered": not_covered}
