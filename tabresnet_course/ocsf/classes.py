"""Normal behaviour of the six generated OCSF classes: one vectorised builder per class.

Chapter "The OCSF pipeline" (through :mod:`tabresnet_course.ocsf.generator`). Each builder draws every
attribute of ``n`` events of its class as numpy arrays (a :data:`~tabresnet_course.ocsf.world.Block`),
for users of a :class:`~tabresnet_course.ocsf.world.World` over a period with diurnal and
weekend patterns; :data:`CLASS_BUILDERS` maps ``class_uid`` to its builder.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tabresnet_course.ocsf.schema import (
    AUTH_PROTOCOL_NAMES,
    DIRECTION_NAMES,
    LOGON_TYPE_NAMES,
    captions,
)
from tabresnet_course.ocsf.world import (
    Block,
    World,
    constant,
    index_of,
    lognormal_int,
    pick,
    uniform_times,
    user_times,
)

__all__ = [
    "CLASS_BUILDERS",
    "GENERATED_CLASSES",
    "build_api",
    "build_authentication",
    "build_file",
    "build_http",
    "build_network",
    "build_process",
]

GENERATED_CLASSES: tuple[int, ...] = (3002, 4001, 4002, 6003, 1007, 1001)
"""The event classes the generator emits (and the order of its per-class tables)."""

# Relative preference of each department (rows, order of DEPARTMENTS) for each generated class.
_DEPARTMENT_AFFINITY = np.array(
    [
        [1.0, 1.0, 1.0, 1.5, 1.5, 1.2],  # engineering
        [1.0, 0.8, 1.2, 0.8, 0.3, 1.5],  # finance
        [1.0, 0.8, 1.5, 0.5, 0.2, 1.0],  # sales
        [1.0, 0.7, 1.2, 0.4, 0.2, 1.2],  # hr
        [1.2, 1.3, 0.8, 1.5, 2.0, 0.8],  # it
    ]
)

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

# Network flows: service, port, protocol, destination kind, median bytes out, median bytes in
# (a profile's ``network_flow_p`` weights them).
_NETWORK_FLOWS = (
    ("https", 443, "tcp", "external", 2_000, 40_000),
    ("dns", 53, "udp", "dc01", 80, 200),
    ("https", 443, "tcp", "web", 1_500, 20_000),
    ("ldap", 389, "tcp", "dc01", 500, 2_000),
    ("kerberos", 88, "tcp", "dc01", 1_200, 1_500),
    ("smb", 445, "tcp", "files01", 5_000, 80_000),
    ("postgresql", 5432, "tcp", "db01", 2_000, 30_000),
    ("ssh", 22, "tcp", "jump01", 3_000, 6_000),
    ("ntp", 123, "udp", "dc01", 76, 76),
    ("http", 80, "tcp", "external", 800, 15_000),
)

# API operations: service, operation, activity_id (1 Create, 2 Read, 3 Update, 4 Delete), weight.
_API_OPERATIONS = (
    ("storage", "GetObject", 2, 0.22),
    ("storage", "ListObjects", 2, 0.12),
    ("storage", "PutObject", 1, 0.08),
    ("storage", "DeleteObject", 4, 0.02),
    ("compute", "DescribeInstances", 2, 0.14),
    ("compute", "StartInstances", 3, 0.02),
    ("compute", "StopInstances", 3, 0.02),
    ("compute", "RunInstances", 1, 0.01),
    ("iam", "GetUser", 2, 0.05),
    ("iam", "ListRoles", 2, 0.03),
    ("iam", "AttachUserPolicy", 3, 0.005),
    ("iam", "CreateAccessKey", 1, 0.005),
    ("database", "DescribeDBInstances", 2, 0.08),
    ("database", "CreateDBSnapshot", 1, 0.01),
    ("secrets", "GetSecretValue", 2, 0.12),
    ("secrets", "ListSecrets", 2, 0.01),
    ("monitoring", "GetMetricData", 2, 0.06),
)

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
_FILE_STEMS = ("report", "notes", "budget", "draft", "data", "summary", "invoice", "plan", "export", "config")
_FILE_DIRS = ("/home/{user}/Documents", "/home/{user}/projects", "/srv/shares/{dept}", "/tmp")


def _sample_users(rng: np.random.Generator, world: World, n: int, class_uid: int) -> np.ndarray:
    """User index per event, weighted by activity and the department's taste for the class."""
    column = GENERATED_CLASSES.index(class_uid)
    p = world.weight * _DEPARTMENT_AFFINITY[world.department_index, column]
    return rng.choice(world.num_users, size=n, p=p / p.sum())


