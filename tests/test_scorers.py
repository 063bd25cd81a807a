"""Scorers with one fit/score shape (tabresnet_course.detection.scorers) and MFP surprisal (tabresnet_course.detection.surprisal)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tabresnet_course.detection import scorers
from tabresnet_course.detection.base import Scorer
from tabresnet_course.detection.scorers import (
    DETECTOR_SCORERS,
    PYOD_DETECTORS,
    IsolationForestScorer,
    KNNScorer,
    OneHotKNNScorer,
    PyODScorer,
    RankFusionScorer,
    ReferenceRankFusion,
    SubsampledKNNScorer,
    build_detector_scorer,
    installed_knn_backends,
    rank_fusion,
    reference_ranks,
    reference_scores,
    tree_features,
)
from tabresnet_course.detection.surprisal import MFPSurprisalScorer
from tabresnet_course.mfp import TabularResNetWithMFP, cell_cross_entropy
from tabresnet_course.model import TabularResNet, TabularResNetConfig


def normal_rows(n: int, seed: int = 0, d: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_knn_scores_are_mean_distances_and_accept_sparse():
    reference = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    scorer = KNNScorer(k=2).fit(reference)
    np.testing.assert_allclose(scorer.score([[0.0, 0.0]]), [1.5])  # (0 + 3) / 2
    np.testing.assert_allclose(KNNScorer(k=1).fit(reference).score(reference), 0.0)
    np.testing.assert_allclose(KNNScorer(2).fit(sp.csr_matrix(reference)).score(sp.csr_matrix([[0.0, 0.0]])), [1.5])
    assert scorer.get_params() == {"k": 2, "backend": "auto"}


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: KNNScorer(k=0), "k must be"),
        (lambda: KNNScorer(k=5).fit(np.zeros((3, 2))), "fewer than k=5"),
        (lambda: KNNScorer(k=1).fit(np.zeros((3, 2))).score(np.zeros((1, 3))), "3 columns"),
        (lambda: KNNScorer(k=1).fit(np.array([[np.nan, 0.0]])), "NaN"),
        (lambda: KNNScorer(k=1).fit(np.zeros(3)), "2-D"),
        (lambda: KNNScorer(k=1).score(np.zeros((1, 2))), "not fitted"),
        (lambda: SubsampledKNNScorer(k=5, subsample_size=3), "subsample_size"),
        (lambda: SubsampledKNNScorer(aggregate="max"), "aggregate"),
        (lambda: PyODScorer("knn"), "name must be"),
        (lambda: rank_fusion([np.zeros(3), np.zeros(4)]), "equal length"),
        (lambda: rank_fusion([np.zeros(3)], weights=[-1.0]), "weights"),
    ],
)
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_subsampled_knn_is_seeded_and_equals_knn_when_every_member_sees_everything():
    reference, query = normal_rows(200), normal_rows(50, seed=1)
    a = SubsampledKNNScorer(k=3, num_subsamples=5, subsample_size=64, seed=7).fit(reference).score(query)
    b = SubsampledKNNScorer(k=3, num_subsamples=5, subsample_size=64, seed=7).fit(reference).score(query)
    c = SubsampledKNNScorer(k=3, num_subsamples=5, subsample_size=64, seed=8).fit(reference).score(query)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    whole = SubsampledKNNScorer(k=3, num_subsamples=2, subsample_size=500).fit(reference).score(query)
    np.testing.assert_allclose(whole, KNNScorer(k=3).fit(reference).score(query), rtol=1e-6)


def test_a_burst_in_the_reference_hides_from_knn_but_not_from_the_subsampled_ensemble():
    normal = normal_rows(1000)
    burst = np.full((40, 4), 6.0) + np.random.default_rng(2).normal(scale=0.01, size=(40, 4))
    reference = np.vstack([normal, burst])  # the burst is 3.8% of the reference
    query_normal, query_burst = normal_rows(300, seed=3), np.full((1, 4), 6.0)
    for scorer, hidden in ((KNNScorer(k=5), True), (SubsampledKNNScorer(k=5, subsample_size=64, seed=0), False)):
        scorer.fit(reference)
        rank = (scorer.score(query_normal) < scorer.score(query_burst)[0]).mean()
        assert (rank < 0.05) if hidden else (rank > 0.95), (type(scorer).__name__, rank)


@pytest.mark.parametrize("name", PYOD_DETECTORS)
def test_pyod_scorers_rank_an_outlier_first(name):
    reference = normal_rows(300)
    query = np.vstack([normal_rows(50, seed=1), np.full((1, 4), 8.0)])
    scores = PyODScorer(name).fit(reference).score(query)
    assert scores.shape == (51,) and scores.argmax() == 50
    assert PyODScorer(name).get_params()["name"] == name
    assert PyODScorer("lof", {"n_neighbors": 7}).fit(reference)._build().n_neighbors == 7


def test_rank_fusion_averages_normalised_ranks():
    fused = rank_fusion([np.array([1.0, 2.0, 3.0, 4.0]), np.array([40.0, 30.0, 20.0, 10.0])])
    np.testing.assert_allclose(fused, [0.625] * 4)
    np.testing.assert_allclose(rank_fusion([np.array([5.0, 1.0]), np.array([0.0, 9.0])], [3, 1]), [0.875, 0.625])
    scorer = RankFusionScorer([KNNScorer(1), PyODScorer("ecod")]).fit(normal_rows(100))
    scores = scorer.score(np.vstack([normal_rows(9, seed=1), np.full((1, 4), 9.0)]))
    assert scores.argmax() == 9 and scores.max() == 1.0
    assert [type(m).__name__ for m in scorer.get_params()["members"]] == ["KNNScorer", "PyODScorer"]


def test_isolation_forest_scorer_is_seeded_and_ranks_an_outlier_first():
    reference, query = normal_rows(300), np.vstack([normal_rows(20, seed=1), np.full((1, 4), 6.0)])
    first = IsolationForestScorer(seed=3).fit(reference).score(query)
    np.testing.assert_array_equal(first, IsolationForestScorer(seed=3).fit(reference).score(query))
    assert first.argmax() == 20 and not np.allclose(first, IsolationForestScorer(seed=4).fit(reference).score(query))
    with pytest.raises(ValueError, match="not fitted"):
        IsolationForestScorer().score(query)


def test_knn_reference_scores_leave_the_row_itself_out():
    reference = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(reference_scores(KNNScorer(1).fit(reference), reference), [1.0, 1.0, 2.0])
    forest = IsolationForestScorer(seed=0).fit(normal_rows(50))
    np.testing.assert_array_equal(reference_scores(forest, normal_rows(50)), forest.score(normal_rows(50)))


def test_reference_rank_fusion_ranks_against_the_reference_not_the_batch():
    reference = [normal_rows(200), normal_rows(200, seed=5, d=2)]
    query = [
        np.vstack([normal_rows(30, seed=1), np.full((1, 4), 8.0)]),
        np.vstack([normal_rows(30, seed=2, d=2), [[5.0, 5.0]]]),
    ]
    fusion = ReferenceRankFusion([KNNScorer(3), IsolationForestScorer(seed=0)]).fit(reference)
    scores = fusion.score(query)
    assert scores.shape == (31,) and ((scores >= 0) & (scores <= 1)).sum() == 30
    assert scores.argmax() == 30 and scores[30] > 1  # beyond the reference in both views
    one_by_one = [fusion.score([q[i : i + 1] for q in query])[0] for i in range(31)]
    np.testing.assert_allclose(one_by_one, scores)  # no dependence on the other rows scored
    only_first = ReferenceRankFusion([KNNScorer(3), IsolationForestScorer(seed=0)], weights=[1, 0]).fit(reference)
    np.testing.assert_allclose(only_first.score(query), fusion.member_ranks(query)[0])
    either = ReferenceRankFusion([KNNScorer(3), IsolationForestScorer(seed=0)], combine="max").fit(reference)
    np.testing.assert_allclose(either.score(query), fusion.member_ranks(query).max(axis=0))
    with pytest.raises(ValueError, match="1 reference matrices for 2 members"):
        ReferenceRankFusion([KNNScorer(3), IsolationForestScorer()]).fit(reference[:1])
    with pytest.raises(ValueError, match="different numbers of rows"):
        fusion.score([query[0], query[1][:5]])
    with pytest.raises(ValueError, match="weights"):
        ReferenceRankFusion([KNNScorer(3)], weights=[1, 2])
    with pytest.raises(ValueError, match="combine"):
        ReferenceRankFusion([KNNScorer(3)], combine="min")
    with pytest.raises(ValueError, match="weights apply"):
        ReferenceRankFusion([KNNScorer(3)], weights=[1.0], combine="max")


def test_reference_ranks_are_shares_below_and_keep_order_beyond_the_largest():
    yardstick = np.array([1.0, 2.0, 3.0, 5.0])  # median 2.5, largest 5: one spread is 2.5
    ranks = reference_ranks(yardstick, np.array([0.0, 2.0, 5.0, 6.0, 10.0]))
    np.testing.assert_allclose(ranks, [0.0, 0.375, 0.875, 1.4, 3.0])
    assert np.isfinite(reference_ranks(np.zeros(5), np.array([0.0, 1.0]))).all()  # no spread: still finite


def test_one_hot_knn_reads_codes_and_measures_one_hot_distances():
    codes = np.array([[0.0, 3.0, 4.0], [0.0, 3.0, 5.0], [1.0, 4.0, 4.0], [0.0, 3.0, 4.0]])  # 1 numerical, 2 codes
    scorer = OneHotKNNScorer(num_numerical=1, cardinalities=[2, 3], k=1).fit(codes)
    np.testing.assert_allclose(scorer.score([[0.0, 3.0, 5.0], [0.0, 4.0, 5.0]]), [0.0, np.sqrt(2)])
    np.testing.assert_allclose(scorer.leave_one_out_scores(), [0.0, np.sqrt(2), np.sqrt(3), 0.0])
    assert scorer.get_params() == {"num_numerical": 1, "cardinalities": [2, 3], "k": 1}
    with pytest.raises(ValueError, match="4 columns but the scorer was fitted on 3"):
        scorer.score(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="not fitted"):
        OneHotKNNScorer(1, [2]).score(codes[:, :2])
    with pytest.raises(ValueError, match=r"query row 0, categorical column 1: code 7 is not an integer in \[0, 6\)"):
        scorer.score([[0.0, 3.0, 7.0]])


def sparse_one_hot_neighbours(reference, query, num_numerical, cardinalities, k):
    """The search OneHotKNNScorer replaced: scikit-learn's brute force on sparse one-hot rows."""
    from sklearn.neighbors import NearestNeighbors

    def one_hot(codes):
        return scorers.one_hot_features(codes[:, :num_numerical], codes[:, num_numerical:].astype(int), cardinalities)

    index = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(one_hot(reference))
    return index.kneighbors(one_hot(query)), index.kneighbors(n_neighbors=k)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_one_hot_knn_equals_sparse_brute_force_with_unseen_query_categories(seed, k):
    rng = np.random.default_rng(seed)
    cardinalities = [3, 40, 7, 300]
    reference_codes = np.column_stack([rng.integers(3, 3 + c // 2 + 1, 600) for c in cardinalities])
    query_codes = np.column_stack([rng.integers(0, 3 + c, 200) for c in cardinalities])  # half unseen
    numerical = rng.normal(size=(800, 5)).round(1)  # rounded: many exact ties
    reference = np.hstack([numerical[:600], reference_codes])
    query = np.hstack([numerical[600:], query_codes])
    (distances, indices), (loo_distances, _) = sparse_one_hot_neighbours(reference, query, 5, cardinalities, k)
    untied = distances[:, k] - distances[:, k - 1] > 1e-6  # the k-th and the next do not tie: the same rows
    distances, indices = distances[:, :k], indices[:, :k]
    scorer = OneHotKNNScorer(5, cardinalities, k).fit(reference)
    found_distances, found_indices = scorer.kneighbors(query)
    np.testing.assert_allclose(found_distances, distances, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scorer.score(query), distances.mean(axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scorer.leave_one_out_scores(), loo_distances.mean(axis=1), rtol=1e-6, atol=1e-6)
    assert untied.sum() > 100
    np.testing.assert_array_equal(np.sort(found_indices[untied]), np.sort(indices[untied]))
    np.testing.assert_array_equal(np.diff(found_distances, axis=1) >= 0, True)


def test_build_detector_scorer_knows_the_detector_scorers():
    assert isinstance(build_detector_scorer("knn", 4), KNNScorer) and build_detector_scorer("knn", 4).k == 4
    assert isinstance(build_detector_scorer("subsampled_knn", seed=2), SubsampledKNNScorer)
    fusion = build_detector_scorer("fusion_rates", 3, seed=7).get_params()
    assert [(type(m).__name__, m.get_params()) for m in fusion["members"]] == [
        ("KNNScorer", {"k": 3, "backend": "auto"}),
        ("IsolationForestScorer", {"n_estimators": 200, "seed": 7}),
    ]
    assert build_detector_scorer("fusion_iforest", knn_backend="sklearn").members[0].backend == "sklearn"
    either = build_detector_scorer("fusion_knn", 3, num_numerical=2, cardinalities=[4]).get_params()
    assert either["combine"] == "max" and either["members"][1].get_params() == {
        "num_numerical": 2,
        "cardinalities": [4],
        "k": 3,
    }
    with pytest.raises(ValueError, match="needs num_numerical and cardinalities"):
        build_detector_scorer("fusion_knn")
    assert set(DETECTOR_SCORERS) == {
        "knn",
        "subsampled_knn",
        "fusion_knn",
        "fusion_iforest",
        "fusion_rates",
        "fusion_multiscale",
    }
    with pytest.raises(ValueError, match="scorer must be one of"):
        build_detector_scorer("lof")


def test_tree_features_put_codes_and_log_rates_next_to_the_numericals():
    rows = tree_features(np.array([[0.5]], np.float32), np.array([[3, 7]]), np.array([[np.e - 1]]))
    np.testing.assert_allclose(rows, [[0.5, 3.0, 7.0, 1.0]])
    assert tree_features(np.zeros((2, 1)), np.zeros((2, 3), np.int64)).shape == (2, 4)


# --------------------------------------------------------------------------- MFP surprisal


def tiny_mfp_model(seed: int = 0) -> TabularResNetWithMFP:
    torch.manual_seed(seed)
    cardinalities = [3, 7, 2]
    config = TabularResNetConfig(
        num_numerical_features=2, categorical_cardinalities=cardinalities, d_model=8, num_blocks=1
    )
    return TabularResNetWithMFP(TabularResNet.from_config(config), cardinalities, 2)


def tiny_batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    numerical = rng.normal(size=(n, 2)).astype(np.float32)
    categorical = np.stack([rng.integers(3, c + 3, size=n) for c in (3, 7, 2)], axis=1)
    categorical[0, 0] = 0  # a missing cell
    return numerical, categorical


def test_field_surprisal_matches_the_model_forward_with_one_field_masked():
    model = tiny_mfp_model().eval()
    numerical, categorical = tiny_batch(13)
    scorer = MFPSurprisalScorer(model, max_logits=200).fit(tiny_batch(40, seed=1))  # chunks of a few rows
    surprisal = scorer.field_surprisal(numerical, categorical)
    assert surprisal.shape == (13, 5)
    num_t, cat_t = torch.tensor(numerical), torch.tensor(categorical)
    with torch.no_grad():
        for field in range(5):
            num_mask = torch.zeros(13, 2, dtype=torch.bool)
            cat_mask = torch.zeros(13, 3, dtype=torch.bool)
            (num_mask if field < 2 else cat_mask)[:, field % 2 if field < 2 else field - 2] = True
            logits, predictions = model(*model.mask_inputs(num_t, cat_t, num_mask, cat_mask))
            if field < 2:
                variance = scorer.variance_[field]
                error = (predictions[:, field] - num_t[:, field]).double().numpy() ** 2
                expected = 0.5 * np.log(2 * np.pi * variance) + error / (2 * variance)
            else:
                expected = cell_cross_entropy(logits[:, field - 2], cat_t[:, field - 2]).double().numpy()
            np.testing.assert_allclose(surprisal[:, field], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scorer.score((numerical, categorical)), surprisal.sum(axis=1))


def test_surprisal_needs_fit_and_checks_shapes():
    scorer = MFPSurprisalScorer(tiny_mfp_model())
    numerical, categorical = tiny_batch(4)
    with pytest.raises(ValueError, match="not fitted"):
        scorer.field_surprisal(numerical, categorical)
    with pytest.raises(ValueError, match=r"numerical must have shape \(N, 2\)"):
        scorer.fit((numerical[:, :1], categorical))
    with pytest.raises(ValueError, match="pair"):
        scorer.fit(numerical)
    with pytest.raises(ValueError, match="field_names"):
        MFPSurprisalScorer(tiny_mfp_model(), field_names=["a"])


# --------------------------------------------------------------------------- kNN backends


@pytest.mark.parametrize("backend", installed_knn_backends())
def test_exact_backends_agree_with_scikit_learn(backend, monkeypatch):
    monkeypatch.setattr(scorers, "REFERENCE_BLOCK", 37)  # the torch backend merges many tiles
    monkeypatch.setattr(scorers, "QUERY_BLOCK", 50)
    rng = np.random.default_rng(0)
    reference, query = (
        rng.normal(size=(500, 8)) * 3 + 100,
        rng.normal(size=(120, 8)) * 3 + 100,
    )  # far from 0: float32 cancellation
    distances, indices = KNNScorer(5, "sklearn").fit(reference).kneighbors(query)
    found_distances, found_indices = KNNScorer(5, backend).fit(reference).kneighbors(query)
    np.testing.assert_array_equal(np.sort(found_indices, axis=1), np.sort(indices, axis=1))  # no ties in this data
    np.testing.assert_allclose(found_distances, distances, rtol=1e-12)
    assert (np.diff(found_distances, axis=1) >= 0).all()


def test_auto_picks_the_first_installed_backend_and_sklearn_for_sparse():
    reference = np.eye(6)
    assert KNNScorer(2).fit(reference).backend_ == installed_knn_backends()[0]
    assert KNNScorer(2).fit(sp.csr_matrix(reference)).backend_ == "sklearn"
    with pytest.raises(ValueError, match="needs a dense reference"):
        KNNScorer(2, "torch").fit(sp.csr_matrix(reference))
    with pytest.raises(ValueError, match="backend must be one of"):
        KNNScorer(2, "annoy")


def test_hnsw_is_approximate_but_close_on_clustered_data():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 16)) * 10
    reference = centres[rng.integers(0, 20, 2000)] + rng.normal(size=(2000, 16))
    query = centres[rng.integers(0, 20, 200)] + rng.normal(size=(200, 16))
    _, exact = KNNScorer(5, "sklearn").fit(reference).kneighbors(query)
    _, approximate = KNNScorer(5, "faiss_hnsw").fit(reference).kneighbors(query)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approximate, exact)])
    assert recall > 0.9


