"""Calibration (tabresnet_course.detection.calibration): held-out normal scores give percentiles
and alert thresholds; training stores them, saving keeps them bit for bit, and the command line
writes percentile and alert columns and the threshold next to the scores."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_helpers import TINY_TRAIN, assert_error, call
from sklearn.base import clone

from tabresnet_course.detection.calibration import (
    CALIBRATION_FOLDS,
    DEFAULT_ALERT_RATE,
    MIN_EXCEEDANCES,
    Calibration,
    check_alert_rate,
    check_alerts_per_day,
    cross_fitted_scores,
    events_per_day,
)
from tabresnet_course.detection.detector import OCSFAnomalyDetector
from tabresnet_course.detection.saved import CALIBRATION_FILE, CONFIG_FILE, DETECTOR_FORMAT_VERSION
from tabresnet_course.detection.scorers import KNNScorer
from tabresnet_course.errors import InputError
from tabresnet_course.events.files import write_events
from tabresnet_course.ocsf.generator import generate_ocsf_events


def test_percentiles_are_the_share_of_held_out_scores_below():
    calibration = Calibration(np.array([3.0, 1.0, 2.0, 2.0]))
    np.testing.assert_array_equal(calibration.scores, [1.0, 2.0, 2.0, 3.0])  # sorted
    np.testing.assert_array_equal(calibration.percentiles([0.5, 1.0, 2.0, 2.5, 3.0, 9.0]), [0, 0, 25, 75, 75, 100])


def test_threshold_lets_at_most_the_rate_of_held_out_scores_alert():
    scores = np.arange(10_000, dtype=np.float64)
    calibration = Calibration(scores, events_per_day=5_000.0)
    for rate in (0.001, 0.01, 0.05, 0.5):
        threshold = calibration.threshold(rate)
        assert threshold.held_out_above == int((scores > threshold.score).sum()) == math.floor(rate * 10_000)
        assert threshold.set_by == "alert_rate" and threshold.alert_rate == rate
    assert calibration.threshold().alert_rate == DEFAULT_ALERT_RATE
    by_day = calibration.threshold(alerts_per_day=50)  # 50 / 5,000 = 0.01
    assert by_day.set_by == "alerts_per_day" and by_day.alert_rate == pytest.approx(0.01)
    assert by_day.score == calibration.threshold(0.01).score
    assert "50 alerts per day" in by_day.describe() and "5,000 events per day" in by_day.describe()


def test_ties_and_rates_below_one_held_out_score():
    calibration = Calibration(np.array([1.0] * 90 + [5.0] * 10))
    threshold = calibration.threshold(0.05)  # the 95th score ties with nine others
    assert threshold.score == 5.0 and threshold.held_out_above == 0
    rough = Calibration(np.arange(100.0)).threshold(0.001)  # below 1 / 100: the largest score
    assert rough.score == 99.0 and rough.held_out_above == 0
    assert f"fewer than {MIN_EXCEEDANCES}" in rough.describe()


@pytest.mark.parametrize("rate", [0, 1, 1.5, -0.1, float("nan"), float("inf"), "x", True, None])
def test_bad_alert_rates_are_refused(rate):
    with pytest.raises(InputError, match="alert rate"):
        check_alert_rate(rate)


@pytest.mark.parametrize("count", [0, -3, float("nan"), "many"])
def test_bad_alert_counts_are_refused(count):
    with pytest.raises(InputError, match="alerts per day"):
        check_alerts_per_day(count)


def test_alerts_per_day_needs_the_baseline_rate_and_fewer_alerts_than_events():
    with pytest.raises(InputError, match="no readable time span"):
        Calibration(np.arange(10.0)).threshold(alerts_per_day=5)
    with pytest.raises(InputError, match="not fewer than the baseline's 100 events per day"):
        Calibration(np.arange(10.0), events_per_day=100.0).threshold(alerts_per_day=100)
    with pytest.raises(InputError, match="not both"):
        Calibration(np.arange(10.0), events_per_day=100.0).threshold(0.1, 5)


def test_events_per_day_from_epoch_milliseconds_and_date_times():
    day = 86_400_000
    assert events_per_day(np.linspace(0, 2 * day, 1000)) == pytest.approx(500.0)
    stamps = pd.Series(pd.to_datetime(np.linspace(0, 2 * day, 1000), unit="ms", utc=True))
    assert events_per_day(stamps) == pytest.approx(500.0)
    assert events_per_day(pd.Series([5, None, 5], dtype="Int64")) is None
    assert events_per_day([]) is None


def test_cross_fitted_scores_never_score_a_row_against_itself():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 3))
    reference[:5] = reference[5:10]  # five exact duplicates
    scores = cross_fitted_scores(KNNScorer(k=1), reference, folds=CALIBRATION_FOLDS, seed=1)
    assert scores.shape == (200,) and (scores[10:] > 0).all()
    np.testing.assert_array_equal(scores, cross_fitted_scores(KNNScorer(k=1), reference, seed=1))
    order = np.random.default_rng(1).permutation(200)
    fold = np.sort(order[:20])  # the first fold: scored by a scorer fitted on the other 180 rows
    rest = np.setdiff1d(np.arange(200), fold)
    np.testing.assert_allclose(scores[fold], clone(KNNScorer(k=1)).fit(reference[rest]).score(reference[fold]))
    with pytest.raises(ValueError, match="at least 20 reference rows"):
        cross_fitted_scores(KNNScorer(k=1), reference[:19])


def test_calibration_round_trips_and_checks_its_parts():
    calibration = Calibration(np.array([0.1, 0.7, 0.3]), events_per_day=12.5)
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())), calibration.scores)
    np.testing.assert_array_equal(again.scores, calibration.scores)
    assert again.events_per_day == 12.5 and again.method == calibration.method
    with pytest.raises(ValueError, match="lists 3 held-out scores, the file holds 2"):
        Calibration.from_dict(calibration.to_dict(), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="finite"):
        Calibration(np.array([0.1, np.nan]))


# --------------------------------------------------------------------------- the detector and the CLI


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A detector trained from the command line on 600 clean events over two days, and an
    evaluation file with attacks."""
    work = tmp_path_factory.mktemp("calibration")
    write_events(generate_ocsf_events(600, days=2, seed=0, anomalies=False), work / "base.jsonl")
    write_events(generate_ocsf_events(2000, days=1, seed=1), work / "eval.jsonl")
    result = call("train", "--events", "base.jsonl", "--out", "detector", *TINY_TRAIN, cwd=work)
    assert result.returncode == 0, result.stderr
    return work


