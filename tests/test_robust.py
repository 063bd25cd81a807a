"""Scorers robust to campaigns in the baseline (tabresnet_course.detection.robust): a burst planted in the reference."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tabresnet_course.detection.refine import RefinedScorer
from tabresnet_course.detection.robust import MultiScaleKNNScorer, ReferenceShareKNNScorer, reference_share_k
from tabresnet_course.detection.scorers import KNNScorer, SubsampledKNNScorer, build_detector_scorer, one_hot_features


def burst_reference(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2,000 normal rows plus a burst of 30 near-duplicates far from them, and queries: 200 fresh
    normal rows followed by 20 fresh rows of the burst."""
    rng = np.random.default_rng(seed)
    centre = np.full(4, 6.0)
    reference = np.vstack([rng.normal(size=(2_000, 4)), centre + 0.01 * rng.normal(size=(30, 4))])
    queries = np.vstack([rng.normal(size=(200, 4)), centre + 0.01 * rng.normal(size=(20, 4))])
    is_burst = np.r_[np.zeros(200, bool), np.ones(20, bool)]
    return reference, queries, is_burst


def burst_rank(scores: np.ndarray, is_burst: np.ndarray) -> float:
    """Share of the normal queries that score below the lowest-scoring burst query."""
    return float((scores[~is_burst] < scores[is_burst].min()).mean())


ROBUST = {
    "share_knn": lambda: ReferenceShareKNNScorer(share=0.05),
    "multiscale": lambda: MultiScaleKNNScorer(k=5, share=0.05),
    "subsampled": lambda: SubsampledKNNScorer(k=5, num_subsamples=10, subsample_size=100, seed=0),
    "refined": lambda: RefinedScorer(KNNScorer(5), ReferenceShareKNNScorer(share=0.05), drop_share=0.05, seed=0),
}


def test_a_burst_in_the_reference_hides_from_k5_knn():
    reference, queries, is_burst = burst_reference()
    scores = KNNScorer(5).fit(reference).score(queries)
    assert burst_rank(scores, is_burst) < 0.05  # the burst scores below almost every normal row


@pytest.mark.parametrize("name", sorted(ROBUST))
def test_robust_scorers_keep_a_planted_burst_above_every_normal_row(name):
    reference, queries, is_burst = burst_reference()
    scorer = ROBUST[name]().fit(reference)
    assert burst_rank(scorer.score(queries), is_burst) == 1.0
    clean = ROBUST[name]().fit(reference[:2_000]).score(queries)
    assert burst_rank(clean, is_burst) == 1.0  # and on a clean reference too


def test_k_grows_with_the_reference():
    assert reference_share_k(4_000, 0.02, 5) == 80
    assert reference_share_k(100, 0.02, 5) == 5
    assert reference_share_k(4, 0.5, 5) == 3  # at most the other rows
    reference, _, _ = burst_reference()
    assert ReferenceShareKNNScorer(share=0.05).fit(reference).large_k_ == 102


def test_multiscale_is_the_larger_of_its_members_in_reference_units():
    reference, queries, _ = burst_reference()
    scorer = MultiScaleKNNScorer(k=5, share=0.05).fit(reference)
    small = KNNScorer(5).fit(reference).score(queries)
    large = KNNScorer(102).fit(reference).score(queries)
    expected = np.maximum(small / scorer.medians_[0], large / scorer.medians_[1])
    np.testing.assert_allclose(scorer.score(queries), expected, rtol=1e-9)
    mean = MultiScaleKNNScorer(k=5, share=0.05, combine="mean").fit(reference).score(queries)
    np.testing.assert_allclose(mean, (small / scorer.medians_[0] + large / scorer.medians_[1]) / 2, rtol=1e-9)
    loo = scorer.leave_one_out_scores()
    assert loo.shape == (len(reference),) and np.median(loo) >= 1.0


