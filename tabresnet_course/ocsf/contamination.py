"""Baselines that already contain attacks: a training window and a scoring window sharing campaigns.

Chapter "The OCSF pipeline". Real logs rarely offer a clean period to fit a detector on: a slow
brute force or a persistent scanner runs across the day one calls "baseline". :func:`contaminated_split`
builds a labelled baseline (training window) and evaluation (scoring window) pair in one of two
modes:

- ``"campaign"`` (campaign overlap): a clean baseline period is followed by an attack period;
  a seeded random share ``overlap`` of *each* campaign's events is moved into the baseline and
  the rest stays in the evaluation, so every campaign has events on both sides. Moved events
  keep their timestamps (they lie in the evaluation window's time range, as when the training
  file is the clean period plus a random part of the attack period), so time-of-day features and
  per-entity rates see them where they happened;
- ``"spread"``: fresh campaigns from a separate, seeded period of the same organisation, timed
  inside the baseline period, are spread thinly into it (a share of each scenario's events);
  the evaluation period holds other campaigns.

In both modes the baseline's labels mark the attack events it holds (with their ``campaign``),
so :meth:`ContaminatedSplit.shares` reports the realised shares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from tabresnet_course.ocsf.generator import DEFAULT_START, GeneratedEvents, generate_ocsf_events
from tabresnet_course.ocsf.profiles import DEFAULT_PROFILE, GeneratorProfile, get_profile

__all__ = [
    "CONTAMINATION_MODES",
    "SPREAD_SEED_OFFSET",
    "ContaminatedSplit",
    "contaminated_split",
    "scenario_share_mask",
]

CONTAMINATION_MODES: tuple[str, ...] = ("campaign", "spread")
"""The ways :func:`contaminated_split` puts attacks into a baseline."""

SPREAD_SEED_OFFSET = 10_000
"""The ``"spread"`` mode draws its campaigns from a period with event seed ``seed + SPREAD_SEED_OFFSET``
(the study's ``CONTAMINATION_SEED_OFFSET``)."""

_CAMPAIGN_MOVE_SALT = 0xC0A7


class ContaminatedSplit(NamedTuple):
    """A baseline (training window) holding attacks and its evaluation (scoring window).

    Unpacks as ``baseline, evaluation = contaminated_split(...)`` (chapter "The OCSF pipeline").
    """

    baseline: GeneratedEvents
    evaluation: GeneratedEvents

    def campaigns(self) -> pd.DataFrame:
        """One row per campaign: its scenario, its events in the baseline and in the evaluation,
        and ``overlap``, the share of its events in the baseline."""
        windows = {"baseline": self.baseline.labels, "evaluation": self.evaluation.labels}
        attacks = pd.concat(
            [
                labels.loc[labels["is_anomaly"], ["campaign", "scenario"]].assign(window=w)
                for w, labels in windows.items()
            ]
        )
        table = attacks.groupby(["campaign", "scenario", "window"]).size().unstack("window")
        table = table.reindex(columns=list(windows)).fillna(0).astype(int).reset_index().rename_axis(columns=None)
        return table.assign(overlap=table["baseline"] / (table["baseline"] + table["evaluation"]))

    def shares(self) -> dict[str, float]:
        """The realised attack shares of the baseline and the evaluation, and the mean share of a
        campaign's events that fell into the baseline (over the campaigns with events there)."""
        overlap = self.campaigns()["overlap"]
        return {
            "baseline_attack_share": float(self.baseline.labels["is_anomaly"].mean()),
            "evaluation_attack_share": float(self.evaluation.labels["is_anomaly"].mean()),
            "campaign_overlap": float(overlap[overlap > 0].mean()) if (overlap > 0).any() else 0.0,
        }


def scenario_share_mask(labels: pd.DataFrame, scenarios: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Boolean mask over ``labels`` rows: a seeded random ``share`` of the anomalous events of
    each scenario in ``scenarios`` (in that order; chapter "The OCSF pipeline")."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    rng = np.random.default_rng(seed)
    anomalous = labels["is_anomaly"].to_numpy().astype(bool)
    scenario = labels["scenario"].astype(str).to_numpy()
    missing = set(scenarios) - set(scenario[anomalous])
    if missing:
        raise ValueError(f"no anomalous events of scenario(s) {sorted(missing)} in labels")
    mask = np.zeros(len(labels), dtype=bool)
    for name in scenarios:
        rows = np.flatnonzero(anomalous & (scenario == name))
        mask[rng.choice(rows, size=round(share * len(rows)), replace=False)] = True
    return mask


def _merge(clean: GeneratedEvents, extra: GeneratedEvents, rows: np.ndarray) -> GeneratedEvents:
    """``clean`` plus the events ``rows`` of ``extra``, time-ordered (stable), with their labels."""
    frame = pd.concat([clean.frame, extra.frame.iloc[rows]], ignore_index=True)
    labels = pd.concat([clean.labels, extra.labels.iloc[rows]], ignore_index=True)
    order = np.argsort(frame["time"].to_numpy(), kind="stable")
    return GeneratedEvents(
        frame.iloc[order].reset_index(drop=True),
        labels.iloc[order].reset_index(drop=True),
        clean.start,
        clean.days,
        clean.seed,
        bool(len(rows)),
        clean.profile,
    )


def _subset(events: GeneratedEvents, keep: np.ndarray) -> GeneratedEvents:
    """The events of ``events`` where ``keep`` is true (order kept)."""
    return GeneratedEvents(
        events.frame[keep].reset_index(drop=True),
        events.labels[keep].reset_index(drop=True),
        events.start,
        events.days,
        events.seed,
        events.anomalies,
        events.profile,
    )


def _moved(size: int, overlap: float) -> int:
    """Events of a campaign of ``size`` that go to the baseline: about ``overlap`` of them, at
    least one and at most all but one (a campaign of one event stays in the evaluation)."""
    return min(max(round(overlap * size), 1), size - 1)


def _campaign_plan(profile: GeneratorProfile, target: int, overlap: float) -> tuple[dict[str, int], int]:
    """Events per scenario for campaigns of which ``overlap`` adds up to about ``target`` events
    (the plan's proportions, at least two events per scenario, no campaign of a single event),
    and the number of their events that will move to the baseline."""
    plan = profile.scenario_plan
    total_share = sum(p.share for p in plan.values())
    counts: dict[str, int] = {}
    moved = 0
    for name, p in plan.items():
        count = max(2, round(p.share / total_share * target / overlap))
        count += count % p.campaign_size == 1
        counts[name] = count
        sizes = [p.campaign_size] * (count // p.campaign_size) + [count % p.campaign_size] * (
            count % p.campaign_size > 0
        )
        moved += sum(_moved(s, overlap) for s in sizes)
    return counts, moved


def _campaign_overlap_mask(labels: pd.DataFrame, overlap: float, seed: int) -> np.ndarray:
    """A seeded random :func:`_moved` share of every campaign's events (campaigns in sorted order)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _CAMPAIGN_MOVE_SALT]))
    mask = np.zeros(len(labels), dtype=bool)
    groups = labels[labels["is_anomaly"].to_numpy()].groupby("campaign", sort=True).indices
    positions = np.flatnonzero(labels["is_anomaly"].to_numpy())
    for campaign in sorted(groups):
        rows = positions[groups[campaign]]
        mask[rng.choice(rows, size=_moved(len(rows), overlap), replace=False)] = True
    return mask


def contaminated_split(
    num_baseline: int = 20_000,
    num_evaluation: int = 10_000,
    attack_share: float = 0.02,
    overlap: float = 0.25,
    mode: str = "campaign",
    profile: str | GeneratorProfile = DEFAULT_PROFILE,
    seed: int = 0,
    baseline_days: int = 7,
    evaluation_days: int = 3,
    start: dt.datetime = DEFAULT_START,
    world_seed: int = 0,
) -> ContaminatedSplit:
    """A baseline with attack events in it and a later evaluation period (chapter "The OCSF pipeline").

    The clean part of the baseline is the baseline of
    :func:`~tabresnet_course.ocsf.generator.generate_baseline_and_evaluation` (``num_baseline``
    events, seed ``seed``); attack events are added to make up about ``attack_share`` (0 to
    0.5; real logs: 0.005 to 0.05) of the result.

    ``mode="campaign"``: the attack period (seed ``seed + 1``, after the baseline) holds
    campaigns of the profile's scenario plan scaled so that ``overlap`` (0 to 1; e.g. 0.1,
    0.25, 0.5) of each campaign's events, moved into the baseline with their timestamps, make
    up the baseline's attack share; the evaluation keeps the other ``1 - overlap`` of each
    campaign and has ``num_evaluation`` events. ``overlap=0`` gives the clean baseline and the
    usual evaluation period (``attack_share`` then has no effect). A campaign of ``n`` events
    puts ``round(overlap * n)`` of them (at least one, at most ``n - 1``) into the baseline.

    ``mode="spread"`` (``overlap`` not used): a random ``attack_share``-making share of each
    scenario's events of a period with seed ``seed + SPREAD_SEED_OFFSET`` over the baseline's
    days is added to the baseline; the evaluation is the usual evaluation period. For the same
    arguments the baseline frame equals the study's ``contaminated_baseline`` training frame
    (data seed ``seed``, contamination ``attack_share``).
    """
    if mode not in CONTAMINATION_MODES:
        raise ValueError(f"mode must be one of {CONTAMINATION_MODES}, got {mode!r}")
    if not 0.0 <= attack_share < 0.5:
        raise ValueError(f"attack_share must be in [0, 0.5), got {attack_share}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    profile = get_profile(profile)
    baseline = generate_ocsf_events(num_baseline, baseline_days, seed, False, start, None, world_seed, profile)
    evaluation_start = start + dt.timedelta(days=baseline_days)
    target = round(attack_share * num_baseline / (1.0 - attack_share))
    if mode == "campaign" and overlap > 0.0:
        if target == 0:
            raise ValueError(f"attack_share={attack_share} leaves no attack event to put into {num_baseline} events")
        evaluation_period = (num_evaluation, evaluation_days, evaluation_start)
        return _campaign_overlap(baseline, evaluation_period, target, overlap, profile, world_seed)
    evaluation = generate_ocsf_events(
        num_evaluation, evaluation_days, seed + 1, True, evaluation_start, None, world_seed, profile
    )
    if mode == "campaign" or target == 0:
        return ContaminatedSplit(baseline, evaluation)
    pool_seed = seed + SPREAD_SEED_OFFSET
    pool = generate_ocsf_events(
        max(2_000, 60 * target), baseline_days, pool_seed, True, start, None, world_seed, profile
    )
    anomalous = pool.labels["is_anomaly"].to_numpy()
    scenarios = sorted(set(pool.labels.loc[anomalous, "scenario"]))
    moved = scenario_share_mask(pool.labels, scenarios, target / int(anomalous.sum()), pool_seed)
    return ContaminatedSplit(_merge(baseline, pool, np.flatnonzero(moved)), evaluation)


def _campaign_overlap(
    baseline: GeneratedEvents,
    evaluation_period: tuple[int, int, dt.datetime],
    target: int,
    overlap: float,
    profile: GeneratorProfile,
    world_seed: int,
) -> ContaminatedSplit:
    """The ``"campaign"`` mode of :func:`contaminated_split`: a clean ``baseline``, the evaluation
    period's ``(num_evaluation, days, start)``, and about ``target`` attack events to move."""
    num_evaluation, evaluation_days, evaluation_start = evaluation_period
    counts, moved_total = _campaign_plan(profile, target, overlap)
    num_normal = num_evaluation + moved_total - sum(counts.values())
    if num_normal < (num_evaluation + moved_total) // 2:
        raise ValueError(
            f"overlap={overlap} with about {target} attack events in the baseline needs campaigns of "
            f"{sum(counts.values())} events, too many for num_evaluation={num_evaluation}: raise num_evaluation "
            "or overlap, or lower attack_share"
        )
    period = generate_ocsf_events(
        num_evaluation + moved_total,
        evaluation_days,
        baseline.seed + 1,
        True,
        evaluation_start,
        None,
        world_seed,
        profile,
        counts,
    )
    moved = _campaign_overlap_mask(period.labels, overlap, baseline.seed)
    return ContaminatedSplit(_merge(baseline, period, np.flatnonzero(moved)), _subset(period, ~moved))
