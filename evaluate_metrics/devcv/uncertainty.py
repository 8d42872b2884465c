"""Uncertainty of DevCV scores and tests between runs: numpy and scipy only (the metric card, "Uncertainty").

A DevCV score is a mean of per-item values (0/1 for an accuracy, a fraction for Memory's adjusted score).
Items cut from one recording, episode or video share objects and are not independent, so every interval
here is a *clustered* percentile bootstrap: whole clusters (``units``, one label per item; ``None``: every
item its own cluster) are drawn with replacement and the score is recomputed as the mean over the drawn
items. Every random draw comes from a ``numpy.random.Generator`` seeded by the caller, so a figure is
reproducible. Tests:

- against chance: the exact one-sided binomial test for per-item accuracies (:func:`binomial_p_value`),
  a one-sided bootstrap test for any other score (:func:`bootstrap_p_value`);
- between two runs on the same items: the exact McNemar test for per-item correctness (:func:`mcnemar`),
  a paired clustered bootstrap of the difference otherwise (:func:`paired_bootstrap`);
- across tasks: Holm's step-down correction (:func:`holm`).

>>> interval = bootstrap_mean([1, 1, 0, 1, 0, 1, 1, 1], n_resamples=2000, seed=0)
>>> round(interval.estimate, 3), interval.low <= 0.75 <= interval.high, interval.n_clusters
(0.75, True, 8)
>>> round(binomial_p_value(successes=8, trials=10, chance=0.5), 4)
0.0547
>>> mcnemar([1, 1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0])
McNemar(only_a=6, only_b=0, p_value=0.03125)
>>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

CONFIDENCE = 0.95
"""Coverage of every interval."""
N_RESAMPLES = 1000
"""Bootstrap resamples by default."""


@dataclass(frozen=True)
class Interval:
    """A score with its percentile bootstrap interval, over ``n`` items in ``n_clusters`` clusters."""

    estimate: float
    low: float
    high: float
    n: int
    n_clusters: int


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: items only run A got right, items only run B got right, two-sided p."""

    only_a: int
    only_b: int
    p_value: float


@dataclass(frozen=True)
class PairedDifference:
    """Score of run A minus score of run B on the same items, its bootstrap interval and two-sided p."""

    difference: float
    low: float
    high: float
    p_value: float
    n: int
    n_clusters: int


class Resampler:
    """Seeded cluster resampling of one item set, shared by every score computed on it.

    ``seed`` is anything ``numpy.random.default_rng`` takes (an int, or a sequence of ints). Drawing the
    resample weights once and applying them to several value vectors (two runs of the same
    items, or the tasks of an overall score) keeps their replicates paired.

    >>> resampler = Resampler(["r1", "r1", "r2", "r3"], n_resamples=4, seed=0)
    >>> resampler.n_clusters, resampler.replicates([1, 1, 0, 1]).shape
    (3, (4,))
    """

    def __init__(
        self,
        units: Sequence[Hashable] | None,
        n_items: int | None = None,
        *,
        n_resamples: int = N_RESAMPLES,
        seed: int | Sequence[int] = 0,
    ):
        if units is None:
            if n_items is None:
                raise ValueError("give the items' units or their number")
            units = range(n_items)
        units = list(units)
        if not units:
            raise ValueError("cannot resample an empty item set")
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
        _, self.codes = np.unique(np.array([str(unit) for unit in units]), return_inverse=True)
        self.n = len(units)
        self.n_clusters = int(self.codes.max()) + 1
        rng = np.random.default_rng(seed)
        # Drawing n_clusters clusters with replacement is drawing how often each is taken: a multinomial.
        self.weights = rng.multinomial(self.n_clusters, np.full(self.n_clusters, 1 / self.n_clusters), n_resamples)
        self._sizes = self.weights @ np.bincount(self.codes, minlength=self.n_clusters)

    def replicates(self, values: Sequence[float]) -> np.ndarray:
        """The mean of ``values`` (one per item) in each resample."""
        values = np.asarray(values, dtype=float)
        if values.shape != (self.n,):
            raise ValueError(f"{values.size} values for {self.n} items")
        sums = np.bincount(self.codes, weights=values, minlength=self.n_clusters)
        return (self.weights @ sums) / self._sizes


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` share of bootstrap replicates."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float],
    units: Sequence[Hashable] | None = None,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The mean of per-item ``values`` with its clustered percentile bootstrap interval."""
    resampler = Resampler(units, len(values), n_resamples=n_resamples, seed=seed)
    low, high = percentile_interval(resampler.replicates(values), confidence)
    return Interval(float(np.mean(values)), low, high, resampler.n, resampler.n_clusters)


def binomial_p_value(successes: int, trials: int, chance: float) -> float:
    """One-sided exact binomial p-value of ``successes`` of ``trials`` against a guesser right with ``chance``."""
    return float(binomtest(int(successes), int(trials), chance, alternative="greater").pvalue)


def bootstrap_p_value(estimate: float, replicates: np.ndarray, null: float) -> float:
    """One-sided bootstrap p-value of ``estimate > null``: how often a replicate, shifted to the null, reaches
    ``estimate`` (add-one, so never 0)."""
    reaching = np.count_nonzero(replicates - estimate + null >= estimate)
    return float((reaching + 1) / (len(replicates) + 1))


def mcnemar(correct_a: Sequence[float], correct_b: Sequence[float]) -> McNemar:
    """Exact McNemar test of two runs' per-item correctness (0/1) on the same items, two-sided."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} and {b.size} items: a paired test needs the same items")
    only_a, only_b = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(b & ~a))
    p_value = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return McNemar(only_a, only_b, p_value)


def paired_difference(
    replicates_a: np.ndarray, replicates_b: np.ndarray, difference: float, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Interval and two-sided bootstrap p-value of ``difference`` from paired replicates of both scores."""
    replicates = np.asarray(replicates_a) - np.asarray(replicates_b)
    low, high = percentile_interval(replicates, confidence)
    extreme = np.count_nonzero(np.abs(replicates - difference) >= abs(difference) - 1e-12)
    return low, high, float(min(1.0, (extreme + 1) / (len(replicates) + 1)))


def paired_bootstrap(
    values_a: Sequence[float],
    values_b: Sequence[float],
    units: Sequence[Hashable] | None = None,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> PairedDifference:
    """Mean of ``values_a`` minus mean of ``values_b`` (the same items in the same order), with its clustered
    paired bootstrap interval and two-sided p-value (replicates centred on the observed difference)."""
    if len(values_a) != len(values_b):
        raise ValueError(f"{len(values_a)} and {len(values_b)} items: a paired test needs the same items")
    resampler = Resampler(units, len(values_a), n_resamples=n_resamples, seed=seed)
    difference = float(np.mean(values_a) - np.mean(values_b))
    low, high, p_value = paired_difference(
        resampler.replicates(values_a), resampler.replicates(values_b), difference, confidence
    )
    return PairedDifference(difference, low, high, p_value, resampler.n, resampler.n_clusters)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()
