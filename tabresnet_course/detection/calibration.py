"""From scores to alerts: held-out normal scores, percentiles and calibrated alert thresholds.

Chapter "The OCSF pipeline" teaches this file. A raw anomaly score means nothing to an analyst
or a SIEM, and its scale changes with every retraining; what stays meaningful is where a score
falls among the scores of *normal* events the scorer did not learn from. Training therefore
keeps a :class:`Calibration`: the sorted scores of held-out normal events of the baseline.

- :meth:`Calibration.percentiles`: 0-100, the share of held-out normal events scoring lower.
- :meth:`Calibration.threshold`: the :class:`AlertThreshold` for an alert rate (the share of
  normal events accepted as false alarms) or a number of alerts per day (turned into a rate
  through the baseline's event rate, :func:`events_per_day`). An event alerts when its score
  is *above* the threshold; at most ``alert_rate`` of the held-out scores are.

The held-out scores come from :func:`cross_fitted_scores`: the reference rows are split into
:data:`CALIBRATION_FOLDS` seeded folds and every fold is scored by a copy of the detector's
scorer (``sklearn.base.clone``) fitted on the other folds, so that no row is scored against
itself (a kNN row would find itself at distance 0) and every baseline event gives one held-out
score. Scoring only the validation split would hold out the encoder too, but a validation split
of 10 % of a baseline of thousands of events holds a few hundred rows: too few to place a
threshold at 1 in 1,000 (the benchmark, ``benchmarks/bench_alerts.py``, measures the realised
false-alarm rate of the cross-fitted thresholds on fresh clean periods).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from tabresnet_course.errors import InputError
from tabresnet_course.values import MS_PER_DAY, to_float

__all__ = [
    "CALIBRATION_FOLDS",
    "DEFAULT_ALERT_RATE",
    "MIN_EXCEEDANCES",
    "AlertThreshold",
    "Calibration",
    "check_alert_rate",
    "check_alerts_per_day",
    "cross_fitted_scores",
    "events_per_day",
]

CALIBRATION_FOLDS = 10
"""Folds of :func:`cross_fitted_scores`: each held-out score comes from a scorer fitted on 90 %
of the reference, nearly the reference the detector scores against."""
DEFAULT_ALERT_RATE = 0.001
"""The default share of normal events accepted as false alarms (``score --alert-rate``)."""
MIN_EXCEEDANCES = 10
"""Held-out scores above a threshold below which it is flagged as rough: the realised rate of
a threshold placed ``m`` scores from the top varies by about ``1 / sqrt(m)``."""


def check_alert_rate(rate: Any) -> float:
    """``rate`` as a float in (0, 1); anything else raises :class:`InputError`."""
    value = _number(rate, "the alert rate")
    if not 0.0 < value < 1.0:
        raise InputError(f"the alert rate must be a share of events in (0, 1), such as 0.001; got {rate!r}")
    return value


def check_alerts_per_day(count: Any) -> float:
    """``count`` as a positive float (alerts per day); anything else raises :class:`InputError`."""
    value = _number(count, "the number of alerts per day")
    if not value > 0.0:
        raise InputError(f"the number of alerts per day must be positive, got {count!r}")
    return value


def _number(value: Any, what: str) -> float:
    """``value`` as a finite float, or :class:`InputError` naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or isinstance(value, bool):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return number


def events_per_day(times: Any) -> float | None:
    """Events per day of a period from its event times (OCSF's ``time``: epoch milliseconds, or
    date-times read from Parquet): the events with a readable time over the span from the first
    to the last. ``None`` when fewer than two times are readable or they span no time."""
    values = to_float(pd.Series(times))
    values = values[np.isfinite(values)]
    if len(values) < 2 or values.max() <= values.min():
        return None
    return float(len(values) * MS_PER_DAY / (values.max() - values.min()))


def cross_fitted_scores(
    scorer: Any, reference: np.ndarray | Sequence[np.ndarray], folds: int = CALIBRATION_FOLDS, seed: int = 0
) -> np.ndarray:
    """``(n,)`` a held-out score for every reference row: the rows are split into ``folds``
    seeded folds, and each fold is scored by ``clone(scorer)`` fitted on the other folds.

    ``reference`` is what ``scorer.fit`` takes: one matrix, or one matrix per view (the fusion
    scorers' ``[embeddings, raw features]``), all with the same rows."""
    views = [np.asarray(view) for view in reference] if isinstance(reference, (list, tuple)) else None
    num_rows = len(views[0]) if views is not None else len(reference)
    if num_rows < 2 * folds:
        raise ValueError(f"cross-fitting {folds} folds needs at least {2 * folds} reference rows, got {num_rows}")
    order = np.random.default_rng(seed).permutation(num_rows)
    scores = np.empty(num_rows, dtype=np.float64)
    for held_out in np.array_split(order, folds):
        kept = np.ones(num_rows, dtype=bool)
        kept[held_out] = False
        if views is None:
            member = clone(scorer).fit(reference[kept])
            scores[held_out] = member.score(reference[held_out])
        else:
            member = clone(scorer).fit([view[kept] for view in views])
            scores[held_out] = member.score([view[held_out] for view in views])
    return scores


