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
    2: "Findings",
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
    2004: {
        "name": "Detection Finding",
        "activities": {1: "Create", 2: "Update", 3: "Close"},
        "required": ("finding_info",),
        "statuses": {
            0: "Unknown",
            1: "New",
            2: "In Progress",
            3: "Suppressed",
            4: "Resolved",
            5: "Archived",
            6: "Deleted",
            99: "Other",
        },
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
    "start_time",
    "end_time",
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
    "finding_info.created_time",
    "finding_info.first_seen_time",
    "finding_info.last_seen_time",
    "finding_info.modified_time",
)
_REQUIRED_PATHS = {4002: ("http_response.code",), 6003: ("api.operation",), 2004: ("finding_info.uid",)}
_EVIDENCE_SLOTS = (
    "actor",
    "api",
    "connection_info",
    "data",
    "database",
    "databucket",
    "device",
    "dst_endpoint",
    "email",
    "file",
    "process",
    "query",
    "resources",
    "src_endpoint",
    "url",
    "user",
    "job",
    "script",
)
"""The Evidence Artifacts object's ``at_least_one`` constraint (OCSF 1.8.0)."""


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


def _objects(event: dict, name: str, problems: list[str], prefix: str = "") -> list[tuple[str, dict]]:
    """``(path, object)`` for each element of the array attribute ``name`` (paths start with
    ``prefix``), when it is present; one that is not an array of objects adds a problem instead."""
    found, value = _get_path(event, name)
    if not found:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(f"{prefix}{name} must be an array of objects")
        return []
    return [(f"{prefix}{name}[{i}]", item) for i, item in enumerate(value)]


def _finding_problems(event: dict) -> list[str]:
    """The Detection Finding (2004) checks: ``finding_info.uid`` a string, ``is_alert`` a
    boolean, each evidence with one of the Evidence Artifacts slots, each observable with an
    integer ``type_id``, each anomaly analysis with its required ``analysis_targets`` (named) and
    ``anomalies``, and each anomaly or baseline with an ``observation_parameter`` and
    ``observations`` whose ``value`` is a string."""
    problems: list[str] = []
    uid = _get_path(event, "finding_info.uid")[1]
    if uid is not None and not (isinstance(uid, str) and uid):
        problems.append(f"finding_info.uid must be a non-empty string, got {uid!r}")
    if "is_alert" in event and not isinstance(event["is_alert"], bool):
        problems.append(f"is_alert must be a boolean, got {event['is_alert']!r}")
    _objects(event, "finding_info.related_events", problems)
    for path, evidence in _objects(event, "evidences", problems):
        if not any(slot in evidence for slot in _EVIDENCE_SLOTS):
            problems.append(f"{path} needs at least one of {', '.join(_EVIDENCE_SLOTS)}")
    for path, observable in _objects(event, "observables", problems):
        if not _is_int(observable.get("type_id")):
            problems.append(f"{path}.type_id must be an integer")
    for path, analysis in _objects(event, "anomaly_analyses", problems):
        for name in ("analysis_targets", "anomalies"):
            if name not in analysis:
                problems.append(f"{path} requires {name!r}")
        for target_path, target in _objects(analysis, "analysis_targets", problems, f"{path}."):
            if not isinstance(target.get("name"), str):
                problems.append(f"{target_path}.name must be a string")
        for name in ("anomalies", "baselines"):
            for item_path, item in _objects(analysis, name, problems, f"{path}."):
                if not isinstance(item.get("observation_parameter"), str):
                    problems.append(f"{item_path}.observation_parameter must be a string")
                if "observations" not in item:
                    problems.append(f"{item_path} requires 'observations'")
                for observation_path, observation in _objects(item, "observations", problems, f"{item_path}."):
                    if not isinstance(observation.get("value"), str):
                        problems.append(f"{observation_path}.value must be a string")
    return problems


def validate_event(event: dict) -> list[str]:
    """Problems with one OCSF 1.8.0 event (an empty list means valid); chapter "The OCSF pipeline".

    Checks the required base attributes and their types, the identifier arithmetic
    (``category_uid = class_uid // 1000``, ``type_uid = class_uid * 100 + activity_id``),
    allowed ``activity_id`` / ``severity_id`` / ``status_id`` values and captions,
    ``metadata.version`` and ``metadata.product``, integer typing of counters and durations,
    and, for the generator's classes and Detection Finding (2004), the objects the class
    requires (``user`` for 3002, ``http_response.code`` for 4002, ``api.operation`` for 6003,
    ``process`` for 1007, ``file`` for 1001, ``finding_info.uid`` for 2004, ...); for 2004 also
    its own ``status_id`` enum (1 New ... 6 Deleted) and the shape of ``evidences``,
    ``observables`` and ``anomaly_analyses``. Other classes get the
    base checks only (their ``status_id`` enum may differ from the base event's, so it is not
    checked).
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
        if class_uid == 2004:
            problems.extend(_finding_problems(event))
    # severity_id is the same enum in every class; status_id is the base event's enum except where a
    # class redefines it (Findings: 1 New, 2 In Progress, ...), so it is checked for the known classes only.
    statuses = spec.get("statuses", STATUS_NAMES) if spec is not None else None
    enums = [("severity_id", SEVERITY_NAMES)] + ([("status_id", statuses)] if statuses is not None else [])
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
