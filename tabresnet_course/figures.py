"""Figures the book draws with code (matplotlib): one function per figure.

Each function returns the :class:`matplotlib.figure.Figure` it drew, so a chapter can show it
and a test can count what is in it; its docstring names the chapter that shows it. Nothing here
trains or scores: the chapters pass in what they computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from sklearn.decomposition import PCA

from tabresnet_course.model import MASK_INDEX, TabularResNetConfig

__all__ = [
    "draw_contrastive_views",
    "draw_masking_and_heads",
    "draw_tabular_resnet",
    "plot_embedding_projection",
    "plot_reconstruction_quality",
]

_BOX_STYLE = "round,pad=0.02,rounding_size=0.08"
_INPUT_COLOUR, _LAYER_COLOUR, _BLOCK_COLOUR, _OUTPUT_COLOUR = "#dbe9f6", "#f2f2f2", "#fde7c8", "#d9f0d3"
_MASK_COLOUR, _MUTED_COLOUR = "#f4b6b6", "#bbbbbb"
_PULL_COLOUR, _PUSH_COLOUR = "tab:green", "tab:red"
_EVENT_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:grey")


def draw_box(ax: Axes, x: float, y: float, width: float, height: float, text: str, colour: str) -> FancyBboxPatch:
    """A rounded box centred on ``(x, y)`` with centred text; returns the patch."""
    box = FancyBboxPatch(
        (x - width / 2, y - height / 2),
        width,
        height,
        boxstyle=_BOX_STYLE,
        facecolor=colour,
        edgecolor="black",
        linewidth=0.8,
    )
    ax.add_patch(box)
    ax.text(x, y, text, ha="center", va="center", fontsize=8)
    return box


def draw_arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], **style: object) -> None:
    """An arrow from ``start`` to ``end`` in data coordinates."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, linewidth=0.8, **style))


def blank_axes(
    width: float, height: float, xlim: tuple[float, float], ylim: tuple[float, float]
) -> tuple[Figure, Axes]:
    """A figure with one axes without ticks or frame, for a diagram in data coordinates."""
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    return fig, ax


