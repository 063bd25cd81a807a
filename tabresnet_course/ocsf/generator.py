"""A seeded generator of synthetic OCSF 1.8.0 events: the public face of the generator.

Chapter "The OCSF pipeline" teaches this file. :func:`generate_ocsf_events` draws every
attribute of every event as a numpy array first (one vectorised pass per event class) and keeps
the result as a *flat* table whose columns are dotted OCSF attribute paths
(``http_response.latency``); the nested JSON dictionaries an OCSF producer would emit are built
from that table only when asked (:meth:`GeneratedEvents.to_events`). Anomaly labels never
appear inside the events: they live in :attr:`GeneratedEvents.labels`, keyed by
``metadata.uid``.

The generator is split by job into sibling modules:

- :mod:`tabresnet_course.ocsf.schema`: OCSF 1.8.0 identifiers, captions and :func:`validate_event`;
- :mod:`tabresnet_course.ocsf.profiles`: what differs between organisations (:class:`GeneratorProfile`);
- :mod:`tabresnet_course.ocsf.world`: the simulated organisation (:class:`World`, :func:`build_world`);
- :mod:`tabresnet_course.ocsf.classes`: normal behaviour of the six generated classes;
- :mod:`tabresnet_course.ocsf.scenarios`: the seven injected attack scenarios.

This module assembles their per-class blocks into one time-ordered table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabresnet_course.events.flat import frame_to_events
from tabresnet_course.ocsf.classes import CLASS_BUILDERS, GENERATED_CLASSES
from tabresnet_course.ocsf.profiles import DEFAULT_PROFILE, GeneratorProfile, get_profile
from tabresnet_course.ocsf.scenarios import (
    SCENARIO_BUILDERS,
    SCENARIOS,
    scenario_counts,
)
from tabresnet_course.ocsf.schema import (
    CATEGORY_NAMES,
    OCSF_CLASSES,
    OCSF_VERSION,
    SEVERITY_NAMES,
    STATUS_NAMES,
    captions,
)
from tabresnet_course.ocsf.world import (
    Block,
    build_world,
    constant,
    index_of,
)

__all__ = [
    "DEFAULT_START",
    "GeneratedEvents",
    "generate_baseline_and_evaluation",
    "generate_ocsf_events",
]

DEFAULT_START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
"""Default first instant of a generated period (a Monday, 00:00 UTC)."""

PRODUCT_NAME = "tabresnet-course log simulator"
VENDOR_NAME = "tabresnet_course"

# --------------------------------------------------------------------------------------------
# Assembling per-class blocks into one flat table
# --------------------------------------------------------------------------------------------

_BASE_COLUMNS = (
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
    "status_id",
    "status",
    "duration",
    "metadata.uid",
    "metadata.version",
    "metadata.product.name",
    "metadata.product.vendor_name",
)


def _finish_block(class_uid: int, block: Block) -> Block:
    """Add the identifier arithmetic, captions and metadata every OCSF event carries."""
    n = len(block["time"])
    spec = OCSF_CLASSES[class_uid]
    activity = np.asarray(block["activity_id"], dtype=np.int64)
    class_name = spec["name"]
    activity_name = captions(spec["activities"], activity)
    out: Block = {
        "time": np.asarray(block["time"], dtype=np.int64),
        "class_uid": np.full(n, class_uid, dtype=np.int64),
        "class_name": constant(class_name, n),
        "category_uid": np.full(n, class_uid // 1000, dtype=np.int64),
        "category_name": constant(CATEGORY_NAMES[class_uid // 1000], n),
        "activity_id": activity,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity,
        "type_name": np.array([f"{class_name}: {a}" for a in spec["activities"].values()], dtype=object)[
            index_of(tuple(spec["activities"]), activity)
        ],
        "severity_id": np.asarray(block["severity_id"], dtype=np.int64),
        "severity": captions(SEVERITY_NAMES, np.asarray(block["severity_id"])),
        "status_id": np.asarray(block["status_id"], dtype=np.int64),
        "status": captions(STATUS_NAMES, np.asarray(block["status_id"])),
    }
    if "duration" in block:
        out["duration"] = np.asarray(block["duration"], dtype=np.int64)
    out["metadata.version"] = constant(OCSF_VERSION, n)
    out["metadata.product.name"] = constant(PRODUCT_NAME, n)
    out["metadata.product.vendor_name"] = constant(VENDOR_NAME, n)
    for key, values in block.items():
        if key not in out:
            values = np.asarray(values)
            out[key] = values.astype(np.int64) if values.dtype.kind in "iu" else values
    return out


def _uuid4_strings(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random (version 4) UUID strings built from the generator's bits."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return np.array(
        [
            f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
            for i in range(0, 32 * n, 32)
        ],
        dtype=object,
    )


def _assemble(
    blocks: list[tuple[Block, str, np.ndarray | None]], rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stack per-class blocks (with their scenario and campaign ids) into one time-ordered flat
    frame plus its label frame."""
    sizes = [len(b["time"]) for b, _, _ in blocks]
    total = sum(sizes)
    columns: list[str] = list(_BASE_COLUMNS)
    for block, _, _ in blocks:
        columns.extend(k for k in block if k not in columns)
    order = np.argsort(np.concatenate([b["time"] for b, _, _ in blocks]), kind="stable")
    uids = _uuid4_strings(rng, total)
    data: dict[str, Any] = {}
    offsets = np.cumsum([0] + sizes)
    for col in columns:
        if col == "metadata.uid":
            data[col] = uids
            continue
        present = [b for b, _, _ in blocks if col in b]
        sample = present[0][col]
        if len(present) == len(blocks):
            values = np.concatenate([b[col] for b, _, _ in blocks])[order]
            data[col] = values
            continue
        mask = np.zeros(total, dtype=bool)
        if sample.dtype.kind == "O":
            values = np.full(total, None, dtype=object)
        else:
            values = np.zeros(total, dtype=sample.dtype)
        for (block, _, _), lo, hi in zip(blocks, offsets[:-1], offsets[1:]):
            if col in block:
                values[lo:hi] = block[col]
                mask[lo:hi] = True
        values, mask = values[order], mask[order]
        if sample.dtype.kind in "iu":
            data[col] = pd.arrays.IntegerArray(values.astype(np.int64), ~mask)
        elif sample.dtype.kind == "b":
            data[col] = pd.arrays.BooleanArray(values, ~mask)
        elif sample.dtype.kind == "f":
            data[col] = np.where(mask, values, np.nan)
        else:
            data[col] = values
    # Strings stay object columns (None marks missing): converting to pandas' "str" dtype would
    # cost more than drawing the events.
    frame = pd.DataFrame(
        {
            c: pd.Series(v, dtype=object, copy=False) if getattr(v, "dtype", None) == np.dtype(object) else v
            for c, v in data.items()
        },
        columns=columns,
        copy=False,
    )
    scenario = np.concatenate([np.full(len(b["time"]), s, dtype=object) for b, s, _ in blocks])[order]
    campaign = np.concatenate([np.full(len(b["time"]), None, dtype=object) if c is None else c for b, _, c in blocks])[
        order
    ]
    labels = pd.DataFrame(
        {
            "uid": pd.Series(uids, dtype=object),
            "is_anomaly": scenario != "normal",
            "scenario": pd.Series(scenario, dtype=object),
            "campaign": pd.Series(campaign, dtype=object),
        }
    )
    return frame, labels


