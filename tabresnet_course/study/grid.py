"""The study's grid: configurations (:class:`StudyConfig`), the factors varied one at a time around
a centre, and the seeds each cell runs on (:data:`GRIDS`, :func:`study_grid`).

Chapter "The OCSF pipeline" reads the results of these grids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["GRIDS", "PROTECTED", "Cell", "Grid", "StudyConfig", "study_grid"]

PROTECTED: dict[str, tuple[str, ...]] = {"none": (), "class_type_status": ("class_uid", "type_uid", "status_id")}
"""Levels of :attr:`StudyConfig.protected`: feature names the contrastive augmentation keeps
(the default specification's class, activity (``type_uid``) and status columns)."""


@dataclass(frozen=True)
class StudyConfig:
    """One configuration of the study: data sizes, training settings, scoring ``k`` and the share
    of attack events in the training file (``contamination``), and the columns the augmentation
    keeps (``protected``, a key of :data:`PROTECTED`)."""

    num_baseline: int = 8_000
    num_evaluation: int = 10_000
    epochs: int = 10
    objective: str = "contrastive"
    corruption_rate: float = 0.3
    temperature: float = 0.1
    d_model: int = 64
    k: int = 5
    contamination: float = 0.0
    protected: str = "none"

    def data_key(self, data_seed: int) -> tuple:
        """What the generated and contaminated data depend on."""
        return (self.num_baseline, self.num_evaluation, self.contamination, data_seed)

    def detector_key(self, data_seed: int, train_seed: int) -> tuple:
        """What the trained detector depends on (not ``k``: scoring only)."""
        return (
            *self.data_key(data_seed),
            train_seed,
            self.epochs,
            self.objective,
            self.corruption_rate,
            self.temperature,
            self.d_model,
            self.protected,
        )

    def mfp_key(self, data_seed: int, train_seed: int) -> tuple:
        """What the MFP-surprisal model depends on (always trained with the MFP objective)."""
        return (*self.data_key(data_seed), train_seed, self.epochs, self.d_model)


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid: the factor it varies (``"centre"`` for the centre), the
    level, and the seeds it runs on."""

    factor: str
    level: str
    config: StudyConfig
    data_seeds: tuple[int, ...]
    train_seeds: tuple[int, ...]


@dataclass(frozen=True)
class Grid:
    """A centre configuration, the levels each factor takes in turn, and the seeds."""

    name: str
    centre: StudyConfig
    variations: dict[str, tuple] = field(default_factory=dict)
    data_seeds: tuple[int, ...] = (0, 1, 2)
    train_seeds: tuple[int, ...] = (0, 1, 2)
    sweep_train_seeds: tuple[int, ...] = (0,)
    full_seed_factors: tuple[str, ...] = ("contamination",)
    methods: tuple[str, ...] | None = None
    """The methods scored (all of :data:`~tabresnet_course.study.run.METHODS` when ``None``)."""


GRIDS: dict[str, Grid] = {
    "default": Grid(
        name="default",
        centre=StudyConfig(),
        variations={
            "contamination": (0.01, 0.02, 0.05),
            "num_baseline": (4_000, 16_000),
            "epochs": (3, 20),
            "objective": ("mfp", "both"),
            "corruption_rate": (0.6, 0.8),
            "temperature": (0.5, 1.0),
            "d_model": (32, 128),
            "k": (1, 20),
            "protected": ("class_type_status",),
        },
    ),
    "smoke": Grid(
        name="smoke",
        centre=StudyConfig(num_baseline=1_500, num_evaluation=1_500, epochs=1, d_model=16),
        variations={"contamination": (0.05,), "k": (10,)},
        data_seeds=(0, 1),
        train_seeds=(0,),
    ),
    "confirm": Grid(
        name="confirm",
        centre=StudyConfig(),
        variations={"contamination": (0.02,)},
        data_seeds=(3, 4, 5),
        methods=(
            "embedding_knn",
            "untrained_knn",
            "raw_knn",
            "isolation_forest",
            "lof",
            "rates_raw_knn",
            "detector_fusion_knn",
            "untrained_fusion_knn",
            "detector_fusion_rates",
        ),
    ),
}
"""The study's grids: ``default`` (every factor, the committed results), ``smoke`` (the tests),
and ``confirm`` (the chosen centre, clean and with 2% contamination, on data seeds 3-5, which
the choice of defaults never saw)."""


def study_grid(grid: Grid) -> list[Cell]:
    """The cells of ``grid``: the centre and the contamination levels on every data x training
    seed, every other level on every data seed x ``sweep_train_seeds``."""
    cells = [Cell("centre", "centre", grid.centre, grid.data_seeds, grid.train_seeds)]
    for factor, levels in grid.variations.items():
        if factor not in {f.name for f in dataclasses.fields(StudyConfig)}:
            raise ValueError(f"grid {grid.name!r} varies {factor!r}, which is not a StudyConfig field")
        seeds = grid.train_seeds if factor in grid.full_seed_factors else grid.sweep_train_seeds
        for level in levels:
            config = dataclasses.replace(grid.centre, **{factor: level})
            cells.append(Cell(factor, str(level), config, grid.data_seeds, seeds))
    return cells