def draw_tabular_resnet(config: TabularResNetConfig) -> Figure:
    """Architecture diagram of a :class:`~tabresnet_course.model.TabularResNet` with its shapes.

    The top row follows a batch of ``B`` rows from the two inputs to the embedding (and the
    classification head when ``config.num_classes`` is set); the bottom row opens one residual
    block. Every width is read from ``config``. Shown in chapter "The TabularResNet model".
    """
    n_num, n_cat = config.num_numerical_features, len(config.categorical_cardinalities)
    d_cat, d_model = config.categorical_embedding_dim, config.d_model
    d_hidden = int(config.hidden_factor * d_model)
    norm = "LayerNorm" if config.normalization == "layernorm" else "BatchNorm"
    fig, ax = blank_axes(12, 4.4, (0, 12), (0, 4.4))

    top, w, h = 3.3, 1.5, 0.8
    draw_box(ax, 0.85, 3.95, w, 0.6, f"numerical\n(B, {n_num})", _INPUT_COLOUR)
    draw_box(ax, 0.85, 2.65, w, 0.6, f"categorical indices\n(B, {n_cat})", _INPUT_COLOUR)
    draw_box(ax, 2.55, 2.65, w, 0.6, f"embedding lookup\n(B, {n_cat}, {d_cat})", _LAYER_COLOUR)
    stages = [
        (4.3, f"concatenate\n(B, {n_num + n_cat * d_cat})", _LAYER_COLOUR),
        (6.0, f"input projection\nLinear -> (B, {d_model})", _LAYER_COLOUR),
        (7.7, f"{config.num_blocks} x residual block\n(B, {d_model})", _BLOCK_COLOUR),
        (9.4, f"output {norm}\nembedding (B, {d_model})", _OUTPUT_COLOUR),
    ]
    if config.num_classes is not None:
        stages.append((11.1, f"head Linear(ReLU)\n(B, {config.num_classes})", _LAYER_COLOUR))
    draw_arrow(ax, (1.6, 2.65), (1.8, 2.65))
    draw_arrow(ax, (1.6, 3.95), (3.55, top + 0.2))
    draw_arrow(ax, (3.3, 2.65), (3.55, top - 0.2))
    for (x0, _, _), (x1, _, _) in pairwise(stages):
        draw_arrow(ax, (x0 + w / 2, top), (x1 - w / 2, top))
    for x, text, colour in stages:
        draw_box(ax, x, top, w, h, text, colour)

    # The residual block, opened up: x + Dropout(Linear(Dropout(ReLU(Linear(Norm(x)))))).
    inner = [norm, f"Linear\n{d_model} -> {d_hidden}", "ReLU", "Dropout", f"Linear\n{d_hidden} -> {d_model}", "Dropout"]
    y, step = 0.75, 1.45
    ax.text(0.2, 1.95, "inside one residual block", fontsize=9, style="italic")
    ax.add_patch(FancyBboxPatch((0.1, 0.1), 11.3, 1.75, boxstyle=_BOX_STYLE, fill=False, linestyle="--", linewidth=0.8))
    draw_box(ax, 0.85, y, 0.9, 0.55, f"x\n(B, {d_model})", _BLOCK_COLOUR)
    xs = [2.3 + step * i for i in range(len(inner))]
    draw_arrow(ax, (1.3, y), (xs[0] - 0.575, y))
    for i, (x, text) in enumerate(zip(xs, inner)):
        draw_box(ax, x, y, 1.15, 0.55, text, _BLOCK_COLOUR)
        if i + 1 < len(xs):
            draw_arrow(ax, (x + 0.575, y), (xs[i + 1] - 0.575, y))
    plus_x = xs[-1] + 1.05
    draw_arrow(ax, (xs[-1] + 0.575, y), (plus_x - 0.15, y))
    ax.text(plus_x, y, "+", ha="center", va="center", fontsize=14, fontweight="bold")
    shortcut_y = y + 0.6
    ax.plot([0.85, 0.85, plus_x], [y + 0.3, shortcut_y, shortcut_y], color="black", linewidth=0.8, linestyle=":")
    draw_arrow(ax, (plus_x, shortcut_y), (plus_x, y + 0.15), linestyle=":")
    ax.text((0.85 + plus_x) / 2, shortcut_y + 0.08, "identity shortcut", ha="center", fontsize=8)
    ax.plot([7.7, 7.7], [top - h / 2, 1.85], color="grey", linestyle=":", linewidth=0.8)
    return fig