def test_training_stores_a_calibration_that_loads_bit_for_bit(work):
    detector = OCSFAnomalyDetector.load(work / "detector")
    calibration = detector.calibration
    # Every baseline row, the ones refinement dropped from the reference included (else the strangest
    # normal events would be missing and every threshold would sit too low).
    assert len(detector.reference_embeddings) < 600
    assert len(calibration.scores) == 600 and calibration.events_per_day == pytest.approx(300, rel=0.02)
    config = json.loads((work / "detector" / CONFIG_FILE).read_text())
    assert config["format_version"] == DETECTOR_FORMAT_VERSION and config["calibration"]["held_out"] == 600
    stored = np.load(work / "detector" / CALIBRATION_FILE, allow_pickle=False)
    assert stored.dtype == np.float64
    np.testing.assert_array_equal(stored, calibration.scores)
    scores = np.array([calibration.scores[0], calibration.scores[-1] + 1])
    np.testing.assert_array_equal(detector.percentiles(scores), [0.0, 100.0])
    np.testing.assert_array_equal(detector.alerts(scores, alert_rate=0.01), [False, True])


def test_score_writes_percentile_and_alert_and_records_the_threshold(work):
    result = call(
        "score", "--model", "detector", "--events", "eval.jsonl", "--out", "s.csv", "--alert-rate", 0.02, cwd=work
    )
    assert result.returncode == 0, result.stderr
    assert "alert threshold" in result.stderr and "alert rate 0.02 asked" in result.stderr
    scores = pd.read_csv(work / "s.csv")
    assert list(scores.columns) == ["line", "uid", "score", "percentile", "alert"]
    assert scores["percentile"].between(0, 100).all()
    record = json.loads((work / "s.csv.threshold.json").read_text())
    assert record["alert_rate"] == 0.02 and record["set_by"] == "alert_rate"
    assert record["alerts"] == int(scores["alert"].sum()) > 0
    assert (scores["alert"] == (scores["score"] > record["threshold"])).all()
    assert record["detector_sha256"] == OCSFAnomalyDetector.load(work / "detector").checksum
    by_day = call(
        "score", "--model", "detector", "--events", "eval.jsonl", "--out", "d.csv", "--alerts-per-day", 3, cwd=work
    )
    assert by_day.returncode == 0, by_day.stderr
    record = json.loads((work / "d.csv.threshold.json").read_text())
    assert record["set_by"] == "alerts_per_day" and record["alert_rate"] == pytest.approx(3 / 300, rel=0.02)


@pytest.mark.parametrize(
    "option, fragments",
    [
        (("--alert-rate", "0"), ["--alert-rate", "(0, 1)"]),
        (("--alert-rate", "1.5"), ["--alert-rate", "(0, 1)"]),
        (("--alert-rate", "often"), ["--alert-rate", "must be a number"]),
        (("--alerts-per-day", "-3"), ["--alerts-per-day", "must be positive"]),
        (("--alert-rate", "0.1", "--alerts-per-day", "3"), ["not allowed with argument"]),
    ],
)
def test_bad_alert_options_give_one_line_and_status_2(work, option, fragments):
    result = call("score", "--model", "detector", "--events", "eval.jsonl", "--out", "bad.csv", *option, cwd=work)
    assert_error(result, *fragments)
    assert not (work / "bad.csv").exists()


def test_a_detector_saved_before_calibration_scores_without_alerts_and_refuses_findings(work, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    for path in (work / "detector").iterdir():
        if path.name != CALIBRATION_FILE:
            (old / path.name).write_bytes(path.read_bytes())
    config = json.loads((old / CONFIG_FILE).read_text())
    config["format_version"] = 1
    del config["calibration"], config["files"][CALIBRATION_FILE]
    (old / CONFIG_FILE).write_text(json.dumps(config))
    assert OCSFAnomalyDetector.load(old).calibration is None
    events = work / "eval.jsonl"
    result = call("score", "--model", old, "--events", events, "--out", tmp_path / "s.csv")
    assert result.returncode == 0 and "no calibration" in result.stderr
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == ["line", "uid", "score"]
    findings = call("score", "--model", old, "--events", events, "--out", tmp_path / "f.csv", "--findings", "f.jsonl")
    assert_error(findings, "saved before calibration existed", "retrain it", "without --findings")
    rate = call("score", "--model", old, "--events", events, "--out", tmp_path / "r.csv", "--alert-rate", "0.01")
    assert_error(rate, "saved before calibration existed", "retrain it")
    with pytest.raises(InputError, match="retrain it"):
        OCSFAnomalyDetector.load(old).percentiles([0.5])


def test_a_damaged_calibration_is_refused_by_name(work, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in (work / "detector").iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / CALIBRATION_FILE).write_bytes((copy / CALIBRATION_FILE).read_bytes()[:-8])
    with pytest.raises(InputError, match=f"{CALIBRATION_FILE} is corrupted"):
        OCSFAnomalyDetector.load(copy)
