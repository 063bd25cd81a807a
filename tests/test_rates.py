"""Per-entity rate features without look-ahead (tabresnet_course.features.rates)."""

import numpy as np
import pandas as pd
import pytest

from tabresnet_course.features.rates import ChunkedRates, rate_feature_names, rate_features
from tabresnet_course.ocsf.generator import generate_ocsf_events

MINUTE = 60_000


def logons(times, ips, users=None, status=2) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {
            "time": times,
            "class_uid": [3002] * n,
            "status_id": [status] * n if np.isscalar(status) else status,
            "src_endpoint.ip": ips,
            "user.name": users if users is not None else ["alice"] * n,
        }
    )


def test_a_burst_gets_high_rates_and_a_single_event_rate_one():
    burst = logons([i * 1_000 for i in range(30)], ["192.0.2.9"] * 30, [f"u{i}" for i in range(30)])
    single = logons([10 * MINUTE], ["10.0.0.1"], ["bob"])
    rates = rate_features(pd.concat([burst, single], ignore_index=True))
    assert list(rates.columns) == rate_feature_names()
    np.testing.assert_array_equal(rates["failed_logons_per_source_5m"].iloc[:30], np.arange(1, 31))
    assert rates["events_per_source_1m"].iloc[29] == 30
    assert (rates["failed_logons_per_user_5m"].iloc[:30] == 1).all()  # every user tried once
    assert rates.iloc[30][
        ["events_per_source_1m", "failed_logons_per_source_5m", "failed_logons_per_user_5m"]
    ].tolist() == [1, 1, 1]


def test_users_are_read_from_the_same_sources_as_the_user_feature():
    frame = logons([0, 1_000, 2_000], ["a", "b", "c"], users=[None, None, "carol"])
    frame["actor.user.email_addr"] = ["eve@example.com", "eve@example.com", None]
    rates = rate_features(frame)
    assert rates["failed_logons_per_user_5m"].tolist() == [1, 2, 1], "a user known only by e-mail counts"


def test_windows_forget_old_events_and_count_only_failures():
    frame = logons([0, 30_000, 4 * MINUTE, 6 * MINUTE], ["a"] * 4, status=[2, 1, 2, 2])
    rates = rate_features(frame)
    assert rates["events_per_source_1m"].tolist() == [1, 2, 1, 1]
    assert rates["failed_logons_per_source_5m"].tolist() == [1, 1, 2, 2]  # 6 min: the one at 0 has left


def test_no_look_ahead_and_input_order_does_not_matter():
    events = generate_ocsf_events(2_000, days=1, seed=3).frame
    cut = len(events) // 2
    earlier = rate_features(events.iloc[:cut])
    whole = rate_features(events)
    pd.testing.assert_frame_equal(whole.iloc[:cut], earlier)  # later events change nothing before them
    shuffled = events.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(rate_features(shuffled).loc[events.index], whole)


def test_distinct_ports_and_bytes():
    frame = pd.DataFrame(
        {
            "time": [0, 1_000, 2_000, 3_000, MINUTE + 1, 30 * MINUTE],
            "src_endpoint.ip": ["h"] * 6,
            "dst_endpoint.port": [22, 80, 22, 443, 22, 22],
            "traffic.bytes_out": [100, 200, None, 300, 1, 5],
            "actor.user.name": ["x", "x", None, "x", "x", "x"],
        }
    )
    rates = rate_features(frame)
    assert rates["distinct_ports_per_source_1m"].tolist() == [1, 2, 2, 3, 1, 1]
    assert rates["bytes_out_per_source_1h"].tolist() == [100, 300, 300, 600, 601, 606]
    assert rates["bytes_out_per_user_1h"].tolist() == [100, 300, 0, 600, 601, 606]
    assert (rates["failed_logons_per_source_5m"] == 0).all()  # no class_uid column: no logons


def test_absent_entities_give_zeros_and_bad_time_is_refused():
    rates = rate_features(pd.DataFrame({"time": [0, 1]}))
    assert (rates.to_numpy() == 0).all() and rates.shape == (2, 6)
    with pytest.raises(ValueError, match="'time'"):
        rate_features(pd.DataFrame({"class_uid": [3002]}))
    with pytest.raises(ValueError, match="column 'time', row 1"):
        rate_features(pd.DataFrame({"time": [0, "soon"]}))
    lots = rate_features(
        pd.DataFrame({"time": [0, 1], "src_endpoint.ip": ["a", "a"], "traffic.bytes_out": ["lots", 5]})
    )
    assert lots["bytes_out_per_source_1h"].tolist() == [0, 5]  # text that is not a number counts as missing
    untimed = rate_features(pd.DataFrame({"time": [0, None, 2, 1e300], "src_endpoint.ip": ["a"] * 4}), untimed="zero")
    assert untimed["events_per_source_1m"].tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match="column 'time', row 1"):
        rate_features(pd.DataFrame({"time": [0, 10**30]}))
    assert (rate_features(pd.DataFrame({"class_uid": [3002]}), untimed="zero").to_numpy() == 0).all()
    with pytest.raises(ValueError, match="failed_logon_minutes"):
        rate_features(pd.DataFrame({"time": [0]}), failed_logon_minutes=0)


def test_brute_force_stands_out_in_generated_events():
    events = generate_ocsf_events(5_000, days=2, seed=1)
    rates = rate_features(events.frame)
    brute = (events.labels["scenario"] == "brute_force").to_numpy()
    normal = ~events.labels["is_anomaly"].to_numpy()
    assert np.median(rates["failed_logons_per_source_5m"][brute]) > rates["failed_logons_per_source_5m"][normal].max()


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_chunked_rates_equal_the_whole_period_for_time_ordered_input(size):
    frame = generate_ocsf_events(600, days=1, seed=5).frame
    frame.loc[[3, 200], "time"] = None  # untimed events: zero rates, counted nowhere
    assert (np.diff(frame["time"].dropna().to_numpy()) >= 0).all()
    stream = ChunkedRates()
    chunked = pd.concat([stream.transform(frame.iloc[start : start + size]) for start in range(0, len(frame), size)])
    pd.testing.assert_frame_equal(chunked, rate_features(frame, untimed="zero"))
    assert stream.context["time"].max() - stream.context["time"].min() < 60 * MINUTE  # only the last hour is kept


def test_chunked_rates_cannot_count_an_older_event_towards_an_earlier_chunk():
    events = logons([2 * MINUTE, MINUTE + 30_000], ["192.0.2.9"] * 2)
    stream = ChunkedRates()
    chunked = pd.concat([stream.transform(events.iloc[:1]), stream.transform(events.iloc[1:])])
    assert chunked["events_per_source_1m"].tolist() == [1.0, 1.0]
    assert rate_features(events)["events_per_source_1m"].tolist() == [2.0, 1.0]