def draw_masking_and_heads(
    row: Mapping[str, object],
    numerical_names: Sequence[str],
    categorical_names: Sequence[str],
    numerical_mask: Sequence[bool],
    categorical_mask: Sequence[bool],
) -> Figure:
    """Diagram of masked feature prediction for one event and one mask.

    Top row: the event's cells (categorical columns first, as the model's heads lay them out);
    second row: what the encoder sees, with masked categorical cells set to the reserved
    ``[MASK]`` index and masked numerical cells set to a learned per-column value; then the
    encoder, the embedding and the single linear layer that holds every prediction head;
    bottom row: one prediction per cell, of which only the masked ones enter the loss
    (cross-entropy or squared error). Shown in chapter "Masked feature prediction".
    """
    names = list(categorical_names) + list(numerical_names)
    masked = [bool(m) for m in categorical_mask] + [bool(m) for m in numerical_mask]
    if len(masked) != len(names):
        raise ValueError(f"got {len(masked)} mask entries for {len(names)} features")
    kinds = ["categorical"] * len(categorical_names) + ["numerical"] * len(numerical_names)
    width = max(len(names) * 1.05 + 1.6, 6.0)
    fig, ax = blank_axes(width, 5.4, (0, width), (0, 5.4))
    xs = [1.6 + 1.05 * j + 0.45 for j in range(len(names))]
    middle = (xs[0] + xs[-1]) / 2
    for label, y in [("event", 4.85), ("encoder input", 3.95), ("prediction", 0.45)]:
        ax.text(0.1, y, label, va="center", fontsize=8, style="italic")
    for j, (x, name, kind, hidden) in enumerate(zip(xs, names, kinds, masked)):
        value = row[name]
        shown = f"{value:.2f}" if isinstance(value, (float, np.floating)) else str(value)
        ax.text(x, 5.3, name, ha="center", fontsize=7, rotation=20)
        draw_box(ax, x, 4.85, 0.95, 0.45, shown, _INPUT_COLOUR)
        if hidden:
            text = (
                f"[MASK]\nindex {MASK_INDEX}" if kind == "categorical" else f"learned\nm[{j - len(categorical_names)}]"
            )
            draw_box(ax, x, 3.95, 0.95, 0.5, text, _MASK_COLOUR)
            target = "cross-\nentropy" if kind == "categorical" else "squared\nerror"
            draw_box(
                ax, x, 0.45, 0.95, 0.55, f"{'logits' if kind == 'categorical' else 'value'}\n{target}", _MASK_COLOUR
            )
        else:
            draw_box(ax, x, 3.95, 0.95, 0.5, shown, _INPUT_COLOUR)
            ax.text(x, 0.45, "no loss", ha="center", va="center", fontsize=7, color=_MUTED_COLOUR)
        draw_arrow(ax, (x, 4.6), (x, 4.22))
        draw_arrow(ax, (x, 3.68), (middle + (x - middle) * 0.3, 3.2), color="grey")
        draw_arrow(ax, (middle + (x - middle) * 0.3, 1.5), (x, 0.75), color="grey" if hidden else _MUTED_COLOUR)
    span = xs[-1] - xs[0] + 0.95
    draw_box(ax, middle, 2.95, span * 0.5, 0.45, "TabularResNet encoder", _LAYER_COLOUR)
    draw_box(ax, middle, 2.35, span * 0.4, 0.4, "embedding (d_model)", _OUTPUT_COLOUR)
    draw_box(ax, middle, 1.75, span * 0.5, 0.45, "one Linear layer = every prediction head", _LAYER_COLOUR)
    draw_arrow(ax, (middle, 2.72), (middle, 2.55))
    draw_arrow(ax, (middle, 2.15), (middle, 1.98))
    return fig


def draw_contrastive_views(events: pd.DataFrame, views: pd.DataFrame) -> Figure:
    """Diagram of contrastive learning for a few events and one corrupted view of each.

    Left: each event (a row of ``events``) above its view (the same row of ``views``), with
    the changed cells marked (the clean event is the first of its two views, as in SCARF). Right:
    the embedding space as a circle, where the arrows show what NT-Xent asks for: the two views
    of every event pulled towards each other (the positive pairs, green), and the first view
    pushed away from each of the other ``2N - 2`` views (its negatives, red). Shown in chapter
    "Contrastive learning".
    """
    if list(events.columns) != list(views.columns) or len(events) != len(views):
        raise ValueError(
            f"events {events.shape} and views {views.shape} must have the same rows and columns in the same order"
        )
    if len(events) < 2:
        raise ValueError(
            f"contrastive learning needs at least 2 events (the others are the negatives), got {len(events)}"
        )
    n, columns = len(events), list(events.columns)
    colours = [_EVENT_COLOURS[i % len(_EVENT_COLOURS)] for i in range(n)]
    table_width = 1.0 + 1.05 * len(columns)
    fig, ax = blank_axes(table_width + 5.2, 1.2 * n + 1.0, (0, table_width + 5.2), (0, 1.2 * n + 1.0))
    for j, column in enumerate(columns):
        ax.text(1.45 + 1.05 * j, 1.2 * n + 0.75, column, ha="center", fontsize=7, rotation=15)
    for i in range(n):
        top = 1.2 * n + 0.35 - 1.2 * i
        for y, label, row in [(top, f"event {i + 1}", events.iloc[i]), (top - 0.45, "its view", views.iloc[i])]:
            ax.text(0.05, y, label, va="center", fontsize=7, style="italic", color=colours[i])
            for j, column in enumerate(columns):
                value, original = row[column], events.iloc[i][column]
                shown = f"{value:.2f}" if isinstance(value, (float, np.floating)) else str(value)
                changed = y != top and value != original
                draw_box(ax, 1.45 + 1.05 * j, y, 0.95, 0.38, shown, _MASK_COLOUR if changed else _INPUT_COLOUR)

    centre, radius = (table_width + 2.6, 0.6 * n + 0.35), min(2.0, 0.6 * n - 0.1)
    ax.add_patch(plt.Circle(centre, radius, fill=False, linestyle=":", color="grey"))
    ax.text(centre[0], 1.2 * n + 0.75, "embedding space", ha="center", fontsize=8, style="italic")
    points = []
    for i in range(n):
        pair = []
        for offset in (-0.2, 0.2):
            angle = np.pi / 2 - 2 * np.pi * i / n + offset
            pair.append(np.array([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)]))
        ax.scatter(*np.array(pair).T, s=40, color=colours[i], zorder=3)
        for here, there in (pair, pair[::-1]):  # the positive pair: pulled together
            draw_arrow(ax, here, here + 0.4 * (there - here), color=_PULL_COLOUR)
        points.extend(pair)
    anchor = points[0]
    for point in points[2:]:  # the first event's view against every other view: pushed apart
        ax.plot(*np.array([anchor, point]).T, color=_PUSH_COLOUR, linestyle="--", linewidth=0.5, alpha=0.6)
        away = (point - anchor) / np.linalg.norm(point - anchor)
        draw_arrow(ax, point, point + 0.35 * away, color=_PUSH_COLOUR)
    ax.text(
        centre[0],
        0.3,
        "green: the two views of an event, pulled together (positive pair)",
        ha="center",
        fontsize=7,
        color=_PULL_COLOUR,
    )
    ax.text(
        centre[0],
        0.05,
        f"red: the first view, pushed away from the {2 * n - 2} other views (negatives)",
        ha="center",
        fontsize=7,
        color=_PUSH_COLOUR,
    )
    return fig


