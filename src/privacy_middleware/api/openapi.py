"""OpenAPI 3.1 description of the privacy API, generated from the mounted routes.

Paths and methods come from the Starlette routes the API actually serves (so a route cannot be
missing from the description); what each operation answers comes from `OPERATIONS` below. A route
without an entry is described as undocumented, and a test fails on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

from .. import __version__

OPENAPI_VERSION = "3.1.0"
PROBLEM = "application/problem+json"
JSON = "application/json"
PEM = "application/x-pem-file"

_nullable_string = {"type": ["string", "null"]}
_time = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details with a stable machine-readable `code`.",
        "required": ["type", "title", "status", "code", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "string", "pattern": "^[a-z0-9_]+$"},
            "detail": {"type": "string"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "policy_version"],
        "properties": {"status": {"const": "ok"}, "policy_version": {"type": "string"}},
    },
    "PolicyDocument": {
        "type": "object",
        "required": ["version", "effective_date", "digest", "policy", "history"],
        "properties": {
            "version": {"type": "string"},
            "effective_date": {"type": "string", "format": "date"},
            "digest": {"type": "string"},
            "policy": {"type": "object"},
            "history": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Gpc": {
        "type": "object",
        "required": ["gpc"],
        "properties": {"gpc": {"const": True}, "lastUpdate": {"type": "string"}},
    },
    "PurposeConsent": {
        "type": "object",
        "required": ["allowed", "reason", "legal_basis", "mechanism", "choice", "reconsent_required"],
        "properties": {
            "allowed": {"type": "boolean"},
            "reason": {"type": "string"},
            "legal_basis": {"type": "string"},
            "mechanism": {"type": "string"},
            "choice": {"type": ["boolean", "null"]},
            "reconsent_required": {"type": "boolean"},
            "cookie_class": _nullable_string,
            "description": _nullable_string,
        },
    },
    "Consent": {
        "type": "object",
        "required": ["policy_version", "holder", "source", "gpc", "reconsent_required", "purposes", "consent_mode"],
        "properties": {
            "policy_version": {"type": "string"},
            "holder": {"enum": ["subject", "visitor", None]},
            "source": {"type": "string"},
            "gpc": {"type": "boolean"},
            "tcf": {},
            "reconsent_required": {"type": "boolean"},
            "purposes": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/PurposeConsent"}},
            "consent_mode": {"type": "object", "additionalProperties": {"enum": ["granted", "denied"]}},
        },
    },
    "ConsentChange": {
        "type": "object",
        "description": "The purposes chosen, by name; `method` says how the choice was made.",
        "required": ["purposes"],
        "properties": {
            "purposes": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "method": {"enum": ["api", "banner"]},
        },
    },
    "ConsentRecord": {
        "type": "object",
        "required": ["record_id", "holder", "purposes", "policy_version", "method", "recorded_at", "receipt"],
        "properties": {
            "record_id": {"type": "string"},
            "holder": {"type": "string"},
            "purposes": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "policy_version": {"type": "string"},
            "method": {"type": "string"},
            "recorded_at": _time,
            "ip_prefix": _nullable_string,
            "user_agent_family": _nullable_string,
            "linked_from_visitor": {"type": "boolean"},
            "receipt": {"type": "string"},
        },
    },
    "ConsentHistory": {
        "type": "object",
        "required": ["records", "receipt_public_key", "receipt_key_id"],
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/ConsentRecord"}},
            "receipt_public_key": {"type": "string"},
            "receipt_key_id": {"type": "string"},
        },
    },
    "Flags": {
        "type": "object",
        "required": ["restricted", "objections", "updated_at"],
        "properties": {
            "restricted": {"type": "boolean"},
            "objections": {"type": "array", "items": {"type": "string"}},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "RightsRequest": {
        "type": "object",
        "required": ["id", "type", "subject", "status", "created_at", "due_at", "overdue", "steps"],
        "properties": {
            "id": {"type": "string"},
            "type": {"enum": ["access", "transfer", "erasure", "rectification", "restriction", "objection"]},
            "subject": {"type": "string"},
            "status": {"type": "string"},
            "created_at": _time,
            "updated_at": _time,
            "due_at": _time,
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
            "overdue": {"type": "boolean"},
            "acting_principal": {"type": "string"},
            "reason": _nullable_string,
            "failed_step": _nullable_string,
            "error": _nullable_string,
            "attempts": {"type": "integer"},
            "steps": {"type": "array", "items": {"type": "object"}},
            "result": {"type": ["object", "null"]},
            "receipt": {},
        },
    },
    "RequestWithFlags": {
        "type": "object",
        "required": ["request", "flags"],
        "properties": {
            "request": {"$ref": "#/components/schemas/RightsRequest"},
            "flags": {"$ref": "#/components/schemas/Flags"},
        },
    },
    "MyRequests": {
        "type": "object",
        "required": ["subject", "requests", "flags"],
        "properties": {
            "subject": {"type": "string"},
            "requests": {"type": "array", "items": {"$ref": "#/components/schemas/RightsRequest"}},
            "flags": {"$ref": "#/components/schemas/Flags"},
        },
    },
    "AdminRequests": {
        "type": "object",
        "required": ["requests", "overdue"],
        "properties": {
            "requests": {"type": "array", "items": {"$ref": "#/components/schemas/RightsRequest"}},
            "overdue": {"type": "integer", "minimum": 0},
        },
    },
    "Export": {
        "type": "object",
        "description": "The subject's personal data in clear (see docs/rights.md for the export schema).",
    },
    "AccessLog": {
        "type": "object",
        "required": ["subject", "logins", "disclosures"],
        "properties": {
            "subject": {"type": "string"},
            "logins": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["time", "outcome"],
                    "properties": {
                        "time": _time,
                        "outcome": {"type": "string"},
                        "network": _nullable_string,
                        "device": _nullable_string,
                    },
                },
            },
            "disclosures": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["time", "recipient", "categories"],
                    "properties": {
                        "time": _time,
                        "recipient": _nullable_string,
                        "purpose": _nullable_string,
                        "categories": {"type": "array", "items": {"type": "string"}},
                        "route": _nullable_string,
                        "action": _nullable_string,
                    },
                },
            },
        },
    },
    "AuditEvents": {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "time", "kind", "class_uid"],
                    "properties": {
                        "seq": {"type": "integer"},
                        "time": _time,
                        "kind": {"type": "string"},
                        "class_uid": {"type": "integer"},
                        "subject": _nullable_string,
                        "principal": _nullable_string,
                        "document": {"type": ["object", "null"]},
                    },
                },
            }
        },
    },
    "OcsfPage": {
        "type": "object",
        "description": "OCSF 1.3 documents of security events after the cursor, in trail order.",
        "required": ["ocsf_version", "events", "cursor", "more"],
        "properties": {
            "ocsf_version": {"type": "string"},
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "class_uid",
                        "category_uid",
                        "activity_id",
                        "type_uid",
                        "time",
                        "severity_id",
                        "metadata",
                    ],
                    "properties": {
                        "class_uid": {"enum": [2004, 3001, 3002, 6003]},
                        "time": {"type": "integer"},
                        "metadata": {"type": "object", "required": ["version", "product", "sequence"]},
                    },
                },
            },
            "cursor": {"type": ["integer", "null"], "description": "Pass as `after` in the next pull."},
            "more": {"type": "boolean"},
        },
    },
    "Suspensions": {
        "type": "object",
        "required": ["suspensions"],
        "properties": {
            "suspensions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["target_kind", "target", "reason", "since_us"],
                    "properties": {
                        "target_kind": {"type": "string"},
                        "target": {"type": "string"},
                        "reason": _nullable_string,
                        "finding": _nullable_string,
                        "since_us": {"type": "integer"},
                        "lifted_us": {"type": ["integer", "null"]},
                        "lifted_by": _nullable_string,
                    },
                },
            }
        },
    },
    "SuspensionLifted": {
        "type": "object",
        "required": ["lifted"],
        "properties": {
            "lifted": {"type": "integer"},
            "target_kind": {"type": "string"},
            "target": {"type": "string"},
            "detail": {"type": "string"},
        },
    },
    "WebhookAccepted": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    },
}


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    # status -> (description, media type, schema name or None for a plain string)
    responses: dict[int, tuple[str, str, str | None]]
    auth: bool = False
    request: str | None = None
    tags: tuple[str, ...] = ()
    parameters: tuple[dict[str, Any], ...] = field(default=())


def _ok(schema: str, description: str = "OK") -> dict[int, tuple[str, str, str | None]]:
    return {200: (description, JSON, schema)}


_signed_in = {401: ("No or invalid bearer token", PROBLEM, "Problem"), 403: ("Not allowed", PROBLEM, "Problem")}
_query = {"in": "query", "required": False, "schema": {"type": "string"}}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/openapi.json"): Operation("This description", {200: ("OpenAPI 3.1", JSON, None)}, tags=("meta",)),
    ("GET", "/policy"): Operation("The privacy policy, machine-readable, with its history", _ok("PolicyDocument")),
    ("GET", "/health"): Operation(
        "Health of the privacy store",
        {**_ok("Health"), 503: ("The privacy store is unreachable", PROBLEM, "Problem")},
        tags=("meta",),
    ),
    ("GET", "/.well-known/gpc.json"): Operation("Global Privacy Control support resource", _ok("Gpc")),
    ("GET", "/consent"): Operation("The caller's consent, purpose by purpose", _ok("Consent"), tags=("consent",)),
    ("PUT", "/consent"): Operation(
        "Record the caller's choices",
        {**_ok("Consent"), 403: ("Cross-site request", PROBLEM, "Problem"), 422: ("Bad body", PROBLEM, "Problem")},
        request="ConsentChange",
        tags=("consent",),
    ),
    ("DELETE", "/consent"): Operation(
        "Withdraw every optional consent",
        {**_ok("Consent"), 403: ("Cross-site request", PROBLEM, "Problem")},
        tags=("consent",),
    ),
    ("GET", "/consent/history"): Operation(
        "The caller's consent records with signed receipts", _ok("ConsentHistory"), tags=("consent",)
    ),
    ("GET", "/me/export"): Operation(
        "Export the caller's personal data (right of access)",
        {**_ok("Export"), **_signed_in},
        auth=True,
        tags=("rights",),
    ),
    ("POST", "/me/export/transfer"): Operation(
        "Send the export to another provider (portability)",
        {
            **_ok("RightsRequest"),
            **_signed_in,
            422: ("The URL is not https, or its host resolves to a non-public address", PROBLEM, "Problem"),
            502: ("The receiver failed; the export is kept", PROBLEM, "Problem"),
        },
        auth=True,
        tags=("rights",),
    ),
    ("GET", "/me/requests/{request_id}/export"): Operation(
        "An export kept for a request",
        {**_ok("Export"), **_signed_in, 404: ("No such export", PROBLEM, "Problem")},
        auth=True,
        tags=("rights",),
        parameters=({"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}},),
    ),
    ("POST", "/me/erasure"): Operation(
        "Erase the caller's personal data",
        {
            200: ("Erased; the receipt lists what was kept and why", JSON, "RightsRequest"),
            202: ("Accepted; a step will be retried", JSON, "RightsRequest"),
            **_signed_in,
        },
        auth=True,
        tags=("rights",),
    ),
    ("POST", "/me/rectification"): Operation(
        "Correct personal data", {**_ok("RightsRequest"), **_signed_in}, auth=True, tags=("rights",)
    ),
    ("POST", "/me/restriction"): Operation(
        "Restrict processing", {**_ok("RequestWithFlags"), **_signed_in}, auth=True, tags=("rights",)
    ),
    ("DELETE", "/me/restriction"): Operation(
        "Lift a restriction", {**_ok("RequestWithFlags"), **_signed_in}, auth=True, tags=("rights",)
    ),
    ("POST", "/me/objection"): Operation(
        "Object to purposes", {**_ok("RequestWithFlags"), **_signed_in}, auth=True, tags=("rights",)
    ),
    ("DELETE", "/me/objection"): Operation(
        "Withdraw an objection", {**_ok("RequestWithFlags"), **_signed_in}, auth=True, tags=("rights",)
    ),
    ("GET", "/me/requests"): Operation(
        "The caller's subject requests and flags", {**_ok("MyRequests"), **_signed_in}, auth=True, tags=("rights",)
    ),
    ("GET", "/admin/requests"): Operation(
        "Every subject request, overdue first (officer)",
        {**_ok("AdminRequests"), **_signed_in, 422: ("Unknown status", PROBLEM, "Problem")},
        auth=True,
        tags=("officer",),
        parameters=({"name": "status", **_query},),
    ),
    ("GET", "/rights/receipt-key"): Operation(
        "The public key that verifies erasure receipts", {200: ("Ed25519 public key", PEM, None)}, tags=("rights",)
    ),
    ("GET", "/me/access-log"): Operation(
        "Who signed in as the caller and who saw their data",
        {**_ok("AccessLog"), **_signed_in},
        auth=True,
        tags=("audit",),
    ),
    ("GET", "/admin/audit/events"): Operation(
        "Audit events (officer; the read itself is audited)",
        {**_ok("AuditEvents"), **_signed_in, 400: ("Bad query", PROBLEM, "Problem")},
        auth=True,
        tags=("officer",),
        parameters=tuple({"name": n, **_query} for n in ("subject", "kind", "since", "until", "limit")),
    ),
    ("GET", "/admin/breach/suspensions"): Operation(
        "Containment in force (with all=1 also lifted ones) (officer)",
        {**_ok("Suspensions"), **_signed_in},
        auth=True,
        tags=("officer",),
        parameters=({"name": "all", **_query},),
    ),
    ("DELETE", "/admin/breach/suspensions/{kind}/{target}"): Operation(
        "Lift a containment (officer)",
        {**_ok("SuspensionLifted"), **_signed_in, 404: ("No active suspension", JSON, "SuspensionLifted")},
        auth=True,
        tags=("officer",),
    ),
    ("GET", "/admin/audit/ocsf"): Operation(
        "Security events as OCSF documents after a cursor, for a SIEM (officer; the pull is audited)",
        {**_ok("OcsfPage"), **_signed_in, 400: ("Bad query", PROBLEM, "Problem")},
        auth=True,
        tags=("officer",),
        parameters=(
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
        ),
    ),
}
for _platform in ("shopify", "woocommerce", "saleor"):
    OPERATIONS[("POST", f"/webhooks/{_platform}")] = Operation(
        f"{_platform} privacy webhooks (signed deliveries)",
        {
            200: ("Recorded, ignored or a duplicate", JSON, "WebhookAccepted"),
            400: ("Malformed", PROBLEM, "Problem"),
            401: ("Bad signature", PROBLEM, "Problem"),
        },
        tags=("webhooks",),
    )

UNDOCUMENTED = "undocumented"


PAGES_MODULE = "privacy_middleware.api.pages"


def is_page(route: Route) -> bool:
    """The shopper's and the officer's HTML pages and their assets: for browsers, not part of the API."""
    return str(getattr(route.endpoint, "__module__", "")).startswith(PAGES_MODULE)


def _template(path: str) -> str:
    return re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", path)  # {action:str} -> {action}


def served_operations(routes: list[BaseRoute], prefix: str = "", *, pages: bool = False) -> list[tuple[str, str]]:
    """(METHOD, path) of every API route (or, with `pages`, of every page), mounts flattened; HEAD implied."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Mount):
            found.extend(served_operations(list(route.routes), prefix + route.path, pages=pages))
        elif isinstance(route, Route) and is_page(route) == pages:
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((method, _template(prefix + route.path)))
    return found


