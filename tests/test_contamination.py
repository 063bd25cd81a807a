"""Tests for baselines that already contain attacks (tabresnet_course.ocsf.contamination)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.ocsf.contamination import contaminated_split, scenario_share_mask
from tabresnet_course.ocsf.generator import generate_baseline_and_evaluation
from tabresnet_course.ocsf.profiles import PROFILES
from tabresnet_course.ocsf.scenarios import SCENARIOS
from tabresnet_course.ocsf.schema import validate_event

SIZES = {"num_baseline": 4000, "num_evaluation": 3000, "baseline_days": 2, "evaluation_days": 1}
DAY_MS = 86_400_000


def _split(overlap=0.25, mode="campaign", profile="enterprise", seed=1, attack_share=0.02):
    return contaminated_split(
        attack_share=attack_share, overlap=overlap, mode=mode, profile=profile, seed=seed, **SIZES
    )


def _normal(events) -> pd.DataFrame:
    return events.frame[~events.labels["is_anomaly"].to_numpy()].reset_index(drop=True)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("overlap", [0.1, 0.25, 0.5])
def test_campaign_overlap_puts_a_share_of_every_campaign_on_each_side(profile, overlap):
    split = _split(overlap, profile=profile)
    baseline, evaluation = split
    clean, _ = generate_baseline_and_evaluation(seed=1, profile=profile, **SIZES)
    assert _normal(baseline).equals(clean.frame)  # the clean part is the usual baseline
    assert len(evaluation) == SIZES["num_evaluation"]
    for events in split:  # frames and labels stay aligned
        assert (events.frame["metadata.uid"].to_numpy() == events.labels["uid"].to_numpy()).all()
    uids = pd.concat([baseline.labels["uid"], evaluation.labels["uid"]])
    assert not uids.duplicated().any()  # no event in both windows

    campaigns = split.campaigns()
    assert set(campaigns["scenario"]) == set(SCENARIOS)
    assert ((campaigns["baseline"] >= 1) & (campaigns["evaluation"] >= 1)).all()
    total = campaigns["baseline"] + campaigns["evaluation"]
    expected = np.clip(np.round(overlap * total), 1, total - 1)
    assert (campaigns["baseline"] == expected).all()  # q of each campaign, within rounding
    sizes = campaigns["scenario"].map({s: PROFILES[profile].scenario_plan[s].campaign_size for s in SCENARIOS})
    index = campaigns["campaign"].str.split("/").str[-1].astype(int)
    last = index == index.groupby(campaigns["scenario"]).transform("max")
    assert (total[~last] == sizes[~last]).all() and (total[last] <= sizes[last]).all()  # no event lost

    shares = split.shares()
    assert shares["baseline_attack_share"] == pytest.approx(0.02, abs=0.003)
    assert shares["campaign_overlap"] == pytest.approx(overlap, abs=0.1)
    attacks = baseline.labels["is_anomaly"].to_numpy()
    evaluation_start_ms = clean.start.timestamp() * 1000 + 2 * DAY_MS
    assert (baseline.frame.loc[attacks, "time"] >= evaluation_start_ms).all()  # moved events keep their time
    assert np.all(np.diff(baseline.frame["time"].to_numpy()) >= 0)


def test_contaminated_baselines_hold_valid_events():
    for mode in ("campaign", "spread"):
        baseline = _split(mode=mode, profile="cloud_saas").baseline
        events = [e for e, a in zip(baseline.to_events(), baseline.labels["is_anomaly"]) if a]
        assert events and all(validate_event(e) == [] for e in events)


def test_no_overlap_gives_the_clean_baseline_and_the_usual_evaluation():
    baseline, evaluation = _split(overlap=0.0)
    clean, usual = generate_baseline_and_evaluation(seed=1, **SIZES)
    assert baseline.frame.equals(clean.frame) and evaluation.frame.equals(usual.frame)
    assert not baseline.labels["is_anomaly"].any()


def test_spread_mode_adds_fresh_campaigns_inside_the_baseline_period():
    split = _split(mode="spread", attack_share=0.03)
    clean, usual = generate_baseline_and_evaluation(seed=1, **SIZES)
    assert _normal(split.baseline).equals(clean.frame)
    assert split.evaluation.frame.equals(usual.frame)
    assert split.shares()["baseline_attack_share"] == pytest.approx(0.03, abs=0.002)
    attacks = split.baseline.labels["is_anomaly"].to_numpy()
    assert split.baseline.frame.loc[attacks, "time"].max() < clean.start.timestamp() * 1000 + 2 * DAY_MS
    shared = set(split.baseline.labels["campaign"].dropna()) & set(split.evaluation.labels["campaign"].dropna())
    assert not shared  # other campaigns than the evaluation's


def test_scenario_share_mask_matches_the_evaluation_helper():
    from tabresnet_course.evaluation import contamination_mask

    labels = _split(overlap=0.0).evaluation.labels
    for share in (0.0, 0.3, 1.0):
        mine = scenario_share_mask(labels, list(SCENARIOS), share, seed=5)
        assert (mine == contamination_mask(labels, list(SCENARIOS), share, seed=5)).all()


def test_contaminated_split_is_deterministic():
    for mode in ("campaign", "spread"):
        a, b, c = _split(mode=mode), _split(mode=mode), _split(mode=mode, seed=2)
        assert a.baseline.frame.equals(b.baseline.frame) and a.baseline.labels.equals(b.baseline.labels)
        assert a.evaluation.frame.equals(b.evaluation.frame)
        assert not a.baseline.frame.equals(c.baseline.frame)


def test_contaminated_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        _split(overlap=1.0)
    with pytest.raises(ValueError, match="overlap"):
        _split(overlap=-0.1)
    with pytest.raises(ValueError, match="attack_share"):
        _split(attack_share=0.5)
    with pytest.raises(ValueError, match="attack_share"):
        _split(attack_share=-0.01)
    with pytest.raises(ValueError, match="attack_share"):
        _split(attack_share=0.0)
    with pytest.raises(ValueError, match="mode"):
        _split(mode="thin")
    with pytest.raises(ValueError, match="num_evaluation"):
        _split(overlap=0.02, attack_share=0.05)
    with pytest.raises(ValueError, match="known profiles"):
        _split(profile="startup")
