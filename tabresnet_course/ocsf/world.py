"""The simulated organisation behind the OCSF generator, and vectorised drawing helpers.

Chapter "The OCSF pipeline" (through :mod:`tabresnet_course.ocsf.generator`). The organisation
(:class:`World`) has users with a department, a home ``/24`` subnet, a country, working hours,
an MFA flag and an activity weight; servers; and HTTP services with their own lognormal
latency and small error rates. It is drawn from its own seed (:func:`build_world`), so that
periods generated with different event seeds describe the same people and machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

# --------------------------------------------------------------------------------------------
# The simulated organisation
# --------------------------------------------------------------------------------------------

DEPARTMENTS = ("engineering", "finance", "sales", "hr", "it")
_DEPARTMENT_P = (0.35, 0.15, 0.25, 0.10, 0.15)
COUNTRIES = ("US", "GB", "DE", "IN")
_COUNTRY_P = (0.55, 0.15, 0.15, 0.15)
_WORK_START_UTC = {"US": 13.5, "GB": 8.0, "DE": 7.0, "IN": 3.5}

ATTACKER_COUNTRIES = ("BR", "NL", "RO", "VN", "NG")
"""Countries the injected attacks come from (no user lives there)."""

_FIRST = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "karl",
    "laura",
    "mallory",
    "nina",
    "oscar",
    "peggy",
    "quinn",
    "rupert",
    "sybil",
    "trent",
    "ursula",
    "victor",
    "wendy",
    "xavier",
    "yara",
    "zoe",
    "amir",
    "bea",
    "chen",
    "dana",
    "emeka",
    "fatima",
    "goran",
    "hana",
    "ines",
    "jonas",
    "kenji",
    "lena",
    "mateo",
    "noor",
)
_LAST = (
    "smith",
    "jones",
    "garcia",
    "miller",
    "davis",
    "lopez",
    "wilson",
    "anderson",
    "thomas",
    "moore",
    "martin",
    "lee",
    "walker",
    "hall",
    "young",
    "king",
    "wright",
    "scott",
    "green",
    "baker",
    "adams",
    "nelson",
    "hill",
    "campbell",
    "mitchell",
    "roberts",
    "carter",
    "phillips",
    "evans",
    "turner",
    "torres",
    "parker",
    "collins",
    "edwards",
    "stewart",
    "morris",
    "murphy",
    "cook",
    "rogers",
    "morgan",
)

# Servers: hostname -> IP.
SERVERS: dict[str, str] = {
    "dc01": "10.0.0.10",
    "files01": "10.0.0.20",
    "jump01": "10.0.0.30",
    "sso": "10.0.0.40",
    "vpn": "10.0.0.50",
    "web01": "10.0.1.11",
    "web02": "10.0.1.12",
    "db01": "10.0.2.10",
}

# HTTP services: name, hostname, ip, port, median latency (ms), lognormal sigma, 5xx rate, paths.
HTTP_SERVICES: tuple[tuple[str, str, str, int, float, float, float, tuple[str, ...]], ...] = (
    (
        "portal",
        "portal.corp.example",
        "10.0.1.11",
        443,
        80.0,
        0.45,
        0.004,
        ("/", "/login", "/dashboard", "/api/v1/profile", "/api/v1/notifications/{n}"),
    ),
    (
        "orders-api",
        "orders.corp.example",
        "10.0.1.12",
        443,
        120.0,
        0.55,
        0.008,
        ("/api/v2/orders", "/api/v2/orders/{n}", "/api/v2/orders/{n}/items", "/api/v2/customers/{n}"),
    ),
    (
        "billing-api",
        "billing.corp.example",
        "10.0.1.13",
        8443,
        200.0,
        0.5,
        0.006,
        ("/api/v1/invoices", "/api/v1/invoices/{n}", "/api/v1/payments/{uuid}"),
    ),
    ("search", "search.corp.example", "10.0.1.14", 443, 60.0, 0.4, 0.003, ("/search", "/suggest", "/search/advanced")),
    (
        "wiki",
        "wiki.corp.example",
        "10.0.1.15",
        443,
        150.0,
        0.5,
        0.004,
        ("/pages/{n}", "/pages/{n}/edit", "/attachments/{hex}"),
    ),
    (
        "git",
        "git.corp.example",
        "10.0.1.16",
        443,
        100.0,
        0.6,
        0.005,
        ("/repos/platform/{n}", "/repos/platform/{n}/commits/{hex}", "/repos/data/pulls/{n}"),
    ),
)


@dataclass(frozen=True)
class World:
    """The simulated organisation: one row per user (chapter "The OCSF pipeline").

    Built by :func:`build_world` from its own seed, so that a baseline and an evaluation period
    generated with different event seeds still describe the same people and machines.
    """

    user_name: np.ndarray  # (U,) object
    department: np.ndarray  # (U,) object
    department_index: np.ndarray  # (U,) int
    ip: np.ndarray  # (U,) object, workstation address inside the home /24
    subnet: np.ndarray  # (U,) object, e.g. "10.20.3.0/24"
    home_ip: np.ndarray  # (U,) object, public address used over the VPN
    country: np.ndarray  # (U,) object, ISO 3166 alpha-2
    hostname: np.ndarray  # (U,) object, the user's workstation
    work_start_utc: np.ndarray  # (U,) float, hour of day (UTC) the working day starts
    work_hours: np.ndarray  # (U,) float, length of the working day in hours
    has_mfa: np.ndarray  # (U,) bool
    is_admin: np.ndarray  # (U,) bool
    weight: np.ndarray  # (U,) float, relative activity

    @property
    def num_users(self) -> int:
        """Number of users in the world."""
        return len(self.user_name)


def build_world(num_users: int = 200, seed: int = 0) -> World:
    """Draw the users of the simulated organisation (chapter "The OCSF pipeline")."""
    if num_users < 10 or num_users > len(_FIRST) * len(_LAST):
        raise ValueError(f"num_users must be between 10 and {len(_FIRST) * len(_LAST)}, got {num_users}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    pair = rng.choice(len(_FIRST) * len(_LAST), size=num_users, replace=False)
    names = np.array([f"{_FIRST[p // len(_LAST)]}.{_LAST[p % len(_LAST)]}" for p in pair], dtype=object)
    dept_index = rng.choice(len(DEPARTMENTS), size=num_users, p=_DEPARTMENT_P)
    department = np.array(DEPARTMENTS, dtype=object)[dept_index]
    subnet_third = rng.integers(0, 4, size=num_users)
    subnet_key = dept_index * 4 + subnet_third
    host = np.zeros(num_users, dtype=np.int64)
    for key in np.unique(subnet_key):  # number hosts within each /24
        members = np.flatnonzero(subnet_key == key)
        host[members] = 10 + np.arange(len(members))
    ip = np.array([f"10.{20 + d}.{s}.{h}" for d, s, h in zip(dept_index, subnet_third, host)], dtype=object)
    subnet = np.array([f"10.{20 + d}.{s}.0/24" for d, s in zip(dept_index, subnet_third)], dtype=object)
    home_ip = np.array([f"198.51.100.{100 + i % 150}" for i in range(num_users)], dtype=object)
    country = np.array(COUNTRIES, dtype=object)[rng.choice(len(COUNTRIES), size=num_users, p=_COUNTRY_P)]
    hostname = np.array([f"ws-{d[:3]}-{i:03d}" for i, d in enumerate(department)], dtype=object)
    work_start = np.array([_WORK_START_UTC[c] for c in country]) + rng.normal(0.0, 0.75, size=num_users)
    work_hours = rng.uniform(7.5, 10.0, size=num_users)
    has_mfa = rng.random(num_users) < 0.85
    is_admin = (department == "it") | ((department == "engineering") & (rng.random(num_users) < 0.2))
    weight = rng.lognormal(0.0, 0.7, size=num_users)
    return World(
        names,
        department,
        dept_index,
        ip,
        subnet,
        home_ip,
        country,
        hostname,
        work_start,
        work_hours,
        has_mfa,
        is_admin,
        weight,
    )


# --------------------------------------------------------------------------------------------
# Vectorised drawing helpers
# --------------------------------------------------------------------------------------------

Block = dict[str, np.ndarray]
"""Columns of one batch of events of a single class: dotted path -> array of equal length."""


def constant(value: Any, n: int) -> np.ndarray:
    """An array of ``n`` copies of ``value`` (object dtype for strings)."""
    if isinstance(value, str):
        out = np.empty(n, dtype=object)
        out[:] = value
        return out
    return np.full(n, value)


def pick(options: tuple | list, idx: np.ndarray) -> np.ndarray:
    """``options[idx]`` as an object array (for catalogues of strings)."""
    return np.array(options, dtype=object)[idx]


def lognormal_int(
    rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int, minimum: int = 1
) -> np.ndarray:
    """Integer draws from a lognormal with the given median, at least ``minimum``."""
    values = rng.lognormal(np.log(median), sigma, size=n)
    return np.maximum(np.rint(values), minimum).astype(np.int64)


def _day_weights(start_ms: int, days: int) -> np.ndarray:
    """Probability of each day of the period: weekends carry a fifth of a weekday's traffic."""
    weekday = (start_ms // MS_PER_DAY + np.arange(days) + 3) % 7  # 1970-01-01 was a Thursday
    w = np.where(weekday >= 5, 0.2, 1.0)
    return w / w.sum()


def user_times(
    rng: np.random.Generator, world: World, users: np.ndarray, start_ms: int, days: int, in_hours: float = 0.88
) -> np.ndarray:
    """Epoch-ms timestamps: mostly inside each user's working hours, weekends quieter."""
    n = len(users)
    day = rng.choice(days, size=n, p=_day_weights(start_ms, days))
    working = rng.random(n) < in_hours
    hour = (
        np.where(
            working,
            world.work_start_utc[users] + rng.random(n) * world.work_hours[users],
            rng.random(n) * 24.0,
        )
        % 24.0
    )
    return start_ms + day * MS_PER_DAY + (hour * MS_PER_HOUR).astype(np.int64)


def uniform_times(rng: np.random.Generator, n: int, start_ms: int, days: int) -> np.ndarray:
    """Epoch-ms timestamps spread evenly over the period (machine activity)."""
    return start_ms + rng.integers(0, days * MS_PER_DAY, size=n)


def index_of(options: tuple, values: np.ndarray) -> np.ndarray:
    """Position of each value in ``options`` (vectorised through a dictionary of codes)."""
    codes, uniques = pd.factorize(values)
    table = np.array([options.index(u) for u in uniques], dtype=np.int64)
    return table[codes]
