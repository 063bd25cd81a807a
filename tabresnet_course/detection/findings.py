"""Alerts out as OCSF 1.8.0 Detection Findings, one per alert, for a SIEM or a security data lake.

Chapter "The OCSF pipeline" teaches this file. :func:`detection_findings` turns the events whose
score is above a calibrated threshold (:mod:`tabresnet_course.detection.calibration`) into
Detection Finding events (class 2004, category 2 Findings, activity 1 Create), the class that
Splunk, Elastic, Sentinel and Amazon Security Lake ingest as detections; every finding passes
:func:`tabresnet_course.ocsf.schema.validate_event`. Where each part goes, by the 1.8.0 schema:

- ``finding_info``: ``uid`` (a UUID derived from the detector's checksum and the event's
  ``metadata.uid``, so scoring the same event with the same detector gives the same finding),
  ``title``, ``desc`` (score, percentile, threshold and the explaining fields),
  ``created_time``, ``first_seen_time`` / ``last_seen_time`` (the event's time), ``types``
  (``["Anomaly"]``), ``analytic`` (type 4, Learning (ML/DL), ``uid`` the checksum) and
  ``related_events`` (the triggering event's ``uid``, ``type_uid`` and ``type_name``: the
  schema's link from a finding to the events it is about).
- ``evidences``: one evidence artifact, the triggering event itself: its ``uid``, its
  ``type_name`` as ``name``, its entity objects in the slots the Evidence Artifacts object
  gives them (``actor``, ``device``, ``src_endpoint``, ``dst_endpoint``, ``user``,
  ``process``, ``file``, ``api``, ``http_request``, ``http_response``, ``connection_info``) and
  its other attributes (``traffic``, ``status``, ``duration``, ...) in ``data``. ``evidences``
  is the Detection Finding's *primary* attribute for "the activity that triggered a detection",
  which is exactly one event here.
- ``anomaly_analyses``: the explanation. The Anomaly Analysis object (new in 1.5) pairs
  ``anomalies`` (what deviated) with ``baselines`` (what normal looks like) for an
  ``analysis_target``: the first anomaly is the score itself against the threshold
  (``observation_type`` "Distribution Analysis", pattern ``RARE``); then one anomaly per
  explaining field of :meth:`~tabresnet_course.detection.detector.OCSFAnomalyDetector.explain`
  (the event's value), each with a baseline holding the nearest normal events' values. This
  is what ``score --explain`` writes as ``field_i`` / ``value_i`` / ``typical_i``, in the
  schema's own words rather than in ``unmapped`` text.
- ``observables``: the pivots an analyst searches on (host names, IP addresses, user, process
  and file names, ...), each pointing into ``evidences[0]`` and carrying the event's
  ``metadata.uid`` and ``type_uid`` (``event_uid``, ``type_uid``, 1.8).
- ``metadata``: ``version`` "1.8.0", ``product`` (``tabresnet_course`` and its version) whose
  ``feature`` is the detector (``uid``: its checksum, the SHA-256 of its ``config.json``).
- ``severity_id`` from the percentile, in bands of rarity like Elastic's anomaly severities
  (:data:`SEVERITY_BANDS`); ``status_id`` 1 (New); ``is_alert`` true; ``time`` the finding's
  creation; ``start_time`` / ``end_time`` the event's time; ``unmapped`` the numbers (score,
  percentile, threshold, alert rate) for a SIEM's range queries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabresnet_course.events.flat import as_flat_frame, frame_to_events
from tabresnet_course.ocsf.schema import OCSF_VERSION, SEVERITY_NAMES

__all__ = [
    "ANALYTIC_TYPE",
    "EVIDENCE_OBJECTS",
    "FINDING_NAMESPACE",
    "OBSERVABLE_PATHS",
    "SEVERITY_BANDS",
    "detection_findings",
    "finding_uid",
    "findings_jsonl",
    "severity_ids",
]

SEVERITY_BANDS: tuple[tuple[float, int], ...] = (
    (100.0, 5),
    (99.99, 4),
    (99.9, 3),
    (99.0, 2),
    (0.0, 1),
)
"""``(lowest percentile, severity_id)``, highest band first, like Elastic's critical / major /
minor / warning bands of anomaly scores but on the share of held-out normal events scoring
lower: above every held-out normal score, Critical (5); rarer than 1 in 10,000 normal events,
High (4); than 1 in 1,000, Medium (3); than 1 in 100, Low (2); otherwise Informational (1)."""

ANALYTIC_TYPE = (4, "Learning (ML/DL)")
"""``finding_info.analytic.type_id`` and ``type``: a model learned from data."""

FINDING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "tabresnet_course:detection_finding")
"""The UUID namespace of finding uids (:func:`finding_uid`)."""

EVIDENCE_OBJECTS = (
    "actor",
    "api",
    "connection_info",
    "device",
    "dst_endpoint",
    "file",
    "http_request",
    "http_response",
    "process",
    "src_endpoint",
    "user",
)
"""Objects of an event that the Evidence Artifacts object has a slot for, copied as they are."""

OBSERVABLE_PATHS: tuple[tuple[str, int, str], ...] = (
    ("device.hostname", 1, "Hostname"),
    ("src_endpoint.hostname", 1, "Hostname"),
    ("dst_endpoint.hostname", 1, "Hostname"),
    ("http_request.url.hostname", 1, "Hostname"),
    ("src_endpoint.ip", 2, "IP Address"),
    ("dst_endpoint.ip", 2, "IP Address"),
    ("user.name", 4, "User Name"),
    ("actor.user.name", 4, "User Name"),
    ("process.user.name", 4, "User Name"),
    ("process.name", 9, "Process Name"),
    ("process.parent_process.name", 9, "Process Name"),
    ("process.cmd_line", 13, "Command Line"),
    ("file.name", 7, "File Name"),
    ("file.path", 45, "File Path"),
    ("src_endpoint.location.country", 14, "Country"),
)
"""``(path in the event, observable type_id, type)``: the pivots listed as ``observables``."""

_CLASSIFICATION = frozenset(
    {
        "time",
        "class_uid",
        "class_name",
        "category_uid",
        "category_name",
        "activity_id",
        "activity_name",
        "type_uid",
        "type_name",
        "severity_id",
        "severity",
        "metadata",
    }
)


def severity_ids(percentiles: Any) -> np.ndarray:
    """``(n,)`` the ``severity_id`` of each percentile by :data:`SEVERITY_BANDS`."""
    values = np.asarray(percentiles, dtype=np.float64)
    result = np.ones(values.shape, dtype=np.int64)
    for lowest, severity in reversed(SEVERITY_BANDS):
        result[values >= lowest] = severity
    return result


def finding_uid(detector_checksum: str, event: dict[str, Any]) -> str:
    """A UUID (version 5) from the detector's checksum and the event's ``metadata.uid`` (or,
    for an event without one, its canonical JSON): stable across runs."""
    event_uid = (event.get("metadata") or {}).get("uid")
    key = event_uid if isinstance(event_uid, str) and event_uid else _canonical(event)
    return str(uuid.uuid5(FINDING_NAMESPACE, f"{detector_checksum}/{key}"))


def _canonical(event: dict[str, Any]) -> str:
    """The SHA-256 of the event's key-sorted compact JSON."""
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), default=_json_value)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_value(value: Any) -> Any:
    """JSON for the values a flat frame may hold besides plain ones: a date-time (from a
    Parquet timestamp column) as epoch milliseconds, as OCSF writes times; numpy scalars."""
    if isinstance(value, dt.datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return int(stamp.value // 1_000_000)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _milliseconds(value: Any) -> int | None:
    """An event time as integer epoch milliseconds, or ``None`` when it is not one."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return int(value) if np.isfinite(value) else None
    try:
        return _json_value(value)
    except TypeError:
        return None


def _get(event: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a nested event, or ``None``."""
    node: Any = event
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _evidence(event: dict[str, Any], event_uid: str | None) -> dict[str, Any]:
    """The triggering event as an Evidence Artifacts object."""
    evidence: dict[str, Any] = {key: event[key] for key in EVIDENCE_OBJECTS if isinstance(event.get(key), dict)}
    rest = {key: value for key, value in event.items() if key not in _CLASSIFICATION and key not in evidence}
    if rest or not evidence:  # the object needs at least one attribute among its slots and data
        evidence["data"] = rest
    name = event.get("type_name") or event.get("class_name")
    return {**({"uid": event_uid} if event_uid else {}), **({"name": name} if name else {}), **evidence}


def _observables(event: dict[str, Any], event_uid: str | None) -> list[dict[str, Any]]:
    """The event's pivots (:data:`OBSERVABLE_PATHS`) as observables inside ``evidences[0]``."""
    found = []
    for path, type_id, type_name in OBSERVABLE_PATHS:
        value = _get(event, path)
        if value is None or isinstance(value, (dict, list)) or value == "":
            continue
        observable = {"name": f"evidences[0].{path}", "type_id": type_id, "type": type_name, "value": str(value)}
        if event_uid:
            observable["event_uid"] = event_uid
        if isinstance(event.get("type_uid"), int):
            observable["type_uid"] = event["type_uid"]
        found.append(observable)
    return found


def _anomaly_analysis(event: dict[str, Any], score: float, threshold: Any, explanation: pd.DataFrame) -> dict[str, Any]:
    """The score against the threshold, then each explaining field against its neighbours."""
    score_kind = "Distribution Analysis"
    anomalies = [
        {
            "observation_parameter": "anomaly_score",
            "observation_type": score_kind,
            "observed_pattern": "RARE",
            "observations": [{"value": f"{score:.8g}"}],
        }
    ]
    baselines = [
        {
            "observation_parameter": "anomaly_score",
            "observation_type": score_kind,
            "observations": [{"value": f"{threshold.score:.8g}"}],
        }
    ]
    for row in explanation.itertuples(index=False):
        kind = "Nearest Neighbour Analysis"
        anomalies.append(
            {"observation_parameter": row.field, "observation_type": kind, "observations": [{"value": str(row.value)}]}
        )
        baselines.append(
            {
                "observation_parameter": row.field,
                "observation_type": kind,
                "observations": [{"value": str(row.typical)}],
            }
        )
    target = {"name": str(event.get("class_name") or event.get("class_uid") or "event"), "type": "OCSF event class"}
    return {"analysis_targets": [target], "anomalies": anomalies, "baselines": baselines}


def _description(score: float, percentile: float, threshold: Any, explanation: pd.DataFrame) -> str:
    """``finding_info.desc``: the numbers, then the top fields with their typical values."""
    text = (
        f"Anomaly score {score:.6g} is above the alert threshold {threshold.score:.6g} (alert rate "
        f"{threshold.alert_rate:.3g}); {percentile:.3f}% of {threshold.held_out} held-out normal baseline "
        f"events score lower."
    )
    if len(explanation):
        fields = "; ".join(f"{row.field} = {row.value} (typical: {row.typical})" for row in explanation.itertuples())
        text += f" Top fields: {fields}."
    return text


def detection_findings(
    events: Any,
    scores: Any,
    detector: Any,
    *,
    alert_rate: float | None = None,
    alerts_per_day: float | None = None,
    threshold: Any = None,
    top: int = 3,
    created_time: int | None = None,
) -> list[dict[str, Any]]:
    """One OCSF 1.8.0 Detection Finding (a nested dict) per event of ``events`` whose score is
    above the threshold, in input order (chapter "The OCSF pipeline"; the module docstring
    says where each part goes).

    ``scores`` are the detector's scores of ``events`` (one per event); the threshold is
    ``threshold`` (an :class:`~tabresnet_course.detection.calibration.AlertThreshold`) or the
    detector's for ``alert_rate`` / ``alerts_per_day`` (its calibration's default rate when
    neither is given); ``top`` explaining fields per finding; ``created_time`` in epoch
    milliseconds (default: now)."""
    frame = as_flat_frame(events).reset_index(drop=True)
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(frame),):
        raise ValueError(f"expected one score per event ({len(frame)}), got shape {values.shape}")
    if threshold is None:
        threshold = detector.alert_threshold(alert_rate=alert_rate, alerts_per_day=alerts_per_day)
    rows = np.flatnonzero(values > threshold.score)
    if len(rows) == 0:
        return []
    created = int(created_time) if created_time is not None else int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    alerting = frame.iloc[rows].reset_index(drop=True)
    percentiles = detector.percentiles(values[rows])
    severities = severity_ids(percentiles)
    explained = detector.explain(alerting, top)
    by_event = dict(tuple(explained.groupby("event", sort=True)))
    context = _Context(threshold, detector.checksum, detector.config.scorer, created)
    return [
        _finding(
            event,
            float(values[rows[position]]),
            float(percentiles[position]),
            int(severities[position]),
            by_event.get(position, explained.iloc[:0]),
            context,
        )
        for position, event in enumerate(frame_to_events(alerting))
    ]


@dataclass(frozen=True)
class _Context:
    """What every finding of one call shares: the threshold, the detector and the creation time."""

    threshold: Any
    checksum: str
    scorer: str
    created: int

    def analytic(self) -> dict[str, Any]:
        """``finding_info.analytic``: the detector, a learned model, named by its checksum."""
        return {
            "name": f"TabularResNet anomaly detector ({self.scorer})",
            "uid": self.checksum,
            "type_id": ANALYTIC_TYPE[0],
            "type": ANALYTIC_TYPE[1],
            "algorithm": self.scorer,
        }

    def product(self) -> dict[str, Any]:
        """``metadata.product``: this package, with the detector as its ``feature``."""
        from tabresnet_course import __version__

        return {
            "name": "tabresnet_course",
            "vendor_name": "tabresnet_course",
            "version": __version__,
            "feature": {"name": "OCSFAnomalyDetector", "uid": self.checksum, "version": __version__},
        }


def _finding(
    event: dict[str, Any],
    score: float,
    percentile: float,
    severity_id: int,
    explanation: pd.DataFrame,
    context: _Context,
) -> dict[str, Any]:
    """One Detection Finding for one triggering event."""
    threshold, created = context.threshold, context.created
    event_uid = (event.get("metadata") or {}).get("uid")
    event_uid = event_uid if isinstance(event_uid, str) and event_uid else None
    uid = finding_uid(context.checksum, event)
    kind = event.get("type_name") or event.get("class_name") or "event"
    title = f"Anomalous {kind}"
    info: dict[str, Any] = {
        "uid": uid,
        "title": title,
        "desc": _description(score, percentile, threshold, explanation),
        "created_time": created,
        "types": ["Anomaly"],
        "analytic": context.analytic(),
    }
    event_time = _milliseconds(event.get("time"))
    if event_time is not None:
        info["first_seen_time"] = info["last_seen_time"] = event_time
    if event_uid:
        related = {"uid": event_uid}
        related.update({key: event[key] for key in ("type_uid", "type_name") if key in event})
        info["related_events"] = [related]
    fields = ", ".join(str(name) for name in explanation["field"])
    finding: dict[str, Any] = {
        "time": created,
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES[severity_id],
        "status_id": 1,
        "status": "New",
        "is_alert": True,
        "message": f"{title} (percentile {percentile:.3f})" + (f"; top fields: {fields}" if fields else ""),
        "metadata": {"uid": uid, "version": OCSF_VERSION, "product": context.product()},
        "finding_info": info,
        "evidences": [_evidence(event, event_uid)],
        "anomaly_analyses": [_anomaly_analysis(event, score, threshold, explanation)],
        "unmapped": {
            "anomaly_score": score,
            "percentile": percentile,
            "threshold": threshold.score,
            "alert_rate": threshold.alert_rate,
        },
    }
    observables = _observables(event, event_uid)
    if observables:
        finding["observables"] = observables
    if event_time is not None:
        finding["start_time"] = finding["end_time"] = event_time
    return finding


def findings_jsonl(findings: Iterable[dict[str, Any]]) -> str:
    """The findings as JSON Lines (compact, one finding per line; date-times as epoch
    milliseconds), what ``score --findings`` writes and a SIEM or lake ingests."""
    return "".join(
        json.dumps(finding, separators=(",", ":"), allow_nan=False, default=_json_value) + "\n" for finding in findings
    )