@dataclass(frozen=True)
class AlertThreshold:
    """An alert threshold and how it was set (chapter "The OCSF pipeline"): an event alerts
    when its score is above ``score``. ``alert_rate`` is the share of normal events accepted as
    false alarms (asked for, or ``alerts_per_day / events_per_day`` when ``set_by`` is
    ``"alerts_per_day"``); ``held_out_above`` of the ``held_out`` normal scores lie above it."""

    score: float
    alert_rate: float
    set_by: str
    alerts_per_day: float | None
    events_per_day: float | None
    held_out: int
    held_out_above: int

    def describe(self) -> str:
        """One line: the threshold, what was asked, the expected alerts per day and how many
        held-out normal scores lie above it (with a warning when they are too few)."""
        if self.set_by == "alerts_per_day":
            asked = f"{self.alerts_per_day:g} alerts per day asked, an alert rate of {self.alert_rate:.3g}"
        else:
            asked = f"alert rate {self.alert_rate:g} asked"
        daily = (
            f", about {self.alert_rate * self.events_per_day:.3g} false alarms per day at the baseline's "
            f"{self.events_per_day:,.0f} events per day"
            if self.events_per_day is not None
            else ""
        )
        text = (
            f"alert threshold {self.score:.8g} (a score above it alerts): {asked}{daily}; "
            f"{self.held_out_above} of {self.held_out} held-out normal scores lie above it"
        )
        if self.held_out_above < MIN_EXCEEDANCES:
            text += f" (fewer than {MIN_EXCEEDANCES}: a rough threshold; train on a longer baseline for a steadier one)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, with :meth:`describe`'s line as ``description``."""
        return {
            "threshold": self.score,
            "alert_rate": self.alert_rate,
            "set_by": self.set_by,
            "alerts_per_day": self.alerts_per_day,
            "events_per_day": self.events_per_day,
            "held_out": self.held_out,
            "held_out_above": self.held_out_above,
            "description": self.describe(),
        }


@dataclass(frozen=True)
class Calibration:
    """The sorted scores of held-out normal baseline events, the baseline's event rate and how
    the scores were made (chapter "The OCSF pipeline"). Saved with the detector."""

    scores: np.ndarray
    events_per_day: float | None = None
    method: str = field(default=f"{CALIBRATION_FOLDS}-fold cross-fitting over the reference rows")

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.ndim != 1 or len(scores) == 0 or not np.isfinite(scores).all():
            raise ValueError(f"calibration scores must be a non-empty 1-D array of finite numbers, got {scores.shape}")
        if self.events_per_day is not None and not (math.isfinite(self.events_per_day) and self.events_per_day > 0):
            raise ValueError(f"events_per_day must be positive or None, got {self.events_per_day!r}")
        object.__setattr__(self, "scores", np.sort(scores))

    def percentiles(self, scores: Any) -> np.ndarray:
        """``(n,)`` 0-100: the share of held-out normal scores below each score, in percent."""
        values = np.asarray(scores, dtype=np.float64)
        return 100.0 * np.searchsorted(self.scores, values, side="left") / len(self.scores)

    def alert_rate(self, alert_rate: float | None = None, alerts_per_day: float | None = None) -> tuple[float, str]:
        """The alert rate asked for and how (``"alert_rate"`` or ``"alerts_per_day"``):
        ``alert_rate`` (default :data:`DEFAULT_ALERT_RATE`), or ``alerts_per_day`` divided by
        the baseline's events per day. Bad values raise :class:`InputError`."""
        if alert_rate is not None and alerts_per_day is not None:
            raise InputError("give an alert rate or a number of alerts per day, not both")
        if alerts_per_day is None:
            return check_alert_rate(DEFAULT_ALERT_RATE if alert_rate is None else alert_rate), "alert_rate"
        count = check_alerts_per_day(alerts_per_day)
        if self.events_per_day is None:
            raise InputError(
                "the detector's baseline has no readable time span to turn alerts per day into a rate; "
                "give an alert rate instead"
            )
        rate = count / self.events_per_day
        if rate >= 1.0:
            raise InputError(
                f"{count:g} alerts per day is not fewer than the baseline's {self.events_per_day:,.0f} "
                f"events per day; ask for fewer"
            )
        return rate, "alerts_per_day"

    def threshold(self, alert_rate: float | None = None, alerts_per_day: float | None = None) -> AlertThreshold:
        """The :class:`AlertThreshold` for an alert rate or a number of alerts per day
        (:meth:`alert_rate`): the held-out score with ``floor(rate * n)`` of the ``n`` held-out
        scores above its position, so that at most that share of them alerts (the largest
        held-out score when the rate is below ``1 / n``)."""
        rate, set_by = self.alert_rate(alert_rate, alerts_per_day)
        held_out = len(self.scores)
        allowed = math.floor(rate * held_out + 1e-9)
        value = float(self.scores[held_out - allowed - 1])
        above = held_out - int(np.searchsorted(self.scores, value, side="right"))
        return AlertThreshold(
            score=value,
            alert_rate=rate,
            set_by=set_by,
            alerts_per_day=alerts_per_day if set_by == "alerts_per_day" else None,
            events_per_day=self.events_per_day,
            held_out=held_out,
            held_out_above=above,
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the scores, as plain JSON (``config.json``'s ``calibration``)."""
        return {"events_per_day": self.events_per_day, "method": self.method, "held_out": len(self.scores)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], scores: np.ndarray) -> Calibration:
        """Rebuild from :meth:`to_dict` output and the saved scores (checked to match)."""
        if values.get("held_out") != len(scores):
            raise ValueError(
                f"the calibration lists {values.get('held_out')!r} held-out scores, the file holds {len(scores)}"
            )
        return cls(scores, values.get("events_per_day"), str(values.get("method", "")))