# --------------------------------------------------------------------------- the scorer contract


def every_scorer() -> list[Scorer]:
    """One unfitted instance of every scorer class, with non-default settings."""
    return [
        KNNScorer(k=2, backend="sklearn"),
        SubsampledKNNScorer(k=2, num_subsamples=3, subsample_size=16, seed=4),
        PyODScorer("hbos", {"n_bins": 5}),
        RankFusionScorer([KNNScorer(1), IsolationForestScorer(n_estimators=10, seed=2)], weights=[2.0, 1.0]),
        IsolationForestScorer(n_estimators=10, seed=3),
        OneHotKNNScorer(num_numerical=1, cardinalities=[2, 3], k=1),
        ReferenceRankFusion([KNNScorer(1), IsolationForestScorer(n_estimators=10)], combine="max"),
        MFPSurprisalScorer(tiny_mfp_model(), field_names=["a", "b", "c", "d", "e"], max_logits=500),
    ]


def fit_and_query(scorer: Scorer) -> tuple[object, object]:
    """A reference and a query in the form ``scorer`` takes."""
    if isinstance(scorer, MFPSurprisalScorer):
        return tiny_batch(30), tiny_batch(5, seed=1)
    codes = np.column_stack([normal_rows(40, d=1)[:, 0], np.arange(40) % 2 + 3, np.arange(40) % 3 + 3])
    if isinstance(scorer, OneHotKNNScorer):
        return codes, codes[:5]
    if isinstance(scorer, ReferenceRankFusion):
        return [normal_rows(40), codes], [normal_rows(5, seed=1), codes[:5]]
    return normal_rows(40), normal_rows(5, seed=1)