# --------------------------------------------------------------------------------------------
# Public generator API
# --------------------------------------------------------------------------------------------


@dataclass
class GeneratedEvents:
    """Output of :func:`generate_ocsf_events` (chapter "The OCSF pipeline").

    ``frame`` is the flat table (one row per event, dotted OCSF columns, time-ordered);
    ``labels`` has one row per event: ``uid`` (= ``metadata.uid``), ``is_anomaly``,
    ``scenario`` (``"normal"`` or one of :data:`~tabresnet_course.ocsf.scenarios.SCENARIOS`) and
    ``campaign`` (``"<scenario>/<seed>/<k>"``, the same for the events of one campaign: one
    attacker, victim and time window; ``None`` for normal events). Labels are never inside events.
    """

    frame: pd.DataFrame
    labels: pd.DataFrame
    start: dt.datetime
    days: int
    seed: int
    anomalies: bool
    profile: str = DEFAULT_PROFILE

    def __len__(self) -> int:
        return len(self.frame)

    def to_events(self) -> list[dict[str, Any]]:
        """The events as nested OCSF dictionaries (JSON-ready, same order as ``frame``)."""
        return frame_to_events(self.frame)

    def scenario_counts(self) -> dict[str, int]:
        """Number of events per label (``"normal"`` included)."""
        return {str(k): int(v) for k, v in self.labels["scenario"].value_counts(sort=False).items()}


