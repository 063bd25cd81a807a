"""Tests for tabresnet_course.synthetic (the method chapters' toy table)."""

import numpy as np

from tabresnet_course.synthetic import CATEGORICAL_COLUMNS, NUMERICAL_COLUMNS, VOCABULARIES, make_profile_events


def test_same_seed_same_table_and_columns_as_documented():
    table, profile = make_profile_events(500, seed=3)
    again, profile_again = make_profile_events(500, seed=3)
    assert table.equals(again) and np.array_equal(profile, profile_again)
    assert list(table.columns) == NUMERICAL_COLUMNS + CATEGORICAL_COLUMNS
    for column, vocabulary in VOCABULARIES.items():
        assert set(table[column]) <= set(vocabulary)
    assert not make_profile_events(500, seed=4)[0].equals(table)


def test_profiles_shift_the_numbers():
    table, profile = make_profile_events(4000, seed=0)
    means = table.groupby(profile)["log_bytes_out"].mean()
    assert means.idxmax() == 2  # bulk transfers move the most bytes
    assert 0.05 < (table["status"] == "failure").mean() < 0.15
