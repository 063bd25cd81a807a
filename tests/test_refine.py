"""Baseline refinement (tabresnet_course.detection.refine): disjoint folds find the burst a whole-baseline kNN misses."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tabresnet_course.detection.refine import (
    RefinedScorer,
    detector_refiner,
    fold_outlier_scores,
    refine_reference,
    refined_rows,
)
from tabresnet_course.detection.robust import ReferenceShareKNNScorer
from tabresnet_course.detection.scorers import KNNScorer, ReferenceRankFusion


def baseline_with_burst(seed: int = 0) -> np.ndarray:
    """1,000 normal rows, then a burst of 20 near-duplicates far from them (rows 1000-1019)."""
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(1_000, 3)), 5.0 + 0.01 * rng.normal(size=(20, 3))])


def test_fold_members_find_the_burst_and_the_scores_are_seeded():
    baseline = baseline_with_burst()
    refiner = ReferenceShareKNNScorer(share=0.05)  # k = 11 in a fold of 204 rows
    suspicion = fold_outlier_scores(refiner, baseline, num_folds=5, seed=3)
    assert suspicion.shape == (1_020,) and ((suspicion > 0) & (suspicion <= 1)).all()
    assert suspicion[1_000:].min() > np.quantile(suspicion[:1_000], 0.98)  # about 4 copies per fold
    np.testing.assert_array_equal(suspicion, fold_outlier_scores(refiner, baseline, num_folds=5, seed=3))
    whole = KNNScorer(5).fit(baseline).leave_one_out_scores()
    assert whole[1_000:].max() < np.median(whole[:1_000])  # fitted on everything, the burst is normal


def test_refined_rows_drop_the_share_and_the_burst():
    baseline = baseline_with_burst()
    kept = refined_rows(ReferenceShareKNNScorer(share=0.05), baseline, drop_share=0.03, num_folds=5, seed=0)
    assert len(kept) == 1_020 - round(0.03 * 1_020) and np.all(np.diff(kept) > 0)
    assert not np.isin(np.arange(1_000, 1_020), kept).any()
    assert len(refined_rows(KNNScorer(5), baseline, drop_share=0.0)) == 1_020


def test_refined_scorer_fits_on_the_rows_kept_and_takes_views():
    baseline = baseline_with_burst()
    burst_query = np.full((1, 3), 5.0)
    plain = KNNScorer(5).fit(baseline).score(burst_query)
    refined = RefinedScorer(KNNScorer(5), ReferenceShareKNNScorer(share=0.05), drop_share=0.03).fit(baseline)
    assert refined.score(burst_query) > 10 * plain
    views = [baseline, 2.0 * baseline]
    fusion = ReferenceRankFusion([KNNScorer(5), KNNScorer(5)], combine="max")
    refiner = ReferenceRankFusion([ReferenceShareKNNScorer(0.05), ReferenceShareKNNScorer(0.05)], combine="max")
    scorer = RefinedScorer(fusion, refiner, drop_share=0.03, seed=0).fit(views)
    assert not np.isin(np.arange(1_000, 1_020), scorer.kept_).any()
    assert scorer.score([burst_query, 2.0 * burst_query])[0] > 1.0  # beyond every kept reference row
    np.testing.assert_array_equal(clone(scorer).fit(views).kept_, scorer.kept_)
    with pytest.raises(NotFittedError):
        RefinedScorer(KNNScorer(5), KNNScorer(5)).score(burst_query)


def test_the_detector_refines_on_the_embedding_and_the_raw_codes():
    rng = np.random.default_rng(4)
    embeddings = baseline_with_burst()
    codes = np.hstack([rng.normal(size=(1_020, 1)), rng.integers(0, 3, size=(1_020, 2))]).astype(float)
    codes[1_000:] = [6.0, 2.0, 2.0]  # the burst is a campaign in the raw features too
    refiner = detector_refiner(5, 1, [3, 3])
    assert isinstance(refiner, ReferenceRankFusion) and refiner.combine == "max"
    assert isinstance(detector_refiner(5), ReferenceShareKNNScorer)
    kept = refine_reference(embeddings, codes, 5, 0.05, seed=1, num_numerical=1, cardinalities=[3, 3])
    np.testing.assert_array_equal(kept, refined_rows(refiner, [embeddings, codes], 0.05, seed=1))
    assert not np.isin(np.arange(1_000, 1_020), kept).any()
    np.testing.assert_array_equal(refine_reference(embeddings, None, 5, 0.05, seed=1), refined_rows(
        detector_refiner(5), embeddings, 0.05, seed=1))  # fmt: skip
    assert len(refine_reference(embeddings, None, 5, 0.0, seed=1)) == 1_020  # refinement off
    assert len(refine_reference(embeddings[:20], None, 5, 0.05, seed=1)) == 20  # too few rows for 5 folds


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: refined_rows(KNNScorer(5), baseline_with_burst(), drop_share=0.6), "drop_share"),
        (lambda: fold_outlier_scores(KNNScorer(5), baseline_with_burst(), num_folds=1), "num_folds"),
        (lambda: fold_outlier_scores(KNNScorer(1), np.zeros((5, 2)), num_folds=3), "too few"),
        (lambda: fold_outlier_scores(KNNScorer(1), [np.zeros((10, 2)), np.zeros((9, 2))]), "different numbers"),
    ],
)
def test_bad_settings_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
