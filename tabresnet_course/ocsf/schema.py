"""OCSF 1.8.0 identifiers and captions, and a validator for single events.

Chapter "The OCSF pipeline" teaches this file (through :mod:`tabresnet_course.ocsf.generator`, which
re-exports its public names). Identifiers follow the OCSF 1.8.0 schema (``ocsf/ocsf-schema``):
``type_uid = class_uid * 100 + activity_id`` and ``category_uid = class_uid // 1000``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "AUTH_PROTOCOL_NAMES",
    "CATEGORY_NAMES",
    "DIRECTION_NAMES",
    "LOGON_TYPE_NAMES",
    "OCSF_CLASSES",
    "OCSF_VERSION",
    "SEVERITY_NAMES",
    "STATUS_NAMES",
    "captions",
    "validate_event",
]

OCSF_VERSION = "1.8.0"
"""The OCSF schema version written to ``metadata.version``."""

# --------------------------------------------------------------------------------------------
# OCSF identifiers (schema 1.8.0)
# --------------------------------------------------------------------------------------------

CATEGORY_NAMES: dict[int, str] = {
    1: "System Activity",
    3: "Identity & Access Management",
    4: "Network Activity",
    6: "Application Activity",
}

_COMMON_ACTIVITIES = {0: "Unknown", 99: "Other"}

OCSF_CLASSES: dict[int, dict[str, Any]] = {
    1001: {
        "name": "File System Activity",
        "activities": {
            1: "Create",
            2: "Read",
            3: "Update",
            4: "Delete",
            5: "Rename",
            6: "Set Attributes",
            7: "Set Security",
            8: "Get Attributes",
            9: "Get Security",
            10: "Encrypt",
            11: "Decrypt",
            12: "Mount",
            13: "Unmount",
            14: "Open",
        },
        "required": ("actor", "device", "file"),
    },
    1007: {
        "name": "Process Activity",
        "activities": {1: "Launch", 2: "Terminate", 3: "Open", 4: "Inject", 5: "Set User ID"},
        "required": ("actor", "device", "process"),
    },
    3002: {
        "name": "Authentication",
        "activities": {
            1: "Logon",
            2: "Logoff",
            3: "Authentication Ticket",
            4: "Service Ticket Request",
            5: "Service Ticket Renew",
            6: "Preauth",
            7: "Account Switch",
        },
        "required": ("user",),
    },
    4001: {
        "name": "Network Activity",
        "activities": {
            1: "Open",
            2: "Close",
            3: "Reset",
            4: "Fail",
            5: "Refuse",
            6: "Traffic",
            7: "Listen",
        },
        "required": (),
    },
    4002: {
        "name": "HTTP Activity",
        "activities": {
            1: "Connect",
            2: "Delete",
            3: "Get",
            4: "Head",
            5: "Options",
            6: "Post",
            7: "Put",
            8: "Trace",
            9: "Patch",
        },
        "required": ("http_request", "http_response"),
    },
    6003: {
        "name": "API Activity",
        "activities": {1: "Create", 2: "Read", 3: "Update", 4: "Delete"},
        "required": ("actor", "api", "src_endpoint"),
    },
}
for _spec in OCSF_CLASSES.values():
    _spec["activities"] = {**_COMMON_ACTIVITIES, **_spec["activities"]}

SEVERITY_NAMES: dict[int, str] = {
    0: "Unknown",
    1: "Informational",
    2: "Low",
    3: "Medium",
    4: "High",
    5: "Critical",
    6: "Fatal",
    99: "Other",
}
STATUS_NAMES: dict[int, str] = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
AUTH_PROTOCOL_NAMES: dict[int, str] = {
    0: "Unknown",
    1: "NTLM",
    2: "Kerberos",
    3: "Digest",
    4: "OpenID",
    5: "SAML",
    6: "OAUTH 2.0",
    7: "PAP",
    8: "CHAP",
    9: "EAP",
    10: "RADIUS",
    11: "Basic Authentication",
    12: "LDAP",
    99: "Other",
}
LOGON_TYPE_NAMES: dict[int, str] = {
    0: "Unknown",
    1: "System",
    2: "Interactive",
    3: "Network",
    4: "Batch",
    5: "OS Service",
    7: "Unlock",
    8: "Network Cleartext",
    9: "New Credentials",
    10: "Remote Interactive",
    11: "Cached Interactive",
    12: "Cached Remote Interactive",
    13: "Cached Unlock",
    99: "Other",
}
DIRECTION_NAMES: dict[int, str] = {0: "Unknown", 1: "Inbound", 2: "Outbound", 3: "Lateral", 99: "Other"}


def captions(names: dict[int, str], ids: np.ndarray) -> np.ndarray:
    """The caption of each integer id (``"Other"`` for ids without one), vectorised through a lookup table."""
    table = np.empty(max(names) + 1, dtype=object)
    table[:] = "Other"
    for key, value in names.items():
        table[key] = value
    return table[ids]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_INTEGER_FIELDS = (
    "time",
    "class_uid",
    "category_uid",
    "activity_id",
    "type_uid",
    "severity_id",
    "status_id",
    "duration",
    "http_response.code",
    "http_response.latency",
    "traffic.bytes_in",
    "traffic.bytes_out",
    "traffic.packets_in",
    "traffic.packets_out",
    "src_endpoint.port",
    "dst_endpoint.port",
    "process.pid",
    "process.parent_process.pid",
    "file.size",
    "file.type_id",
    "auth_protocol_id",
    "logon_type_id",
    "connection_info.direction_id",
)
_REQUIRED_PATHS = {4002: ("http_response.code",), 6003: ("api.operation",)}


def _get_path(event: dict, path: str) -> tuple[bool, Any]:
    """``(found, value)`` for a dotted path inside a nested dict."""
    node: Any = event
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_event(event: dict) -> list[str]:
    """Problems with one OCSF 1.8.0 event (an empty list means valid); chapter "The OCSF pipeline".

    Checks the required base attributes and their types, the identifier arithmetic
    (``category_uid = class_uid // 1000``, ``type_uid = class_uid * 100 + activity_id``),
    allowed ``activity_id`` / ``severity_id`` / ``status_id`` values and captions,
    ``metadata.version`` and ``metadata.product``, integer typing of counters and durations,
    and, for the generator's classes, the objects the class requires (``user`` for 3002,
    ``http_response.code`` for 4002, ``api.operation`` for 6003, ``process`` for 1007, ``file``
    for 1001, ...). Classes the generator does not emit get the base checks only (their
    ``status_id`` enum may differ from the base event's, so it is not checked).
    """
    if not isinstance(event, dict):
        return [f"event is a {type(event).__name__}, not an object"]
    problems: list[str] = []
    for name in ("time", "class_uid", "category_uid", "activity_id", "type_uid", "severity_id", "metadata"):
        if name not in event:
            problems.append(f"missing required attribute {name!r}")
    for path in _INTEGER_FIELDS:
        found, value = _get_path(event, path)
        if found and not _is_int(value):
            problems.append(f"{path} must be an integer, got {value!r}")
    class_uid, activity_id = event.get("class_uid"), event.get("activity_id")
    if _is_int(class_uid):
        category = event.get("category_uid")
        if _is_int(category) and category != class_uid // 1000:
            problems.append(
                f"category_uid {category} does not match class_uid {class_uid} (expected {class_uid // 1000})"
            )
        type_uid = event.get("type_uid")
        if _is_int(activity_id) and _is_int(type_uid) and type_uid != class_uid * 100 + activity_id:
            problems.append(f"type_uid {type_uid} != class_uid * 100 + activity_id = {class_uid * 100 + activity_id}")
    spec = OCSF_CLASSES.get(class_uid) if _is_int(class_uid) else None
    if spec is not None:
        if "class_name" in event and event["class_name"] != spec["name"]:
            problems.append(
                f"class_name {event['class_name']!r} does not match class_uid {class_uid} ({spec['name']!r})"
            )
        if _is_int(activity_id):
            if activity_id not in spec["activities"]:
                problems.append(f"activity_id {activity_id} is not defined for class {class_uid} ({spec['name']})")
            elif (
                "activity_name" in event
                and activity_id != 99
                and event["activity_name"] != spec["activities"][activity_id]
            ):
                problems.append(f"activity_name {event['activity_name']!r} does not match activity_id {activity_id}")
        for name in spec["required"]:
            if not isinstance(event.get(name), dict):
                problems.append(f"class {class_uid} ({spec['name']}) requires object {name!r}")
        for path in _REQUIRED_PATHS.get(class_uid, ()):
            if not _get_path(event, path)[0]:
                problems.append(f"class {class_uid} ({spec['name']}) requires {path!r}")
        if class_uid == 4001 and not (
            isinstance(event.get("src_endpoint"), dict) or isinstance(event.get("dst_endpoint"), dict)
        ):
            problems.append("class 4001 (Network Activity) requires src_endpoint or dst_endpoint")
    # severity_id is the same enum in every class; status_id is the base event's enum only for the
    # classes checked here (Findings classes such as 2004 redefine it: 1 New, 2 In Progress, ...).
    enums = [("severity_id", SEVERITY_NAMES)] + ([("status_id", STATUS_NAMES)] if spec is not None else [])
    for field, names in enums:
        value = event.get(field)
        if _is_int(value):
            caption = field[: -len("_id")]
            if value not in names:
                problems.append(f"{field} {value} is not one of {sorted(names)}")
            elif caption in event and value != 99 and event[caption] != names[value]:
                problems.append(f"{caption} {event[caption]!r} does not match {field} {value} ({names[value]!r})")
    metadata = event.get("metadata")
    if "metadata" in event and not isinstance(metadata, dict):
        problems.append("metadata must be an object")
    elif isinstance(metadata, dict):
        if metadata.get("version") != OCSF_VERSION:
            problems.append(f"metadata.version is {metadata.get('version')!r}, expected {OCSF_VERSION!r}")
        product = metadata.get("product")
        if not isinstance(product, dict) or not (product.get("name") or product.get("vendor_name")):
            problems.append("metadata.product must be an object with a name or vendor_name")
    return problems
