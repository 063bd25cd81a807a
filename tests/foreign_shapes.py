"""OCSF exports of shapes the package's generator does not produce, built here (not by
``tabresnet_course.ocsf.generator``) so that specification inference is tested on data it was not written
around. Each builder returns nested event dicts (shape e: a flat frame for a Parquet file with
dotted columns); all are seeded and small.

- (a) :func:`web_shop_api`: API Activity (6003) from an OpenTelemetry-to-OCSF converter: HTTP
  fields with the method under ``http_request.method``, no geolocation, unique ``metadata.uid``
  and ``unmapped.trace_id``/``span_id``, ``actor.session.uid``, free-text ``message``, vendor
  fields under ``unmapped``.
- (b) :func:`cloud_api_calls`: API Activity of a cloud audit log: ``api.operation``,
  ``api.service.name``, ``actor.user`` (uid and type, no name), ``cloud.region``, ``src_endpoint.ip``.
- (c) :func:`dns_queries`: DNS Activity (4003) only.
- (d) :func:`network_flows`: Network Activity (4001) flows with ``traffic`` bytes and packets.
- (e) :func:`flat_authentication`: Authentication (3002) as a flat table of dotted columns, with
  ``time`` as a date-time (a Parquet timestamp column).
- (f) :func:`http_without_time`: HTTP Activity (4002) where no record has ``time`` (only ``time_dt``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

T0 = int(dt.datetime(2026, 5, 4, tzinfo=dt.UTC).timestamp() * 1000)
HOUR = 3_600_000
IDENTIFIERS = {
    "metadata.uid",
    "unmapped.trace_id",
    "unmapped.span_id",
    "actor.session.uid",
    "api.request.uid",
    "unmapped.eventID",
    "metadata.correlation_uid",
}
"""Columns of these shapes that identify single events, requests or sessions: never a feature."""


def _hex(rng: np.random.Generator, n: int, length: int) -> list[str]:
    return ["".join(rng.choice(list("0123456789abcdef"), size=length)) for _ in range(n)]


def _uuid(rng: np.random.Generator, n: int) -> list[str]:
    return [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in _hex(rng, n, 32)]


def _times(rng: np.random.Generator, n: int, days: int = 3) -> np.ndarray:
    return np.sort(T0 + rng.integers(0, days * 24 * HOUR, size=n))


def web_shop_api(n: int = 300, seed: int = 0) -> list[dict]:
    """Shape (a): API Activity with HTTP fields from an OpenTelemetry converter."""
    rng = np.random.default_rng(seed)
    routes = [
        ("GET", "/api/products/{}", "catalog", 1),
        ("GET", "/api/cart", "cart", 2),
        ("POST", "/api/cart/items", "cart", 1),
        ("POST", "/api/orders", "checkout", 1),
        ("GET", "/api/orders/{}", "checkout", 2),
        ("DELETE", "/api/cart/items/{}", "cart", 4),
    ]
    users = [f"customer{i:03d}" for i in range(40)]
    sessions = _hex(rng, n // 6, 20)
    traces, spans, uids = _hex(rng, n, 32), _hex(rng, n, 16), _uuid(rng, n)
    events = []
    for i, t in enumerate(_times(rng, n)):
        method, route, service, activity = routes[rng.integers(len(routes))]
        path = route.format(rng.integers(1, 5000))
        code = int(rng.choice([200, 200, 200, 201, 404, 500], p=[0.5, 0.2, 0.1, 0.1, 0.07, 0.03]))
        latency = int(rng.lognormal(3.5, 0.8))
        events.append(
            {
                "time": int(t),
                "class_uid": 6003,
                "category_uid": 6,
                "activity_id": activity,
                "type_uid": 600300 + activity,
                "severity_id": 1 if code < 500 else 3,
                "status_id": 1 if code < 400 else 2,
                "status": "Success" if code < 400 else "Failure",
                "message": f"{method} {path} returned {code} in {latency} ms for trace {traces[i][:8]}",
                "metadata": {
                    "uid": uids[i],
                    "version": "1.1.0",
                    "logged_time": int(t) + int(rng.integers(5, 900)),
                    "product": {"name": "otel-ocsf-bridge", "vendor_name": "example.org"},
                },
                "actor": {
                    "user": {"name": users[rng.integers(len(users))]},
                    "session": {"uid": sessions[rng.integers(len(sessions))]},
                },
                "api": {"operation": f"{method} {route.replace('{}', ':id')}"},
                "service": {"name": service},
                "src_endpoint": {"ip": f"203.0.{rng.integers(0, 8)}.{rng.integers(1, 255)}"},
                "http_request": {
                    "method": method,
                    "url": {"path": path, "hostname": "shop.example"},
                    "user_agent": str(
                        rng.choice(
                            [
                                "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
                                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4) Safari/604.1",
                            ]
                        )
                    ),
                },
                "http_response": {"code": code, "latency": latency},
                "duration": latency + int(rng.integers(0, 5)),
                "unmapped": {
                    "trace_id": traces[i],
                    "span_id": spans[i],
                    "k8s_pod": f"{service}-{rng.integers(3)}",
                    "deployment_environment": "production",
                    "cart_items": int(rng.poisson(2)),
                },
            }
        )
    return events


def cloud_api_calls(n: int = 300, seed: int = 1) -> list[dict]:
    """Shape (b): API Activity of a cloud audit log (no user name, only uid and type)."""
    rng = np.random.default_rng(seed)
    calls = [
        ("s3.amazonaws.com", "GetObject", 2),
        ("s3.amazonaws.com", "PutObject", 1),
        ("s3.amazonaws.com", "ListBuckets", 2),
        ("iam.amazonaws.com", "ListUsers", 2),
        ("sts.amazonaws.com", "AssumeRole", 2),
        ("ec2.amazonaws.com", "DescribeInstances", 2),
        ("ec2.amazonaws.com", "TerminateInstances", 4),
    ]
    principals = [(f"arn:aws:iam::123456789012:user/dev{i}", "IAMUser") for i in range(12)]
    principals += [("arn:aws:sts::123456789012:assumed-role/ci-deploy/session", "AssumedRole")]
    uids, correlations = _uuid(rng, n), _uuid(rng, n)
    events = []
    for i, t in enumerate(_times(rng, n)):
        service, operation, activity = calls[rng.integers(len(calls))]
        uid, kind = principals[rng.integers(len(principals))]
        denied = bool(rng.random() < 0.05)
        event = {
            "time": int(t),
            "class_uid": 6003,
            "category_uid": 6,
            "class_name": "API Activity",
            "activity_id": activity,
            "type_uid": 600300 + activity,
            "severity_id": 1,
            "status_id": 2 if denied else 1,
            "metadata": {
                "uid": uids[i],
                "correlation_uid": correlations[i],
                "version": "1.3.0",
                "product": {"name": "CloudTrail", "vendor_name": "AWS"},
            },
            "actor": {"user": {"uid": uid, "type": kind, "account": {"uid": "123456789012"}}},
            "api": {"operation": operation, "service": {"name": service}, "request": {"uid": _uuid(rng, 1)[0]}},
            "cloud": {"provider": "AWS", "region": str(rng.choice(["eu-west-1", "us-east-1"], p=[0.8, 0.2]))},
            "src_endpoint": {"ip": f"10.{rng.integers(0, 3)}.{rng.integers(0, 4)}.{rng.integers(1, 255)}"},
            "http_request": {
                "user_agent": str(rng.choice(["aws-cli/2.15.30", "Boto3/1.34.2", "console.amazonaws.com"]))
            },
            "resources": [{"type": f"AWS::{service.split('.')[0].upper()}::Resource"}],
            "unmapped": {"eventID": _uuid(rng, 1)[0], "readOnly": activity == 2},
        }
        if denied:
            event["api"]["response"] = {"error": "AccessDenied"}
        events.append(event)
    return events


def dns_queries(n: int = 300, seed: int = 2) -> list[dict]:
    """Shape (c): DNS Activity (4003) only."""
    rng = np.random.default_rng(seed)
    names = [f"host{i}.corp.example" for i in range(25)] + ["www.example.com", "api.github.com", "updates.example.net"]
    events = []
    for i, t in enumerate(_times(rng, n)):
        name = names[rng.integers(len(names))]
        nxdomain = bool(rng.random() < 0.08)
        events.append(
            {
                "time": int(t),
                "class_uid": 4003,
                "category_uid": 4,
                "activity_id": 1,
                "type_uid": 400301,
                "severity_id": 1,
                "status_id": 1,
                "metadata": {
                    "uid": f"dns-{seed}-{i}",
                    "version": "1.8.0",
                    "product": {"name": "resolver", "vendor_name": "example"},
                },
                "src_endpoint": {
                    "ip": f"10.20.{rng.integers(0, 4)}.{rng.integers(1, 255)}",
                    "port": int(rng.integers(49152, 65535)),
                },
                "dst_endpoint": {"ip": "10.0.0.10", "port": 53},
                "query": {
                    "hostname": name,
                    "type": str(rng.choice(["A", "AAAA", "MX"], p=[0.7, 0.25, 0.05])),
                    "class": "IN",
                },
                "rcode_id": 3 if nxdomain else 0,
                "rcode": "NXDomain" if nxdomain else "NoError",
                "answers": []
                if nxdomain
                else [{"rdata": f"10.0.{rng.integers(0, 3)}.{rng.integers(1, 50)}", "type": "A"}],
                "connection_info": {"protocol_name": "udp"},
                "response_time": int(rng.lognormal(1.5, 1.0)),
            }
        )
    return events


def network_flows(n: int = 300, seed: int = 3) -> list[dict]:
    """Shape (d): Network Activity (4001) flows with traffic bytes and packets."""
    rng = np.random.default_rng(seed)
    servers = [("10.0.1.11", 443), ("10.0.1.12", 5432), ("10.0.1.13", 22), ("198.51.100.7", 443)]
    events = []
    for i, t in enumerate(_times(rng, n)):
        ip, port = servers[rng.integers(len(servers))]
        packets_out = int(rng.integers(3, 200))
        start = int(t) - int(rng.integers(10, 60_000))
        events.append(
            {
                "time": int(t),
                "class_uid": 4001,
                "category_uid": 4,
                "activity_id": 6,
                "type_uid": 400106,
                "severity_id": 1,
                "status_id": 1,
                "start_time": start,
                "end_time": int(t),
                "metadata": {
                    "uid": f"flow-{seed}-{i:05d}",
                    "version": "1.8.0",
                    "product": {"name": "flowlogs", "vendor_name": "example"},
                },
                "src_endpoint": {
                    "ip": f"10.20.{rng.integers(0, 6)}.{rng.integers(1, 255)}",
                    "port": int(rng.integers(32768, 61000)),
                },
                "dst_endpoint": {"ip": ip, "port": port},
                "connection_info": {"protocol_name": "tcp", "direction_id": int(rng.choice([1, 2], p=[0.2, 0.8]))},
                "traffic": {
                    "bytes_in": int(rng.lognormal(8, 2)),
                    "bytes_out": int(rng.lognormal(7, 2)),
                    "packets_in": int(rng.integers(3, 400)),
                    "packets_out": packets_out,
                },
            }
        )
    return events


def flat_authentication(n: int = 300, seed: int = 4) -> pd.DataFrame:
    """Shape (e): Authentication (3002) as a flat table of dotted columns, ``time`` a date-time."""
    rng = np.random.default_rng(seed)
    times = _times(rng, n)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(times, unit="ms", utc=True),
            "time_dt": [dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat() for t in times],
            "class_uid": 3002,
            "category_uid": 3,
            "activity_id": 1,
            "type_uid": 300201,
            "severity_id": 1,
            "status_id": rng.choice([1, 2], size=n, p=[0.9, 0.1]),
            "metadata.uid": _uuid(rng, n),
            "metadata.version": "1.8.0",
            "user.name": [f"user{i}" for i in rng.integers(0, 30, size=n)],
            "src_endpoint.ip": [f"10.30.{a}.{b}" for a, b in zip(rng.integers(0, 4, n), rng.integers(1, 255, n))],
            "logon_type_id": rng.choice([2, 3, 10], size=n),
            "is_mfa": rng.random(n) < 0.7,
            "auth_protocol_id": rng.choice([1, 2], size=n),
        }
    )


def http_without_time(n: int = 300, seed: int = 5) -> list[dict]:
    """Shape (f): HTTP Activity (4002) where no record has ``time``; only ISO ``time_dt``."""
    rng = np.random.default_rng(seed)
    events = []
    for t in _times(rng, n):
        code = int(rng.choice([200, 302, 404, 503], p=[0.8, 0.1, 0.07, 0.03]))
        events.append(
            {
                "time_dt": dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat(),
                "class_uid": 4002,
                "category_uid": 4,
                "activity_id": 3,
                "type_uid": 400203,
                "severity_id": 1,
                "metadata": {"uid": _uuid(rng, 1)[0], "version": "1.8.0"},
                "http_request": {
                    "http_method": "GET",
                    "url": {"url_string": f"https://intranet.example/docs/{rng.integers(1, 900)}"},
                },
                "http_response": {"code": code, "latency": int(rng.lognormal(4, 1))},
                "dst_endpoint": {"hostname": "intranet.example", "port": 443},
            }
        )
    return events
