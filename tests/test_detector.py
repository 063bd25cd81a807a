"""Tests for tabresnet_course.detection.detector: training, row-aligned scoring, the saved artefact."""

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from tabresnet_course.detection.detector import OCSFAnomalyDetector, train_ocsf_anomaly_detector
from tabresnet_course.detection.pipeline import build_encoder, split_rows
from tabresnet_course.detection.saved import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    FEATURES_FILE,
    REFERENCE_FILE,
    REFERENCE_SAMPLE_FILE,
    REFERENCE_SCORES_FILE,
    WEIGHTS_FILE,
)
from tabresnet_course.detection.scorers import KNNScorer
from tabresnet_course.errors import InputError
from tabresnet_course.events.flat import as_flat_frame
from tabresnet_course.features.rates import rate_feature_names
from tabresnet_course.ocsf.generator import generate_ocsf_events

TINY = dict(num_epochs=1, d_model=16, num_blocks=1, batch_size=128, device="cpu", seed=0)


@pytest.fixture(scope="module")
def baseline():
    return generate_ocsf_events(600, days=2, seed=3, anomalies=False)


@pytest.fixture(scope="module")
def detector(baseline):
    return train_ocsf_anomaly_detector(baseline, **TINY)


@pytest.fixture(scope="module")
def saved(detector, tmp_path_factory):
    return detector.save(tmp_path_factory.mktemp("saved") / "detector")


def test_training_records_how_it_was_trained(detector, baseline):
    kept = len(baseline) - round(0.05 * len(baseline))  # refine_share 0.05 drops the most suspect rows
    assert detector.reference_embeddings.shape == (kept, 16) and detector.training["reference_rows"] == kept
    assert detector.training["training_rows"] == len(baseline)
    assert len(detector.training["history"]["train_loss"]) == 1
    assert detector.training["history"]["val_loss"][0] is not None
    assert detector.training["config"]["objective"] == "contrastive"