@pytest.mark.parametrize("scorer", every_scorer(), ids=lambda scorer: type(scorer).__name__)
def test_every_scorer_keeps_the_contract(scorer):
    assert isinstance(scorer, Scorer)
    reference, query = fit_and_query(scorer)
    with pytest.raises(NotFittedError, match="not fitted"):
        scorer.score(query)
    twin = clone(scorer)
    assert type(twin) is type(scorer) and twin is not scorer
    assert set(twin.get_params(deep=True)) == set(scorer.get_params(deep=True))
    assert scorer.fit(reference) is scorer
    scores = scorer.score(query)
    assert scores.shape == (5,) and np.isfinite(scores).all()
    np.testing.assert_allclose(twin.fit(reference).score(query), scores)  # a clone scores alike
    with pytest.raises(NotFittedError):
        clone(scorer).score(query)  # a clone starts unfitted


def test_the_contract_is_enforced_and_nested_parameters_are_reachable():
    class Incomplete(Scorer):
        def fit(self, reference):
            return self

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
    fusion = build_detector_scorer("fusion_iforest", k=3, seed=5)
    assert isinstance(fusion, Scorer)
    assert clone(fusion).members[1].get_params() == {"n_estimators": 200, "seed": 5}
    assert KNNScorer(k=4).set_params(k=6).k == 6
