"""JSON Schemas of the OCSF 1.3.0 classes the audit export uses, written from the OCSF class definitions.

For each class: the base event's required attributes, the class's required attributes, the
`at_least_one` constraints of the objects used, the activity and severity enumerations, and only
attributes the class defines (plus `unmapped`). `type_uid` = class_uid * 100 + activity_id and
category_uid = class_uid // 1000 are checked by `check_ocsf`.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

_ENTITY = [{"required": ["name"]}, {"required": ["uid"]}]
_USER = {
    "type": "object",
    "properties": {"uid": {"type": "string"}, "name": {"type": "string"}, "type_id": {"type": "integer"}},
    "anyOf": [{"required": ["account"]}, {"required": ["name"]}, {"required": ["uid"]}],
}
_ENDPOINT = {
    "type": "object",
    "anyOf": [
        {"required": [name]}
        for name in ("ip", "uid", "name", "hostname", "svc_name", "instance_uid", "interface_uid", "interface_name")
    ],
}
_RESOURCES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"uid": {"type": "string"}, "type": {"type": "string"}, "data": {}},
        "additionalProperties": False,
    },
}
_BASE_PROPERTIES: dict[str, Any] = {
    "activity_id": {"type": "integer"},
    "category_uid": {"type": "integer"},
    "class_uid": {"type": "integer"},
    "type_uid": {"type": "integer"},
    "time": {"type": "integer", "minimum": 0},
    "severity_id": {"enum": [0, 1, 2, 3, 4, 5, 6, 99]},
    "message": {"type": "string"},
    "status": {"type": "string"},
    "status_id": {"enum": [0, 1, 2, 99]},
    "status_detail": {"type": "string"},
    "unmapped": {"type": "object"},
    "metadata": {
        "type": "object",
        "required": ["product", "version"],
        "properties": {
            "version": {"type": "string", "pattern": r"^1\.\d+\.\d+$"},
            "product": {
                "type": "object",
                "anyOf": _ENTITY,
                "properties": {
                    "name": {"type": "string"},
                    "vendor_name": {"type": "string"},
                    "version": {"type": "string"},
                },
            },
            "uid": {"type": "string"},
            "log_name": {"type": "string"},
            "sequence": {"type": "integer"},
            "event_code": {"type": "string"},
        },
        "additionalProperties": False,
    },
}
_BASE_REQUIRED = ["activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid"]

CLASSES: dict[int, dict[str, Any]] = {
    3002: {  # Authentication (IAM)
        "activities": [0, 1, 2, 3, 4, 5, 6, 7, 99],
        "required": ["user"],
        "properties": {
            "user": _USER,
            "actor": {"type": "object"},
            "auth_protocol": {"type": "string"},
            "auth_protocol_id": {"enum": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99]},
            "src_endpoint": _ENDPOINT,
            "dst_endpoint": _ENDPOINT,
            "is_remote": {"type": "boolean"},
        },
    },
    3001: {  # Account Change (IAM)
        "activities": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99],
        "required": ["user"],
        "properties": {
            "user": _USER,
            "actor": {"type": "object", "properties": {"user": _USER}},
            "src_endpoint": _ENDPOINT,
        },
    },
    6003: {  # API Activity (Application Activity)
        "activities": [0, 1, 2, 3, 4, 99],
        "required": ["actor", "api", "src_endpoint"],
        "properties": {
            "actor": {
                "type": "object",
                "properties": {"user": _USER},
                "anyOf": [
                    {"required": [name]}
                    for name in ("process", "user", "iam_role", "invoked_by", "session", "app_name", "app_uid")
                ],
            },
            "api": {
                "type": "object",
                "required": ["operation"],
                "properties": {
                    "operation": {"type": "string"},
                    "service": {"type": "object", "anyOf": _ENTITY},
                },
            },
            "src_endpoint": _ENDPOINT,
            "resources": _RESOURCES,
        },
    },
    2004: {  # Detection Finding (Findings)
        "activities": [0, 1, 2, 3, 99],
        "required": ["finding_info"],
        "properties": {
            "finding_info": {
                "type": "object",
                "required": ["uid"],
                "properties": {
                    "uid": {"type": "string"},
                    "title": {"type": "string"},
                    "types": {"type": "array", "items": {"type": "string"}},
                },
            },
            "resources": _RESOURCES,
        },
    },
}


def class_schema(class_uid: int) -> dict[str, Any]:
    spec = CLASSES[class_uid]
    return {
        "type": "object",
        "required": [*_BASE_REQUIRED, *spec["required"]],
        "properties": {
            **_BASE_PROPERTIES,
            **spec["properties"],
            "class_uid": {"const": class_uid},
            "category_uid": {"const": class_uid // 1000},
            "activity_id": {"enum": spec["activities"]},
        },
        "additionalProperties": False,
    }


def check_ocsf(document: dict[str, Any]) -> None:
    """Raise AssertionError naming every way `document` is not a valid OCSF document of its class."""
    class_uid = document.get("class_uid")
    assert class_uid in CLASSES, f"class_uid {class_uid} is not a class the export uses"
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in Draft202012Validator(class_schema(class_uid)).iter_errors(document)
    ]
    assert not errors, "; ".join(errors)
    assert document["type_uid"] == class_uid * 100 + document["activity_id"]