def test_scores_are_one_per_record_in_input_order(detector):
    frame = generate_ocsf_events(300, days=1, seed=9, anomalies=False).frame
    scores = detector.score(frame)
    assert scores.shape == (300,) and np.isfinite(scores).all() and (scores >= 0).all()
    reversed_frame = frame.iloc[::-1]
    np.testing.assert_allclose(detector.score(reversed_frame), scores[::-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(detector.score(frame.iloc[[5, 0, 17]]), scores[[5, 0, 17]], rtol=1e-5, atol=1e-6)


def test_nested_dicts_and_flat_frames_score_the_same(detector):
    generated = generate_ocsf_events(100, days=1, seed=11, anomalies=False)
    np.testing.assert_allclose(
        detector.score(generated.to_events()), detector.score(generated.frame), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(detector.score(generated), detector.score(generated.frame))


def test_same_seed_trains_the_same_detector(baseline, detector):
    again = train_ocsf_anomaly_detector(baseline, **TINY)
    for name, tensor in detector.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[name], tensor, rtol=0, atol=0)


def test_mfp_objective_and_reference_subset(baseline):
    detector = train_ocsf_anomaly_detector(baseline, objective="both", reference_size=100, refine_share=0.0, **TINY)
    assert detector.reference_embeddings.shape == (100, 16)
    assert detector.score(baseline.frame.iloc[:10]).shape == (10,)


def test_untrained_copy_starts_from_the_training_initialisation(detector):
    untrained = detector.untrained_copy()
    fresh = build_encoder(detector.model.config, seed=TINY["seed"])
    for name, tensor in fresh.state_dict().items():
        torch.testing.assert_close(untrained.model.state_dict()[name], tensor)
    assert not torch.equal(untrained.model.input_projection.weight, detector.model.input_projection.weight)
    with pytest.raises(ValueError, match="no reference set"):
        untrained.score(as_flat_frame(generate_ocsf_events(10, days=1, anomalies=False)))


def test_save_and_load_give_identical_scores(detector, saved, baseline):
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        [
            CONFIG_FILE,
            REFERENCE_FILE,
            FEATURES_FILE,
            REFERENCE_SAMPLE_FILE,
            REFERENCE_SCORES_FILE,
            WEIGHTS_FILE,
            CALIBRATION_FILE,
        ]
    )
    loaded = OCSFAnomalyDetector.load(saved)
    frame = baseline.frame.iloc[:200]
    np.testing.assert_array_equal(loaded.score(frame), detector.score(frame))
    np.testing.assert_array_equal(loaded.reference_embeddings, detector.reference_embeddings)
    assert loaded.k == detector.k


def test_saved_files_are_plain_data(saved):
    state = torch.load(saved / WEIGHTS_FILE, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    config = json.loads((saved / CONFIG_FILE).read_text())
    assert config["format_version"] >= 1 and config["package_version"]
    for key in ("model_config", "feature_spec", "featurizer", "preprocessor", "training", "k"):
        assert key in config
    assert np.load(saved / REFERENCE_FILE, allow_pickle=False).dtype == np.float32


def test_save_refuses_to_overwrite(detector, tmp_path):
    target = detector.save(tmp_path / "d")
    with pytest.raises(InputError, match="already exists"):
        detector.save(target)
    detector.save(target, overwrite=True)
    OCSFAnomalyDetector.load(target)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="does not hold a saved detector"):
        detector.save(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "precious"]  # no temporary leftovers


@pytest.fixture
def copy_of(saved, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def rewrite_config(directory, change):
    config = json.loads((directory / CONFIG_FILE).read_text())
    change(config)
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def test_load_refuses_missing_directory_and_files(copy_of, tmp_path):
    with pytest.raises(InputError, match="no such detector directory"):
        OCSFAnomalyDetector.load(tmp_path / "nowhere")
    (copy_of / REFERENCE_FILE).unlink()
    with pytest.raises(InputError, match=f"{REFERENCE_FILE}: no such file"):
        OCSFAnomalyDetector.load(copy_of)


def test_load_detects_corrupted_weights(copy_of):
    data = bytearray((copy_of / WEIGHTS_FILE).read_bytes())
    (copy_of / WEIGHTS_FILE).write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(InputError, match=f"{WEIGHTS_FILE} is corrupted"):
        OCSFAnomalyDetector.load(copy_of)


def test_load_refuses_pickled_objects_even_with_a_matching_checksum(copy_of):
    import hashlib

    payload = pickle.dumps({"input_projection.weight": np.zeros(3)}, protocol=2)  # not a tensor: needs unpickling numpy
    (copy_of / WEIGHTS_FILE).write_bytes(payload)
    rewrite_config(copy_of, lambda c: c["files"].update({WEIGHTS_FILE: hashlib.sha256(payload).hexdigest()}))
    with pytest.raises(InputError, match="not a weights-only state_dict"):
        OCSFAnomalyDetector.load(copy_of)


def test_load_refuses_another_format_version(copy_of):
    rewrite_config(copy_of, lambda c: c.update(format_version=99))
    with pytest.raises(InputError, match="format_version 99"):
        OCSFAnomalyDetector.load(copy_of)


def test_load_refuses_a_config_that_does_not_match_the_weights(copy_of):
    rewrite_config(copy_of, lambda c: c["model_config"].update(d_model=32))
    with pytest.raises(InputError, match="does not match the model"):
        OCSFAnomalyDetector.load(copy_of)


def test_load_refuses_a_model_config_that_does_not_match_the_preprocessor(copy_of):
    def change(config):
        config["model_config"]["categorical_cardinalities"][0] += 1

    rewrite_config(copy_of, change)
    with pytest.raises(InputError, match="preprocessor produces"):
        OCSFAnomalyDetector.load(copy_of)


def test_load_refuses_invalid_json(copy_of):
    (copy_of / CONFIG_FILE).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        OCSFAnomalyDetector.load(copy_of)


def test_knn_scorer_is_the_mean_distance_to_the_k_nearest():
    reference = np.array([[0.0], [1.0], [3.0], [10.0]])
    scores = KNNScorer(k=2).fit(reference).score(np.array([[0.0], [9.0]]))
    np.testing.assert_allclose(scores, [(0 + 1) / 2, (1 + 6) / 2])
    with pytest.raises(ValueError, match="fewer than k=5"):
        KNNScorer(k=5).fit(reference)


def test_split_rows_is_seeded_and_disjoint():
    train, validation = split_rows(100, 0.2, seed=1)
    assert len(validation) == 20 and not set(train) & set(validation)
    np.testing.assert_array_equal(split_rows(100, 0.2, seed=1)[1], validation)
    assert len(split_rows(5, 0.1, seed=0)[1]) == 0  # too few rows for a validation set


def test_load_refuses_a_bad_k(copy_of):
    rewrite_config(copy_of, lambda c: c.update(k=0))
    with pytest.raises(InputError, match="k must be a positive integer"):
        OCSFAnomalyDetector.load(copy_of)


# --------------------------------------------------------------------------- the one configuration


def test_detector_config_round_trips_json_and_routes_options():
    from tabresnet_course.detection.config import DetectorConfig

    config = DetectorConfig().with_options(d_model=32, num_epochs=3, temperature=0.5, reference_size=50, k=7)
    assert (config.d_model, config.reference_size, config.k) == (32, 50, 7)
    assert (config.training.num_epochs, config.training.temperature) == (3, 0.5)
    restored = DetectorConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert DetectorConfig().options()["num_epochs"] == 10 and DetectorConfig().options()["d_model"] == 64
    with pytest.raises(TypeError, match="unknown detector options"):
        DetectorConfig().with_options(width=3)
    with pytest.raises(ValueError, match="unknown DetectorConfig fields"):
        DetectorConfig.from_dict({"width": 3})
    with pytest.raises(ValueError, match="k must be a positive integer"):
        DetectorConfig(k=0)
    with pytest.raises(ValueError, match="normalization"):
        DetectorConfig(normalization="groupnorm")


def test_the_trained_detector_carries_its_config_and_the_artefact_stores_it(detector, saved):
    assert (detector.config.d_model, detector.config.batch_size, detector.config.training.num_epochs) == (16, 128, 1)
    assert detector.model.config.d_model == detector.config.d_model
    stored = json.loads((saved / CONFIG_FILE).read_text())["detector_config"]
    assert stored == detector.config.to_dict()
    assert OCSFAnomalyDetector.load(saved).config == detector.config


def test_a_detector_saved_before_detector_config_existed_still_loads(detector, copy_of, baseline):
    def as_format_1(config):
        del config["detector_config"]

    rewrite_config(copy_of, as_format_1)
    loaded = OCSFAnomalyDetector.load(copy_of)
    # rebuilt from model_config, k and the training record; detectors of that format scored with kNN,
    # unrefined (the refined reference reads as a reference subset)
    rows = len(detector.reference_embeddings)
    assert loaded.config == replace(detector.config, scorer="knn", refine_share=0.0, reference_size=rows)
    frame = baseline.frame.iloc[:50]
    knn = KNNScorer(detector.k).fit(detector.reference_embeddings)
    np.testing.assert_allclose(loaded.score(frame), knn.score(detector.embed(frame)), rtol=1e-5)


def test_not_fitted_is_sklearn_not_fitted_error(detector):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        KNNScorer(k=2).score(np.zeros((1, 1)))
    assert KNNScorer(k=3, backend="sklearn").get_params() == {"k": 3, "backend": "sklearn"}
    untrained = detector.untrained_copy()
    with pytest.raises(NotFittedError, match="no reference set"):
        untrained.score(generate_ocsf_events(10, days=1, anomalies=False).frame)
    with pytest.raises(NotFittedError, match="without a reference set"):
        untrained.save("unused")


# --------------------------------------------------------------------------- scorers and protected columns


@pytest.fixture(scope="module")
def fusion_detector(baseline):
    return train_ocsf_anomaly_detector(baseline, **{**TINY, "scorer": "fusion_rates"})


def test_fusion_detector_saves_reference_features_and_scores_the_same_after_loading(
    fusion_detector, baseline, tmp_path
):
    saved = fusion_detector.save(tmp_path / "fusion")
    assert sorted(p.name for p in saved.iterdir()) == [
        CALIBRATION_FILE,
        CONFIG_FILE,
        REFERENCE_FILE,
        FEATURES_FILE,
        REFERENCE_SAMPLE_FILE,
        REFERENCE_SCORES_FILE,
        WEIGHTS_FILE,
    ]
    numerical, categorical = fusion_detector.preprocess(baseline.frame.iloc[:1])
    width = numerical.shape[1] + categorical.shape[1] + len(rate_feature_names())  # numbers, codes, rates
    rows = len(baseline) - round(0.05 * len(baseline))  # refined on the embedding (rates are not a codes view)
    assert np.load(saved / FEATURES_FILE, allow_pickle=False).shape == (rows, width)
    query = generate_ocsf_events(300, days=1, seed=9, anomalies=True).frame
    scores = fusion_detector.score(query)
    assert (scores >= 0).all()
    np.testing.assert_array_equal(OCSFAnomalyDetector.load(saved).score(query), scores)  # the forest is regrown
    (saved / FEATURES_FILE).unlink()
    with pytest.raises(InputError, match=FEATURES_FILE):
        OCSFAnomalyDetector.load(saved)


def test_load_takes_the_stored_reference_scores_and_older_detectors_recompute_them(detector, saved, copy_of):
    from tabresnet_course.detection import scorers

    query = generate_ocsf_events(300, days=1, seed=9, anomalies=True).frame
    stored = np.load(saved / REFERENCE_SCORES_FILE, allow_pickle=False)
    assert stored.dtype == np.float64 and stored.shape == (2, len(detector.reference_embeddings))
    np.testing.assert_array_equal(stored, np.stack(detector.scorer_.reference_scores_))
    with pytest.MonkeyPatch.context() as patch:  # nothing searches the reference at load time
        patch.setattr(scorers.OneHotKNNScorer, "leave_one_out_scores", None)
        patch.setattr(scorers.KNNScorer, "leave_one_out_scores", None)
        np.testing.assert_array_equal(OCSFAnomalyDetector.load(saved).score(query), detector.score(query))
    (copy_of / REFERENCE_SCORES_FILE).unlink()

    def format_2(config):
        config["files"].pop(REFERENCE_SCORES_FILE)
        config.update(format_version=2)

    rewrite_config(copy_of, format_2)
    with pytest.warns(UserWarning, match="recomputed at every load"):
        older = OCSFAnomalyDetector.load(copy_of)
    np.testing.assert_array_equal(older.score(query), detector.score(query))


@pytest.mark.parametrize("scorer", ["fusion_iforest", "fusion_knn"])
def test_fusion_without_rates_scores_each_event_on_its_own(baseline, scorer):
    detector = train_ocsf_anomaly_detector(baseline, **{**TINY, "scorer": scorer})
    query = generate_ocsf_events(40, days=1, seed=9, anomalies=False).frame
    together = detector.score(query)
    np.testing.assert_allclose([detector.score(query.iloc[[i]])[0] for i in range(0, 40, 7)], together[::7])


def test_default_fusion_multiscale_on_the_refined_baseline_stores_codes_and_takes_the_stranger_of_two_opinions(
    detector, baseline, tmp_path
):
    assert (detector.config.scorer, detector.config.refine_share) == ("fusion_multiscale", 0.05)  # the study's choice
    numerical, categorical = detector.preprocess(baseline.frame)
    kept = detector.refined_rows(
        detector.embed(baseline), detector.raw_features(baseline.frame, numerical, categorical)
    )
    assert len(kept) == len(detector.reference_embeddings) == len(baseline) - round(0.05 * len(baseline))
    saved = detector.save(tmp_path / "default")
    features = np.load(saved / FEATURES_FILE, allow_pickle=False)
    assert features.shape == (len(kept), numerical.shape[1] + categorical.shape[1])  # numbers, then codes
    np.testing.assert_array_equal(features[:, numerical.shape[1] :], categorical[kept])
    query = generate_ocsf_events(300, days=1, seed=9, anomalies=True).frame
    scores = detector.score(query)
    np.testing.assert_array_equal(OCSFAnomalyDetector.load(saved).score(query), scores)
    ranks = detector.scorer_.member_ranks(
        [detector.embed(query), detector.raw_features(query, *detector.preprocess(query))]
    )
    np.testing.assert_allclose(scores, ranks.max(axis=0))
    assert (ranks[0] != ranks[1]).any()  # the embedding and the raw features disagree somewhere


def test_scorer_and_protected_columns_are_checked_and_a_detector_saved_without_them_loads_as_knn(detector, copy_of):
    from tabresnet_course.detection.config import DetectorConfig

    with pytest.raises(ValueError, match="scorer must be one of"):
        DetectorConfig(scorer="lof")
    with pytest.raises(ValueError, match="protected_columns must be a list"):
        DetectorConfig(protected_columns="status_id")

    def before_scorers(config):
        del config["detector_config"]["scorer"], config["detector_config"]["protected_columns"]

    rewrite_config(copy_of, before_scorers)
    loaded = OCSFAnomalyDetector.load(copy_of)
    assert (loaded.config.scorer, loaded.config.protected_columns) == ("knn", [])


def test_protected_columns_are_resolved_by_name_and_kept_out_of_the_augmentation(baseline):
    from tabresnet_course.training import SelfSupervisedObjective, TrainingConfig

    names = ["status_id", "bytes_out", "no_such_feature"]
    detector = train_ocsf_anomaly_detector(baseline, **{**TINY, "protected_columns": names})
    assert detector.training["protected_columns"] == ["status_id", "bytes_out"]
    categorical = detector.featurizer.categorical_columns.index("status_id")
    numerical = list(detector.preprocessor.numerical_feature_names_).index("bytes_out")
    training = TrainingConfig.from_dict(detector.training["config"])
    assert (training.protected_categorical, training.protected_numerical) == ([categorical], [numerical])
    objective = SelfSupervisedObjective(detector.model, detector.cardinalities, training)
    num, cat = (torch.as_tensor(a) for a in detector.preprocess(baseline.frame.iloc[:256]))
    view_num, view_cat = objective.augmenter(torch.Generator().manual_seed(0))(num, cat, detector.cardinalities)
    assert torch.equal(view_cat[:, categorical], cat[:, categorical]) and not torch.equal(view_cat, cat)
    assert torch.equal(view_num[:, numerical], num[:, numerical]) and not torch.equal(view_num, num)
    with pytest.raises(ValueError, match="protected_categorical"):
        SelfSupervisedObjective(detector.model, detector.cardinalities, TrainingConfig(protected_categorical=[99]))
    with pytest.raises(ValueError, match="column indices"):
        TrainingConfig(protected_numerical=[-1])
