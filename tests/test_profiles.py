"""Tests for the generator profiles (tabresnet_course.ocsf.profiles)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.ocsf.generator import generate_baseline_and_evaluation, generate_ocsf_events
from tabresnet_course.ocsf.profiles import CLOUD_SAAS, DEFAULT_PROFILE, ENTERPRISE, PROFILES, get_profile
from tabresnet_course.ocsf.scenarios import SCENARIOS, scenario_counts
from tabresnet_course.ocsf.schema import validate_event

NUM_EVENTS = 4000


@pytest.fixture(scope="module", params=sorted(PROFILES))
def generated(request):
    return generate_ocsf_events(NUM_EVENTS, days=3, seed=4, profile=request.param)


def _campaigns(generated) -> pd.DataFrame:
    """Per campaign: scenario, number of events and time span (ms)."""
    attacks = generated.labels["is_anomaly"].to_numpy()
    table = generated.labels.loc[attacks, ["campaign", "scenario"]].assign(time=generated.frame["time"][attacks])
    return table.groupby(["scenario", "campaign"])["time"].agg(events="size", span=lambda t: t.max() - t.min())


def test_registry_and_lookup():
    assert DEFAULT_PROFILE == "enterprise" and set(PROFILES) == {"enterprise", "cloud_saas"}
    assert get_profile("cloud_saas") is CLOUD_SAAS and get_profile(ENTERPRISE) is ENTERPRISE
    with pytest.raises(ValueError, match="enterprise, cloud_saas"):
        get_profile("startup")
    with pytest.raises(ValueError, match="known profiles"):
        generate_ocsf_events(3000, profile="startup")
    for profile in PROFILES.values():
        assert tuple(profile.scenario_plan) == SCENARIOS  # the study compares per attack type


def test_profiles_check_their_catalogues():
    with pytest.raises(ValueError, match="country_p"):
        dataclasses.replace(CLOUD_SAAS, country_p=(1.0,))
    with pytest.raises(ValueError, match="storm_service"):
        dataclasses.replace(CLOUD_SAAS, storm_service="orders-api")


def test_every_event_of_every_profile_is_valid(generated):
    events = generated.to_events()
    assert generated.profile in PROFILES
    assert {i: p for i, e in enumerate(events) if (p := validate_event(e))} == {}
    assert set(generated.labels["scenario"]) == {"normal", *SCENARIOS}
    assert generated.scenario_counts() == {
        "normal": NUM_EVENTS - sum(scenario_counts(NUM_EVENTS, generated.profile).values()),
        **scenario_counts(NUM_EVENTS, generated.profile),
    }


def test_profiles_differ_in_structure():
    enterprise = generate_ocsf_events(20_000, days=7, seed=4, anomalies=False)
    saas = generate_ocsf_events(20_000, days=7, seed=4, anomalies=False, profile="cloud_saas")
    mix = {g.profile: g.frame["class_uid"].value_counts(normalize=True) for g in (enterprise, saas)}
    assert mix["cloud_saas"][4002] > 0.4 > mix["enterprise"][4002]  # HTTP dominates
    assert mix["cloud_saas"][6003] > 1.5 * mix["enterprise"][6003]  # and cloud API calls
    users = {g.profile: g.frame["user.name"].dropna().nunique() for g in (enterprise, saas)}
    assert users["cloud_saas"] <= 40 < users["enterprise"]
    services = {g.profile: set(g.frame["dst_endpoint.svc_name"].dropna()) for g in (enterprise, saas)}
    assert {"checkout-api", "graphql"} <= services["cloud_saas"] and "orders-api" not in services["cloud_saas"]
    auth = saas.frame[saas.frame["class_uid"] == 3002]
    assert not auth["dst_endpoint.svc_name"].isin(["kerberos", "vpn"]).any()  # SSO only
    weekend = {}
    for g in (enterprise, saas):
        days = (g.frame["time"].to_numpy() - int(g.start.timestamp() * 1000)) // 86_400_000
        per_day = np.bincount(days, minlength=7)
        weekend[g.profile] = per_day[5:].mean() / per_day[:5].mean()
    assert weekend["cloud_saas"] > 1.5 * weekend["enterprise"]


def test_attacks_differ_in_size_and_timing():
    tables = {p: _campaigns(generate_ocsf_events(30_000, days=7, seed=4, profile=p)) for p in PROFILES}
    enterprise, saas = tables["enterprise"], tables["cloud_saas"]
    hour = 3_600_000
    # brute force: a 10-minute burst of 60 logons against a low-and-slow run of 25 over hours
    assert enterprise.loc["brute_force", "events"].max() == 60 and saas.loc["brute_force", "events"].max() == 25
    assert enterprise.loc["brute_force", "span"].max() < hour / 6 < hour < saas.loc["brute_force", "span"].max()
    # port scans: up to 250 ports in five minutes against 60 ports over up to two hours
    assert enterprise.loc["port_scan", "events"].max() > 60 == saas.loc["port_scan", "events"].max()
    assert saas.loc["port_scan", "span"].min() > 10 * enterprise.loc["port_scan", "span"].max()
    # storms: shorter and smaller
    assert (
        saas.loc["latency_error_storm", "span"].max() <= hour / 12 < enterprise.loc["latency_error_storm", "span"].max()
    )
    assert saas.loc["latency_error_storm", "events"].max() < enterprise.loc["latency_error_storm", "events"].max()


def test_profile_periods_are_seeded_and_share_an_organisation():
    a = generate_ocsf_events(3000, days=2, seed=8, profile="cloud_saas")
    b = generate_ocsf_events(3000, days=2, seed=8, profile=CLOUD_SAAS)
    assert a.frame.equals(b.frame) and a.labels.equals(b.labels)
    baseline, evaluation = generate_baseline_and_evaluation(3000, 3000, 2, 1, seed=8, profile="cloud_saas")
    assert baseline.profile == evaluation.profile == "cloud_saas"
    users = lambda g: set(g.frame["actor.user.name"].dropna())  # noqa: E731
    assert len(users(baseline) & users(evaluation)) > 20