def test_the_large_member_searches_a_bounded_subsample():
    reference, queries, is_burst = burst_reference()
    scorer = MultiScaleKNNScorer(k=5, share=0.05, max_rows=500, seed=1).fit(reference)
    assert scorer.large_k_ == 25 and len(scorer.subsample_) == 500
    assert burst_rank(scorer.score(queries), is_burst) == 1.0  # about 7 burst rows among 500 < 25
    assert scorer.leave_one_out_scores().shape == (len(reference),)
    share = ReferenceShareKNNScorer(share=0.05, max_rows=500, seed=1).fit(reference)
    np.testing.assert_array_equal(share.subsample_, scorer.subsample_)
    expected = KNNScorer(25).fit(reference[share.subsample_]).score(queries)
    np.testing.assert_allclose(share.score(queries), expected, rtol=1e-9)
    outside = np.setdiff1d(np.arange(len(reference)), share.subsample_)
    np.testing.assert_allclose(
        share.leave_one_out_scores()[outside], KNNScorer(25).fit(reference[share.subsample_]).score(reference[outside])
    )


def test_the_codes_view_scores_like_its_one_hot_rows():
    rng = np.random.default_rng(1)
    numerical, categorical = rng.normal(size=(300, 2)), rng.integers(0, 4, size=(300, 3))
    cardinalities = [4, 4, 4]
    codes = np.hstack([numerical, categorical]).astype(float)
    one_hot = one_hot_features(numerical, categorical, cardinalities).toarray()
    for make in (ReferenceShareKNNScorer, MultiScaleKNNScorer):
        on_codes = make(num_numerical=2, cardinalities=cardinalities).fit(codes[:200])
        on_one_hot = make().fit(one_hot[:200])
        np.testing.assert_allclose(on_codes.score(codes[200:]), on_one_hot.score(one_hot[200:]), rtol=1e-6)
        np.testing.assert_allclose(on_codes.leave_one_out_scores(), on_one_hot.leave_one_out_scores(), rtol=1e-6)


def test_the_scorer_contract_holds():
    reference, queries, _ = burst_reference()
    for make in (ReferenceShareKNNScorer, MultiScaleKNNScorer):
        scorer = make()
        with pytest.raises(NotFittedError):
            scorer.score(queries)
        twin = clone(scorer).fit(reference)
        np.testing.assert_array_equal(twin.score(queries), make().fit(reference).score(queries))
        assert set(scorer.get_params()) >= {"k", "share", "num_numerical", "cardinalities"}
        with pytest.raises(ValueError, match="3 columns but the scorer expects 4"):
            twin.score(queries[:, :3])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ReferenceShareKNNScorer(share=0.0), "share must be"),
        (lambda: MultiScaleKNNScorer(share=1.5), "share must be"),
        (lambda: MultiScaleKNNScorer(k=0), "k must be"),
        (lambda: ReferenceShareKNNScorer(max_rows=1), "max_rows must be"),
        (lambda: MultiScaleKNNScorer(combine="min"), "combine must be"),
        (lambda: MultiScaleKNNScorer(num_numerical=2), "both num_numerical and cardinalities"),
        (lambda: MultiScaleKNNScorer(k=5).fit(np.zeros((5, 2))), "need more than k=5"),
        (lambda: MultiScaleKNNScorer(num_numerical=1, cardinalities=[3]).fit(np.zeros((9, 3))), "expects 2"),
        (lambda: ReferenceShareKNNScorer().fit(np.array([[np.nan, 0.0]] * 9)), "NaN"),
    ],
)
def test_bad_settings_and_input_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_detector_builds_the_multiscale_fusion_on_its_two_views():
    layout = {"num_numerical": 2, "cardinalities": [3, 3]}
    fusion = build_detector_scorer("fusion_multiscale", 4, 0, **layout)
    assert [type(m) for m in fusion.members] == [MultiScaleKNNScorer, MultiScaleKNNScorer]
    assert fusion.combine == "max" and fusion.members[1].cardinalities == [3, 3] and fusion.members[0].k == 4
    with pytest.raises(ValueError, match="needs num_numerical and cardinalities"):
        build_detector_scorer("fusion_multiscale")