def _format_paths(rng: np.random.Generator, templates: np.ndarray) -> np.ndarray:
    """Fill ``{n}``, ``{hex}`` and ``{uuid}`` placeholders of URL path templates."""
    n = len(templates)
    numbers = rng.integers(1, 100_000, size=n)
    hexes = rng.integers(0, 2**48, size=n)
    out = templates.copy()
    for i in np.flatnonzero(np.char.find(templates.astype(str), "{") >= 0):
        h = int(hexes[i])
        out[i] = templates[i].format(
            n=int(numbers[i]),
            hex=f"{h:012x}",
            uuid=f"{h:012x}"[:8] + f"-{h % 65536:04x}-4{h % 4096:03x}-a{h % 4000:03x}-{h:012x}",
        )
    return out


# --------------------------------------------------------------------------------------------
# One builder per class: normal behaviour of n events
# --------------------------------------------------------------------------------------------


def build_authentication(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """Authentication (3002): Kerberos workstation logons, SSO, VPN and SSH to the jump host."""
    users = _sample_users(rng, world, n, 3002)
    servers = world.profile.servers
    kind = rng.choice(4, size=n, p=world.profile.auth_kind_p)  # kerberos, sso, vpn, ssh
    kerberos_activity = rng.choice((1, 2, 3, 4), size=n, p=(0.5, 0.2, 0.15, 0.15))
    other_activity = rng.choice((1, 2), size=n, p=(0.8, 0.2))
    activity = np.where(kind == 0, kerberos_activity, other_activity)
    failed = (activity == 1) & (rng.random(n) < 0.03)
    protocol = np.array((2, 5, 10, 99))[kind]
    logon_type = np.array((2, 3, 3, 10))[kind]
    dst_host = pick(("dc01", "sso", "vpn", "jump01"), kind)
    mfa_capable = (kind == 1) | (kind == 2)
    return {
        "time": user_times(rng, world, users, start_ms, days),
        "activity_id": activity,
        "status_id": np.where(failed, 2, 1),
        "severity_id": np.where(failed, 2, 1),
        "duration": lognormal_int(rng, 40.0, 0.6, n),
        "user.name": world.user_name[users],
        "src_endpoint.ip": np.where(kind == 2, world.home_ip[users], world.ip[users]),
        "src_endpoint.location.country": world.country[users],
        "dst_endpoint.hostname": dst_host,
        "dst_endpoint.ip": pick(tuple(servers[h] for h in ("dc01", "sso", "vpn", "jump01")), kind),
        "dst_endpoint.svc_name": pick(("kerberos", "sso", "vpn", "ssh"), kind),
        "auth_protocol_id": protocol,
        "auth_protocol": captions(AUTH_PROTOCOL_NAMES, protocol),
        "logon_type_id": logon_type,
        "logon_type": captions(LOGON_TYPE_NAMES, logon_type),
        "is_mfa": mfa_capable & world.has_mfa[users] & (rng.random(n) < 0.97),
        "is_remote": kind >= 2,
    }


def build_network(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """Network Activity (4001): flows from workstations to internal servers and the internet."""
    users = _sample_users(rng, world, n, 4001)
    servers = world.profile.servers
    flow = rng.choice(len(_NETWORK_FLOWS), size=n, p=world.profile.network_flow_p)
    svc, port, proto, dst_kind, out_median, in_median = (np.array(c, dtype=object) for c in zip(*_NETWORK_FLOWS))
    external_ips = np.array([f"198.51.100.{i}" for i in range(10, 70)], dtype=object)
    popularity = 1.0 / np.arange(1, len(external_ips) + 1)  # Zipf: a few sites get most flows
    dst_ip = np.empty(n, dtype=object)
    kinds = dst_kind[flow]
    is_external = kinds == "external"
    dst_ip[is_external] = external_ips[
        rng.choice(len(external_ips), size=int(is_external.sum()), p=popularity / popularity.sum())
    ]
    is_web = kinds == "web"
    dst_ip[is_web] = pick((servers["web01"], servers["web02"]), rng.integers(0, 2, size=int(is_web.sum())))
    for host in ("dc01", "files01", "db01", "jump01"):
        dst_ip[kinds == host] = servers[host]
    bytes_out = lognormal_int(rng, out_median[flow].astype(float), 1.0, n, minimum=40)
    bytes_in = lognormal_int(rng, in_median[flow].astype(float), 1.0, n, minimum=0)
    activity = rng.choice((6, 2, 1, 3, 4), size=n, p=(0.70, 0.18, 0.08, 0.025, 0.015))
    direction = np.where(is_external, 2, 3)
    return {
        "time": user_times(rng, world, users, start_ms, days, in_hours=world.profile.network_in_hours),
        "activity_id": activity,
        "status_id": np.where(activity == 4, 2, 1),
        "severity_id": np.where(activity == 4, 2, 1),
        "duration": lognormal_int(rng, 200.0, 1.2, n, minimum=0),
        "src_endpoint.ip": world.ip[users],
        "src_endpoint.port": rng.integers(49152, 65536, size=n),
        "dst_endpoint.ip": dst_ip,
        "dst_endpoint.port": port[flow].astype(np.int64),
        "dst_endpoint.svc_name": svc[flow],
        "connection_info.protocol_name": proto[flow],
        "connection_info.direction_id": direction,
        "connection_info.direction": captions(DIRECTION_NAMES, direction),
        "traffic.bytes_in": bytes_in,
        "traffic.bytes_out": bytes_out,
        "traffic.packets_in": bytes_in // 1200 + 1,
        "traffic.packets_out": bytes_out // 1200 + 1,
    }


def build_http(
    rng: np.random.Generator, world: World, n: int, start_ms: int, days: int, service: int | None = None
) -> Block:
    """HTTP Activity (4002): requests to internal web services with per-service latency."""
    users = _sample_users(rng, world, n, 4002)
    services = world.profile.http_services
    svc = rng.choice(len(services), size=n, p=world.profile.http_service_p) if service is None else np.full(n, service)
    name, hostname, ip, port, median, sigma, error_rate, paths = (np.array(c, dtype=object) for c in zip(*services))
    path_index = (rng.random(n) * np.array([len(p) for p in paths])[svc]).astype(np.int64)
    templates = np.array([paths[s][i] for s, i in zip(svc, path_index)], dtype=object)
    method_index = rng.choice(len(_HTTP_METHODS), size=n, p=_HTTP_METHOD_P)
    method = pick(_HTTP_METHODS, method_index)
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
        "time": user_times(rng, world, users, start_ms, days),
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
        "http_request.user_agent": pick(_USER_AGENTS, agent),
        "http_response.code": code,
        "http_response.latency": latency,
    }


def build_api(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """API Activity (6003): cloud control-plane calls (storage, compute, IAM, secrets, ...)."""
    users = _sample_users(rng, world, n, 6003)
    op = rng.choice(
        len(_API_OPERATIONS), size=n, p=np.array([o[3] for o in _API_OPERATIONS]) / sum(o[3] for o in _API_OPERATIONS)
    )
    service, operation, activity, _ = (np.array(c, dtype=object) for c in zip(*_API_OPERATIONS))
    failed = rng.random(n) < 0.02
    return {
        "time": user_times(rng, world, users, start_ms, days),
        "activity_id": activity[op].astype(np.int64),
        "status_id": np.where(failed, 2, 1),
        "severity_id": np.where(failed, 2, 1),
        "actor.user.name": world.user_name[users],
        "src_endpoint.ip": world.ip[users],
        "api.operation": operation[op],
        "api.service.name": service[op],
        "cloud.provider": constant("AWS", n),
        "cloud.region": pick(world.profile.cloud_regions, index_of(world.profile.countries, world.country[users])),
    }


def build_process(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
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
    host[kind == "web"] = pick(("web01", "web02"), rng.integers(0, 2, size=int((kind == "web").sum())))
    host[kind == "db01"] = "db01"
    user = np.where(proc_user[row] == "@", world.user_name[users], proc_user[row])
    actor = np.where(on_workstation, world.user_name[users], user)
    activity = np.where(rng.random(n) < 0.7, 1, 2)
    activity = np.where(row == _SUDO_ROW, np.where(rng.random(n) < 0.5, 5, 1), activity)
    times = np.where(
        on_workstation,
        user_times(rng, world, users, start_ms, days),
        uniform_times(rng, n, start_ms, days),
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


def build_file(rng: np.random.Generator, world: World, n: int, start_ms: int, days: int) -> Block:
    """File System Activity (1001): documents read and written on workstations and shares."""
    users = _sample_users(rng, world, n, 1001)
    dept = world.department[users]
    ext = np.empty(n, dtype=object)
    size_median = np.empty(n, dtype=float)
    for d, types in _FILE_TYPES.items():
        mask = dept == d
        choice = rng.integers(0, len(types), size=int(mask.sum()))
        ext[mask] = np.array([t[0] for t in types], dtype=object)[choice]
        size_median[mask] = np.array([t[1] for t in types], dtype=float)[choice]
    stem = pick(_FILE_STEMS, rng.integers(0, len(_FILE_STEMS), size=n))
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
        "time": user_times(rng, world, users, start_ms, days),
        "activity_id": activity,
        "status_id": np.where(failed, 2, 1),
        "severity_id": np.where(failed, 2, 1),
        "actor.user.name": names,
        "device.hostname": world.hostname[users],
        "file.name": file_name,
        "file.path": path,
        "file.size": lognormal_int(rng, size_median, 0.8, n, minimum=0),
        "file.type_id": np.ones(n, dtype=np.int64),
        "file.type": constant("Regular File", n),
    }


CLASS_BUILDERS: dict[int, Callable[..., Block]] = {
    3002: build_authentication,
    4001: build_network,
    4002: build_http,
    6003: build_api,
    1007: build_process,
    1001: build_file,
}
"""The builder of each generated class: ``(rng, world, n, start_ms, days) -> Block``."""
