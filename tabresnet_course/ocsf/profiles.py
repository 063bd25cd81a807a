"""Generator profiles: what differs between the organisations the OCSF generator simulates.

Chapter "The OCSF pipeline". A :class:`GeneratorProfile` holds everything that is a property of
one organisation rather than of OCSF: how many users it has and where they work (countries,
time zones, working hours, weekend traffic), its servers and HTTP services, how its traffic
divides over the event classes, and how its attackers behave (the share of events, the
campaign sizes and the time window of each scenario). :data:`PROFILES` names two of them:

- ``"enterprise"`` (the default): 200 users in four countries on office hours, on-premises
  servers (Kerberos, file shares, VPN), a balanced class mix; fast attacks (a 10-minute brute
  force of 60 logons, a 5-minute scan of 250 ports, half-hour error storms);
- ``"cloud_saas"``: a 40-person software company whose traffic is mostly HTTP and cloud API
  calls, single sign-on only, flexible hours and busy weekends, servers in a cloud VPC; slow
  attacks (a low-and-slow brute force of 25 logons over six hours, scans of 60 ports over two
  hours, exfiltration over six hours) and short, small error storms.

The scenario names are the same in every profile, so a study can compare per attack type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CLOUD_SAAS",
    "DEFAULT_PROFILE",
    "ENTERPRISE",
    "PROFILES",
    "GeneratorProfile",
    "HttpService",
    "ScenarioPlan",
    "get_profile",
]

_MINUTE = 60_000
_HOUR = 60 * _MINUTE


class HttpService(NamedTuple):
    """One internal HTTP service: its name, address, latency (lognormal) and 5xx rate."""

    name: str
    hostname: str
    ip: str
    port: int
    median_latency_ms: float
    latency_sigma: float
    error_rate: float
    paths: tuple[str, ...]  # URL path templates ({n}, {hex}, {uuid} are filled in)


class ScenarioPlan(NamedTuple):
    """How one scenario is injected: share of a period's events, smallest count, events per
    campaign, and the time window ``(low, high)`` in ms: for a burst the offset of each event
    from its campaign's start; for a chain of steps (privilege escalation, off-hours logon)
    the gap between steps; ``None`` where the scenario has its own timing (latency drift)."""

    share: float
    minimum: int
    campaign_size: int
    window_ms: tuple[int, int] | None


@dataclass(frozen=True)
class GeneratorProfile:
    """The organisation a generated period describes (chapter "The OCSF pipeline").

    Catalogues are tuples in a fixed order; probabilities follow the order of the catalogue they
    weight (``class_mix`` the order of ``GENERATED_CLASSES``, ``department_p`` that of
    ``DEPARTMENTS``, ``network_flow_p`` that of the network flow catalogue of
    :mod:`tabresnet_course.ocsf.classes`, ``auth_kind_p`` Kerberos, SSO, VPN, SSH).
    """

    name: str
    num_users: int
    department_p: tuple[float, ...]
    countries: tuple[str, ...]  # ISO 3166 alpha-2 codes where users live
    country_p: tuple[float, ...]
    work_start_utc: tuple[float, ...]  # hour (UTC) the working day starts, per country
    cloud_regions: tuple[str, ...]  # cloud region of each country
    work_start_spread: float  # standard deviation (hours) of a user's start around the country's
    work_hours: tuple[float, float]  # range of a working day's length (hours)
    in_hours: float  # share of a user's events inside working hours
    network_in_hours: float  # the same for network flows (machines talk at night too)
    weekend_weight: float  # a weekend day's traffic relative to a weekday's
    mfa_rate: float  # share of users with MFA enrolled
    servers: Mapping[str, str]  # hostname -> IP (dc01, files01, jump01, sso, vpn, web01, web02, db01)
    http_services: tuple[HttpService, ...]
    http_service_p: tuple[float, ...]
    class_mix: tuple[float, ...]
    auth_kind_p: tuple[float, float, float, float]
    network_flow_p: tuple[float, ...]
    scenario_plan: Mapping[str, ScenarioPlan]
    storm_service: str  # the HTTP service of the latency/error storm
    drift_service: str  # the HTTP service whose latency drifts

    def __post_init__(self) -> None:
        pairs = {
            "country_p": self.country_p,
            "work_start_utc": self.work_start_utc,
            "cloud_regions": self.cloud_regions,
        }
        for field, values in pairs.items():
            if len(values) != len(self.countries):
                raise ValueError(f"profile {self.name!r}: {field} needs one value per country")
        if len(self.http_service_p) != len(self.http_services):
            raise ValueError(f"profile {self.name!r}: http_service_p needs one value per HTTP service")
        services = {s.name for s in self.http_services}
        for field in ("storm_service", "drift_service"):
            if getattr(self, field) not in services:
                raise ValueError(f"profile {self.name!r}: {field} {getattr(self, field)!r} is not an HTTP service")


ENTERPRISE = GeneratorProfile(
    name="enterprise",
    num_users=200,
    department_p=(0.35, 0.15, 0.25, 0.10, 0.15),
    countries=("US", "GB", "DE", "IN"),
    country_p=(0.55, 0.15, 0.15, 0.15),
    work_start_utc=(13.5, 8.0, 7.0, 3.5),
    cloud_regions=("us-east-1", "eu-west-2", "eu-central-1", "ap-south-1"),
    work_start_spread=0.75,
    work_hours=(7.5, 10.0),
    in_hours=0.88,
    network_in_hours=0.8,
    weekend_weight=0.2,
    mfa_rate=0.85,
    servers={
        "dc01": "10.0.0.10",
        "files01": "10.0.0.20",
        "jump01": "10.0.0.30",
        "sso": "10.0.0.40",
        "vpn": "10.0.0.50",
        "web01": "10.0.1.11",
        "web02": "10.0.1.12",
        "db01": "10.0.2.10",
    },
    http_services=(
        HttpService(
            "portal",
            "portal.corp.example",
            "10.0.1.11",
            443,
            80.0,
            0.45,
            0.004,
            ("/", "/login", "/dashboard", "/api/v1/profile", "/api/v1/notifications/{n}"),
        ),
        HttpService(
            "orders-api",
            "orders.corp.example",
            "10.0.1.12",
            443,
            120.0,
            0.55,
            0.008,
            ("/api/v2/orders", "/api/v2/orders/{n}", "/api/v2/orders/{n}/items", "/api/v2/customers/{n}"),
        ),
        HttpService(
            "billing-api",
            "billing.corp.example",
            "10.0.1.13",
            8443,
            200.0,
            0.5,
            0.006,
            ("/api/v1/invoices", "/api/v1/invoices/{n}", "/api/v1/payments/{uuid}"),
        ),
        HttpService(
            "search",
            "search.corp.example",
            "10.0.1.14",
            443,
            60.0,
            0.4,
            0.003,
            ("/search", "/suggest", "/search/advanced"),
        ),
        HttpService(
            "wiki",
            "wiki.corp.example",
            "10.0.1.15",
            443,
            150.0,
            0.5,
            0.004,
            ("/pages/{n}", "/pages/{n}/edit", "/attachments/{hex}"),
        ),
        HttpService(
            "git",
            "git.corp.example",
            "10.0.1.16",
            443,
            100.0,
            0.6,
            0.005,
            ("/repos/platform/{n}", "/repos/platform/{n}/commits/{hex}", "/repos/data/pulls/{n}"),
        ),
    ),
    http_service_p=(0.28, 0.2, 0.1, 0.2, 0.12, 0.1),
    class_mix=(0.12, 0.30, 0.25, 0.13, 0.10, 0.10),
    auth_kind_p=(0.45, 0.35, 0.12, 0.08),
    network_flow_p=(0.38, 0.20, 0.14, 0.05, 0.05, 0.08, 0.04, 0.03, 0.02, 0.01),
    scenario_plan={
        "data_exfiltration": ScenarioPlan(0.0008, 4, 8, (0, 2 * _HOUR)),
        "port_scan": ScenarioPlan(0.005, 20, 250, (0, 5 * _MINUTE)),
        "latency_error_storm": ScenarioPlan(0.004, 15, 200, (0, 30 * _MINUTE)),
        "brute_force": ScenarioPlan(0.004, 15, 60, (0, 10 * _MINUTE)),
        "privilege_escalation": ScenarioPlan(0.0006, 6, 6, (2_000, 40_000)),
        "off_hours_new_country": ScenarioPlan(0.002, 10, 10, (_MINUTE, 5 * _MINUTE)),
        "latency_drift": ScenarioPlan(0.004, 15, 10**9, None),
    },
    storm_service="orders-api",
    drift_service="search",
)
"""Today's organisation (the default): office workers, on-premises servers, fast attacks."""