def generate_ocsf_events(
    num_events: int = 10_000,
    days: int = 7,
    seed: int = 0,
    anomalies: bool = True,
    start: dt.datetime = DEFAULT_START,
    num_users: int | None = None,
    world_seed: int = 0,
    profile: str | GeneratorProfile = DEFAULT_PROFILE,
    counts: Mapping[str, int] | None = None,
) -> GeneratedEvents:
    """Generate ``num_events`` OCSF 1.8.0 events over ``days`` days from ``start`` (UTC).

    Chapter "The OCSF pipeline".

    The organisation comes from ``profile`` (a name in
    :data:`~tabresnet_course.ocsf.profiles.PROFILES` or a
    :class:`~tabresnet_course.ocsf.profiles.GeneratorProfile`) and ``world_seed`` (its users; their
    number defaults to the profile's); the events from ``seed``; the same arguments always give
    byte-identical events. With ``anomalies=True`` about 2 % of the events (exact numbers:
    :func:`~tabresnet_course.ocsf.scenarios.scenario_counts`, or ``counts`` events per scenario
    when given) belong to injected, labelled campaigns, listed roughly from easy to hard for a
    detector fitted on clean data (as in the default ``"enterprise"`` profile):

    - ``data_exfiltration``: a workstation uploads gigabytes (``traffic.bytes_out`` around
      3e9) over hours at night to a rare external address in 203.0.113.0/24.
    - ``port_scan``: one workstation sends hundreds of connection attempts within five
      minutes to ports 1-1024 (and some high ports) of one server; most are refused (5) or
      reset (3), with a few bytes each.
    - ``latency_error_storm``: for half an hour the ``orders-api`` service answers 503, 504
      or 500 with 2-30 s of latency.
    - ``brute_force``: bursts of about 60 failed network logons within ten minutes from one
      external address (192.0.2.0/24, an unusual country) against real and generic accounts.
    - ``privilege_escalation``: on a web server, ``nginx`` spawns ``sh`` that downloads a
      script, spawns a pty, sets user id to root (activity 5 Set User ID) and reads
      ``/etc/shadow``.
    - ``off_hours_new_country``: a user logs on in the middle of their night from a new
      country and address without MFA, then reads secrets, buckets and IAM data over the API.
    - ``latency_drift`` (hard): over the second half of the period the ``search`` service's
      latency grows from x1.5 to x3 of normal; every other attribute looks normal.

    The ``"cloud_saas"`` profile is a 40-person software company: most events are HTTP and
    cloud API calls (class mix 45 % HTTP, 28 % API), logons go through SSO only, hours are
    flexible and weekends busy, servers sit in a cloud VPC. Its attacks have the same names
    but other sizes, durations and timing: a low-and-slow brute force (25 logons over six
    hours), scans of 60 ports over two hours, exfiltration in 16 uploads over six hours, short
    storms (40 errors in five minutes) on ``checkout-api``, drift on ``graphql``.

    With ``anomalies=False`` the period is clean (a baseline to fit a detector on).
    """
    if num_events < 1:
        raise ValueError(f"num_events must be positive, got {num_events}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (use datetime.timezone.utc)")
    profile = get_profile(profile)
    if counts is not None:
        unknown = set(counts) - set(SCENARIOS)
        if unknown or any(int(c) < 0 for c in counts.values()):
            raise ValueError(f"counts must map scenarios of {SCENARIOS} to non-negative numbers, got {dict(counts)}")
    if not anomalies:
        counts = {}
    elif counts is None:
        counts = scenario_counts(num_events, profile)
    num_normal = num_events - sum(counts.values())
    if num_normal < num_events // 2:
        raise ValueError(f"num_events={num_events} is too small to hold the injected scenarios; use at least 2000")
    world = build_world(num_users, world_seed, profile)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7E7]))
    start_ms = int(start.astimezone(dt.UTC).timestamp() * 1000)
    class_mix = np.array(profile.class_mix)
    per_class = rng.multinomial(num_normal, class_mix / class_mix.sum())
    blocks: list[tuple[Block, str, np.ndarray | None]] = []
    for class_uid, n in zip(GENERATED_CLASSES, per_class):
        block = CLASS_BUILDERS[class_uid](rng, world, int(n), start_ms, days)
        blocks.append((_finish_block(class_uid, block), "normal", None))
    for name, count in counts.items():
        if count == 0:
            continue
        for class_uid, block, campaign in SCENARIO_BUILDERS[name](rng, world, int(count), start_ms, days):
            ids = np.array([f"{name}/{seed}/{k}" for k in range(int(campaign.max()) + 1)], dtype=object)
            blocks.append((_finish_block(class_uid, block), name, ids[campaign]))
    frame, labels = _assemble(blocks, rng)
    return GeneratedEvents(frame, labels, start, days, seed, anomalies, profile.name)


def generate_baseline_and_evaluation(
    num_baseline: int = 20_000,
    num_evaluation: int = 10_000,
    baseline_days: int = 7,
    evaluation_days: int = 3,
    seed: int = 0,
    start: dt.datetime = DEFAULT_START,
    num_users: int | None = None,
    world_seed: int = 0,
    profile: str | GeneratorProfile = DEFAULT_PROFILE,
) -> tuple[GeneratedEvents, GeneratedEvents]:
    """A clean baseline period and a later evaluation period with injected scenarios.

    Chapter "The OCSF pipeline".

    Both periods share the organisation (``profile``, ``world_seed``); the evaluation period
    starts when the baseline ends and uses the event seed ``seed + 1``, so training and test
    data differ in time and in random draws.
    """
    baseline = generate_ocsf_events(
        num_baseline, baseline_days, seed, False, start, num_users, world_seed, profile=profile
    )
    evaluation = generate_ocsf_events(
        num_evaluation,
        evaluation_days,
        seed + 1,
        True,
        start + dt.timedelta(days=baseline_days),
        num_users,
        world_seed,
        profile=profile,
    )
    return baseline, evaluation
