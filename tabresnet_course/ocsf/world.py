"""The simulated organisation behind the OCSF generator, and vectorised drawing helpers.

Chapter "The OCSF pipeline" (through :mod:`tabresnet_course.ocsf.generator`). The organisation
(:class:`World`) has users with a department, a home ``/24`` subnet, a country, working hours,
an MFA flag and an activity weight, plus the servers, HTTP services and habits of its
:class:`~tabresnet_course.ocsf.profiles.GeneratorProfile`. It is drawn from its own seed
(:func:`build_world`), so that periods generated with different event seeds describe the same
people and machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabresnet_course.ocsf.profiles import DEFAULT_PROFILE, GeneratorProfile, get_profile
from tabresnet_course.values import MS_PER_DAY, MS_PER_HOUR

__all__ = [
    "ATTACKER_COUNTRIES",
    "Block",
    "DEPARTMENTS",
    "World",
    "build_world",
    "constant",
    "index_of",
    "lognormal_int",
    "pick",
    "uniform_times",
    "user_times",
]


# --------------------------------------------------------------------------------------------
# The simulated organisation
# --------------------------------------------------------------------------------------------

DEPARTMENTS = ("engineering", "finance", "sales", "hr", "it")
"""Departments users belong to (their shares are a profile's ``department_p``)."""

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
    profile: GeneratorProfile  # the organisation's servers, services, habits and attackers

    @property
    def num_users(self) -> int:
        """Number of users in the world."""
        return len(self.user_name)


def build_world(
    num_users: int | None = None, seed: int = 0, profile: str | GeneratorProfile = DEFAULT_PROFILE
) -> World:
    """Draw the users of the simulated organisation of ``profile`` (chapter "The OCSF pipeline").

    ``num_users`` defaults to the profile's.
    """
    profile = get_profile(profile)
    num_users = profile.num_users if num_users is None else num_users
    if num_users < 10 or num_users > len(_FIRST) * len(_LAST):
        raise ValueError(f"num_users must be between 10 and {len(_FIRST) * len(_LAST)}, got {num_users}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    pair = rng.choice(len(_FIRST) * len(_LAST), size=num_users, replace=False)
    names = np.array([f"{_FIRST[p // len(_LAST)]}.{_LAST[p % len(_LAST)]}" for p in pair], dtype=object)
    dept_index = rng.choice(len(DEPARTMENTS), size=num_users, p=profile.department_p)
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
    country_index = rng.choice(len(profile.countries), size=num_users, p=profile.country_p)
    country = np.array(profile.countries, dtype=object)[country_index]
    hostname = np.array([f"ws-{d[:3]}-{i:03d}" for i, d in enumerate(department)], dtype=object)
    work_start = np.array(profile.work_start_utc)[country_index] + rng.normal(
        0.0, profile.work_start_spread, size=num_users
    )
    work_hours = rng.uniform(*profile.work_hours, size=num_users)
    has_mfa = rng.random(num_users) < profile.mfa_rate
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
        profile,
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


def _day_weights(start_ms: int, days: int, weekend_weight: float) -> np.ndarray:
    """Probability of each day of the period: a weekend day carries ``weekend_weight`` of a weekday's traffic."""
    weekday = (start_ms // MS_PER_DAY + np.arange(days) + 3) % 7  # 1970-01-01 was a Thursday
    w = np.where(weekday >= 5, weekend_weight, 1.0)
    return w / w.sum()


def user_times(
    rng: np.random.Generator,
    world: World,
    users: np.ndarray,
    start_ms: int,
    days: int,
    in_hours: float | None = None,
) -> np.ndarray:
    """Epoch-ms timestamps: a share ``in_hours`` (default: the profile's) inside each user's
    working hours, weekends quieter."""
    n = len(users)
    in_hours = world.profile.in_hours if in_hours is None else in_hours
    day = rng.choice(days, size=n, p=_day_weights(start_ms, days, world.profile.weekend_weight))
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