CLOUD_SAAS = GeneratorProfile(
    name="cloud_saas",
    num_users=40,
    department_p=(0.55, 0.08, 0.17, 0.05, 0.15),
    countries=("US", "GB", "DE", "IN"),
    country_p=(0.30, 0.30, 0.25, 0.15),
    work_start_utc=(15.0, 9.0, 8.0, 4.5),
    cloud_regions=("us-west-2", "eu-west-2", "eu-central-1", "ap-south-1"),
    work_start_spread=2.0,
    work_hours=(6.0, 11.0),
    in_hours=0.7,
    network_in_hours=0.6,
    weekend_weight=0.45,
    mfa_rate=0.98,
    servers={
        "dc01": "172.31.0.10",
        "files01": "172.31.0.20",
        "jump01": "172.31.0.30",
        "sso": "172.31.0.40",
        "vpn": "172.31.0.50",
        "web01": "172.31.8.11",
        "web02": "172.31.8.12",
        "db01": "172.31.16.10",
    },
    http_services=(
        HttpService("app", "app.saas.example", "172.31.8.11", 443, 90.0, 0.5, 0.005, ("/", "/app/{n}", "/settings")),
        HttpService(
            "public-api",
            "api.saas.example",
            "172.31.8.12",
            443,
            45.0,
            0.6,
            0.01,
            ("/v1/items", "/v1/items/{n}", "/v1/users/{uuid}", "/v1/events"),
        ),
        HttpService(
            "checkout-api",
            "checkout.saas.example",
            "172.31.8.13",
            443,
            150.0,
            0.5,
            0.008,
            ("/v1/carts/{n}", "/v1/checkout", "/v1/payments/{uuid}"),
        ),
        HttpService("graphql", "graphql.saas.example", "172.31.8.14", 443, 70.0, 0.45, 0.004, ("/graphql",)),
        HttpService("webhooks", "hooks.saas.example", "172.31.8.15", 8443, 250.0, 0.7, 0.01, ("/hooks/{hex}",)),
    ),
    http_service_p=(0.25, 0.35, 0.12, 0.2, 0.08),
    class_mix=(0.08, 0.12, 0.45, 0.28, 0.04, 0.03),
    auth_kind_p=(0.0, 0.85, 0.0, 0.15),
    network_flow_p=(0.55, 0.15, 0.20, 0.0, 0.0, 0.0, 0.06, 0.03, 0.01, 0.0),
    scenario_plan={
        "data_exfiltration": ScenarioPlan(0.0008, 4, 16, (0, 6 * _HOUR)),
        "port_scan": ScenarioPlan(0.004, 20, 60, (0, 2 * _HOUR)),
        "latency_error_storm": ScenarioPlan(0.004, 15, 40, (0, 5 * _MINUTE)),
        "brute_force": ScenarioPlan(0.004, 15, 25, (0, 6 * _HOUR)),
        "privilege_escalation": ScenarioPlan(0.0006, 6, 6, (10_000, 300_000)),
        "off_hours_new_country": ScenarioPlan(0.003, 10, 20, (30_000, 3 * _MINUTE)),
        "latency_drift": ScenarioPlan(0.004, 15, 10**9, None),
    },
    storm_service="checkout-api",
    drift_service="graphql",
)
"""A small software company: API and HTTP traffic, SSO only, flexible hours, slow attacks."""

PROFILES: dict[str, GeneratorProfile] = {p.name: p for p in (ENTERPRISE, CLOUD_SAAS)}
"""The named generator profiles."""

DEFAULT_PROFILE = ENTERPRISE.name
"""The profile the generator uses unless told otherwise."""


def get_profile(profile: str | GeneratorProfile) -> GeneratorProfile:
    """The profile named ``profile`` (or ``profile`` itself); an unknown name is a ValueError
    naming the known ones (chapter "The OCSF pipeline")."""
    if isinstance(profile, GeneratorProfile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown generator profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[profile]
