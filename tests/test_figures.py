"""The book's code-drawn figures: what each one draws, counted from the artists it holds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from tabresnet_course.figures import (
    draw_contrastive_views,
    draw_masking_and_heads,
    draw_tabular_resnet,
    plot_embedding_projection,
    plot_reconstruction_quality,
)
from tabresnet_course.model import MASK_INDEX, TabularResNetConfig


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(fig) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


def boxes(fig) -> list[FancyBboxPatch]:
    return [patch for ax in fig.axes for patch in ax.patches if isinstance(patch, FancyBboxPatch)]


def test_architecture_diagram_reads_every_width_from_the_config():
    config = TabularResNetConfig(num_numerical_features=50, categorical_cardinalities=[100, 50, 200, 1000])
    labels = texts(draw_tabular_resnet(config))
    assert "numerical\n(B, 50)" in labels
    assert "embedding lookup\n(B, 4, 16)" in labels
    assert "concatenate\n(B, 114)" in labels  # 50 + 4 * 16
    assert "6 x residual block\n(B, 256)" in labels
    assert "Linear\n256 -> 512" in labels and "Linear\n512 -> 256" in labels
    assert not any(label.startswith("head") for label in labels)


def test_architecture_diagram_draws_the_head_only_for_a_classifier():
    plain = TabularResNetConfig(num_numerical_features=3, categorical_cardinalities=[4], d_model=32, num_blocks=2)
    classifier = TabularResNetConfig(**{**plain.to_dict(), "num_classes": 5})
    # 3 inputs + 4 stages + the block frame + x + 6 layers inside the block
    assert len(boxes(draw_tabular_resnet(plain))) == 15
    with_head = draw_tabular_resnet(classifier)
    assert len(boxes(with_head)) == 16
    assert "head Linear(ReLU)\n(B, 5)" in texts(with_head)


def test_architecture_diagram_names_the_configured_normalisation():
    config = TabularResNetConfig(num_numerical_features=2, normalization="batchnorm")
    labels = texts(draw_tabular_resnet(config))
    assert "BatchNorm" in labels and "LayerNorm" not in labels


ROW = {"activity": "logon", "status": "success", "bytes": 1.5, "hour": 0.25}


def test_masking_diagram_marks_exactly_the_masked_cells():
    fig = draw_masking_and_heads(ROW, ["bytes", "hour"], ["activity", "status"], [True, False], [False, True])
    labels = texts(fig)
    assert labels.count(f"[MASK]\nindex {MASK_INDEX}") == 1
    assert labels.count("learned\nm[0]") == 1
    assert labels.count("no loss") == 2
    assert sum("cross-\nentropy" in label for label in labels) == 1
    assert sum("squared\nerror" in label for label in labels) == 1
    assert "logon" in labels and "1.50" in labels


def test_masking_diagram_rejects_a_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match="3 mask entries for 4 features"):
        draw_masking_and_heads(ROW, ["bytes", "hour"], ["activity", "status"], [True], [False, True])


EVENTS = pd.DataFrame({"activity": ["logon", "query", "upload"], "bytes": [1.5, -0.2, 2.0]})


def test_contrastive_diagram_marks_the_changed_cells_and_one_push_per_negative():
    views = EVENTS.assign(bytes=[1.5, 0.7, 2.0], activity=["logon", "query", "logon"])
    fig = draw_contrastive_views(EVENTS, views)
    changed = [box for box in boxes(fig) if box.get_facecolor()[:3] == pytest.approx(to_rgb("#f4b6b6"))]
    assert len(changed) == 2  # row 2's bytes, row 3's activity
    assert len(boxes(fig)) == 2 * EVENTS.size
    arrows = [patch for ax in fig.axes for patch in ax.patches if isinstance(patch, FancyArrowPatch)]
    pushes = [arrow for arrow in arrows if arrow.get_edgecolor()[:3] == pytest.approx(to_rgb("tab:red"))]
    assert len(pushes) == 2 * 3 - 2  # every other view is a negative of the first view
    assert len(arrows) - len(pushes) == 2 * 3  # two pull arrows per positive pair
    assert sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)) == 6
    assert any("4 other views" in label for label in texts(fig))


def test_contrastive_diagram_rejects_views_that_do_not_match_the_events():
    with pytest.raises(ValueError, match="same rows and columns"):
        draw_contrastive_views(EVENTS, EVENTS.iloc[:2])
    with pytest.raises(ValueError, match="at least 2 events"):
        draw_contrastive_views(EVENTS.iloc[:1], EVENTS.iloc[:1])


def report(model_scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": ["activity", "status", "bytes"],
            "kind": ["categorical", "categorical", "numerical"],
            "masked_cells": [10, 12, 9],
            "metric": ["accuracy", "accuracy", "mse"],
            "model": model_scores,
            "baseline": [0.4, 0.9, 1.0],
        }
    )


def test_reconstruction_plot_has_three_bars_per_feature_with_the_reported_heights():
    fig = plot_reconstruction_quality(report([0.1, 0.2, 2.0]), report([0.8, 0.9, 0.3]))
    categorical_ax, numerical_ax = fig.axes
    bars = [patch for patch in categorical_ax.patches if isinstance(patch, Rectangle)]
    assert len(bars) == 3 * 2
    assert [tick.get_text() for tick in numerical_ax.get_xticklabels()] == ["bytes"]
    heights = sorted(patch.get_height() for patch in numerical_ax.patches)
    assert heights == pytest.approx([0.3, 1.0, 2.0])
    assert [text.get_text() for text in categorical_ax.get_legend().get_texts()] == [
        "trivial guess",
        "untrained",
        "after MFP",
    ]


def test_reconstruction_plot_rejects_reports_of_different_features():
    other = report([0.8, 0.9, 0.3]).assign(feature=["a", "b", "c"])
    with pytest.raises(ValueError, match="same features"):
        plot_reconstruction_quality(report([0.1, 0.2, 2.0]), other)


def test_embedding_projection_draws_one_panel_per_model_and_one_colour_per_label():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    fig = plot_embedding_projection(
        {"before": rng.normal(size=(60, 8)), "after": rng.normal(size=(60, 8))}, labels, ["a", "b", "c"]
    )
    assert [ax.get_title() for ax in fig.axes] == ["before", "after"]
    for ax in fig.axes:
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert [len(c.get_offsets()) for c in scatters] == [20, 20, 20]
    assert [text.get_text() for text in fig.axes[-1].get_legend().get_texts()] == ["a", "b", "c"]


def test_embedding_projection_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="have 5 rows, labels 6"):
        plot_embedding_projection({"x": np.zeros((5, 3))}, np.zeros(6, dtype=int), ["a"])
