"""The study's grid: configurations (:class:`StudyConfig`), the generator profiles, the factors
varied one at a time around a centre (the contamination settings of :data:`CONTAMINATIONS` among
them), and the seeds each cell runs on (:data:`GRIDS`, :func:`study_grid`).

Chapter "The OCSF pipeline" reads the results of these grids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["CONTAMINATIONS", "GRIDS", "PROTECTED", "Cell", "Grid", "StudyConfig", "study_grid"]

PROTECTED: dict[str, tuple[str, ...]] = {"none": (), "class_type_status": ("class_uid", "type_uid", "status_id")}
"""Levels of :attr:`StudyConfig.protected`: feature names the contrastive augmentation keeps
(the default specification's class, activity (``type_uid``) and status columns)."""


CONTAMINATIONS: dict[str, tuple[str, float, float]] = {
    "clean": ("campaign", 0.0, 0.0),
    "spread": ("spread", 0.0, 0.02),
    "campaign_q10": ("campaign", 0.10, 0.0075),
    "campaign_q25": ("campaign", 0.25, 0.02),
    "campaign_q50": ("campaign", 0.50, 0.02),
}
"""Levels of :attr:`StudyConfig.contamination`: ``(mode, overlap, baseline attack share)`` for
:func:`~tabresnet_course.ocsf.contamination.contaminated_split`. ``"spread"``: 2% of the training
file from fresh campaigns; ``"campaign_qNN"``: NN% of every campaign of the scoring period falls in
the training window. The baseline share falls with the overlap where a fixed 2% would crowd the
evaluation (at 10% overlap and 2% the evaluation would hold about 15% attack events): with a
baseline of 4,000 events and an evaluation of 5,000 the evaluation holds about 5.4% (q = 10%),
4.9% (q = 25%) and 1.6% (q = 50%) attack events, the clean and spread evaluations about 2%."""


@dataclass(frozen=True)
class StudyConfig:
    """One configuration of the study: the generator profile, data sizes, training settings,
    scoring ``k``, the contamination setting (a key of :data:`CONTAMINATIONS`) and the columns the
    augmentation keeps (``protected``, a key of :data:`PROTECTED`)."""

    profile: str = "enterprise"
    num_baseline: int = 4_000
    num_evaluation: int = 5_000
    epochs: int = 10
    objective: str = "contrastive"
    corruption_rate: float = 0.3
    temperature: float = 0.1
    d_model: int = 64
    k: int = 5
    contamination: str = "clean"
    protected: str = "none"

    def __post_init__(self) -> None:
        if self.contamination not in CONTAMINATIONS:
            raise ValueError(f"contamination must be one of {sorted(CONTAMINATIONS)}, got {self.contamination!r}")
        if self.protected not in PROTECTED:
            raise ValueError(f"protected must be one of {sorted(PROTECTED)}, got {self.protected!r}")

    def data_key(self, data_seed: int) -> tuple:
        """What the generated and contaminated data depend on."""
        return (self.profile, self.num_baseline, self.num_evaluation, self.contamination, data_seed)

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
    """A centre configuration, run on each of ``profiles``, the levels each factor takes in turn,
    and the seeds: the centre and the ``full_seed_levels`` on every data x training seed, every
    other level on every data seed x ``sweep_train_seeds``."""

    name: str
    centre: StudyConfig
    variations: dict[str, tuple] = field(default_factory=dict)
    profiles: tuple[str, ...] = ("enterprise",)
    data_seeds: tuple[int, ...] = (0, 1, 2)
    train_seeds: tuple[int, ...] = (0, 1)
    sweep_train_seeds: tuple[int, ...] = (0,)
    full_seed_levels: tuple[str, ...] = ("spread", "campaign_q25")
    methods: tuple[str, ...] | None = None
    """The methods scored (all of :data:`~tabresnet_course.study.run.METHODS` when ``None``)."""


_DEFAULT_METHODS = (
    "raw_knn",
    "lof",
    "isolation_forest",
    "ecod",
    "copod",
    "hbos",
    "raw_subsampled_knn",
    "raw_share_knn",
    "raw_multiscale_knn",
    "embedding_knn",
    "untrained_knn",
    "embedding_multiscale_knn",
    "detector_fusion_knn",
    "untrained_fusion_knn",
    "detector_fusion_multiscale",
    "untrained_fusion_multiscale",
    "detector_fusion_refined",
    "untrained_fusion_refined",
    "detector_fusion_rates",
)
_CONFIRM_METHODS = (
    "raw_knn",
    "lof",
    "isolation_forest",
    "ecod",
    "embedding_knn",
    "untrained_knn",
    "raw_multiscale_knn",
    "detector_fusion_knn",
    "untrained_fusion_knn",
    "detector_fusion_multiscale",
    "untrained_fusion_multiscale",
    "detector_fusion_refined",
    "untrained_fusion_refined",
)

GRIDS: dict[str, Grid] = {
    "default": Grid(
        name="default",
        centre=StudyConfig(),
        variations={"contamination": ("spread", "campaign_q25")},
        profiles=("enterprise", "cloud_saas"),
        data_seeds=tuple(range(10)),
        methods=_DEFAULT_METHODS,
    ),
    "smoke": Grid(
        name="smoke",
        centre=StudyConfig(num_baseline=1_500, num_evaluation=2_500, epochs=1, d_model=16),
        variations={"contamination": ("campaign_q25",), "k": (10,)},
        data_seeds=(0, 1),
        train_seeds=(0,),
    ),
    "confirm": Grid(
        name="confirm",
        centre=StudyConfig(),
        variations={"contamination": ("spread", "campaign_q25")},
        profiles=("enterprise", "cloud_saas"),
        data_seeds=tuple(range(10, 16)),
        train_seeds=(0,),
        methods=_CONFIRM_METHODS,
    ),
    "training": Grid(
        name="training",
        centre=StudyConfig(contamination="campaign_q25"),
        variations={"objective": ("mfp", "both")},
        profiles=("enterprise", "cloud_saas"),
        data_seeds=(0, 1, 2, 3, 4),
        train_seeds=(0,),
        methods=(
            "embedding_knn",
            "untrained_knn",
            "detector_fusion_refined",
            "untrained_fusion_refined",
            "retrained_fusion_refined",
            "mfp_surprisal",
        ),
    ),
}
"""The study's grids: ``default`` (both generator profiles; clean, spread and 25% campaign overlap
on data seeds 0-9 x training seeds 0-1; the committed results the defaults were chosen on; the
other overlaps of :data:`CONTAMINATIONS`, the methods that train a second model
(``mfp_surprisal``, ``retrained_fusion_refined``) and ``detector_fusion_iforest`` are left out to
keep it within about 45 minutes on 2 cores), ``smoke`` (the tests), ``confirm`` (the same
settings on data seeds 10-15, which the choice of defaults never saw, one training seed each), and
``training`` (does training earn its place with 25% campaign overlap: the contrastive, MFP and
combined objectives, the encoder retrained on the refined baseline, MFP surprisal; data seeds 0-4)."""


def study_grid(grid: Grid) -> list[Cell]:
    """The cells of ``grid``, profile by profile: the centre, then every level of every factor."""
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    cells = []
    for profile in grid.profiles:
        centre = dataclasses.replace(grid.centre, profile=profile)
        cells.append(Cell("centre", "centre", centre, grid.data_seeds, grid.train_seeds))
        for factor, levels in grid.variations.items():
            if factor not in names:
                raise ValueError(f"grid {grid.name!r} varies {factor!r}, which is not a StudyConfig field")
            for level in levels:
                seeds = grid.train_seeds if str(level) in grid.full_seed_levels else grid.sweep_train_seeds
                cells.append(
                    Cell(factor, str(level), dataclasses.replace(centre, **{factor: level}), grid.data_seeds, seeds)
                )
    return cells