def plot_reconstruction_quality(before: pd.DataFrame, after: pd.DataFrame) -> Figure:
    """Per-feature reconstruction of masked cells before and after training, beside the trivial
    guess: accuracy for categorical columns (higher is better), mean squared error for numerical
    ones (lower is better).

    ``before`` and ``after`` are :func:`~tabresnet_course.mfp.reconstruction_report` tables of
    the same rows and mask. Shown in chapter "Masked feature prediction".
    """
    if list(before["feature"]) != list(after["feature"]):
        raise ValueError("before and after must report the same features in the same order")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, kind, ylabel in [
        (axes[0], "categorical", "accuracy on masked cells (higher is better)"),
        (axes[1], "numerical", "MSE on masked cells (lower is better)"),
    ]:
        rows = (before["kind"] == kind).to_numpy()
        features = before.loc[rows, "feature"].tolist()
        positions = np.arange(len(features))
        series = [
            ("trivial guess", before.loc[rows, "baseline"], "tab:grey"),
            ("untrained", before.loc[rows, "model"], "tab:red"),
            ("after MFP", after.loc[rows, "model"], "tab:green"),
        ]
        for k, (label, values, colour) in enumerate(series):
            ax.bar(positions + (k - 1) * 0.27, values.to_numpy(), width=0.27, label=label, color=colour)
        ax.set_xticks(positions, features, rotation=20, ha="right")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(f"{kind} features")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_embedding_projection(
    embeddings: Mapping[str, np.ndarray], labels: np.ndarray, label_names: Sequence[str], seed: int = 0
) -> Figure:
    """Two-dimensional PCA of each set of embeddings, side by side, coloured by a hidden label.

    ``embeddings`` maps a panel title (for example "untrained encoder") to an array
    ``(num_rows, d)``; each panel fits its own PCA. ``labels`` holds integer codes into
    ``label_names``. Shown in chapter "Masked feature prediction" (before/after training).
    """
    labels = np.asarray(labels)
    for title, points in embeddings.items():
        if len(points) != len(labels):
            raise ValueError(f"embeddings '{title}' have {len(points)} rows, labels {len(labels)}")
    fig, axes = plt.subplots(1, len(embeddings), figsize=(5 * len(embeddings), 4.2), squeeze=False)
    for ax, (title, points) in zip(axes[0], embeddings.items()):
        projected = PCA(n_components=2, random_state=seed).fit_transform(points)  # (num_rows, 2)
        for code, name in enumerate(label_names):
            ax.scatter(*projected[labels == code].T, s=4, alpha=0.5, label=name)
        ax.set_title(title)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    axes[0, -1].legend(markerscale=4, fontsize=8)
    fig.tight_layout()
    return fig