def _response(description: str, media: str, schema: str | None) -> dict[str, Any]:
    body: dict[str, Any] = (
        {"schema": {"$ref": f"#/components/schemas/{schema}"}} if schema else {"schema": {"type": "string"}}
    )
    return {"description": description, "content": {media: body}}


def openapi_document(routes: list[BaseRoute], mount: str, title: str = "Privacy API") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes, paths as served (mounted under `mount`)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in served_operations(routes):
        relative = path.removeprefix(mount) if path.startswith(mount + "/") else path
        operation = OPERATIONS.get((method, relative))
        item: dict[str, Any]
        if operation is None:
            item = {"summary": UNDOCUMENTED, "responses": {"default": {"description": UNDOCUMENTED}}}
        else:
            responses = {str(status): _response(*spec) for status, spec in operation.responses.items()}
            responses.setdefault("default", _response("An error", PROBLEM, "Problem"))
            item = {"summary": operation.summary, "responses": responses}
            if operation.tags:
                item["tags"] = list(operation.tags)
            if operation.parameters:
                item["parameters"] = list(operation.parameters)
            if operation.request:
                item["requestBody"] = {
                    "required": True,
                    "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{operation.request}"}}},
                }
            if operation.auth:
                item["security"] = [{"bearer": []}]
        declared = {p["name"] for p in item.get("parameters", []) if p.get("in") == "path"}
        for name in re.findall(r"\{([^}]+)\}", path):
            if name not in declared:
                item.setdefault("parameters", []).append(
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                )
        item["operationId"] = f"{method.lower()}_{relative.strip('/').replace('/', '_').replace('.', '_')}".replace(
            "{", ""
        ).replace("}", "")
        paths.setdefault(path, {})[method.lower()] = item
    pages = sorted({path for _, path in served_operations(routes, pages=True)})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": __version__,
            "description": "The JSON API of privacy-middleware. The HTML pages for shoppers and officers "
            "(listed in x-html-pages) are for browsers and are not described here.",
        },
        "x-html-pages": pages,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
