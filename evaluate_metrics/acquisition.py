"""Ages of acquisition along a trajectory of checkpoints, and their rank correlation with children's.

- :func:`task_acquisition_age`: the first age from which a score stays above chance: the earliest checkpoint whose
  p-value against chance is below ``SIGNIFICANCE`` (0.01) *and* every later checkpoint's is too; ``None`` when the
  last checkpoint is not significant.
- :func:`word_acquisition_age`: per word, a logistic fit of per-choice correctness against log age (months), with
  chance as its floor: ``p(age) = chance + (1 - chance) * sigmoid(slope * (log(age) - log(midpoint)))``, fitted by
  maximum likelihood; the word's age of acquisition is ``midpoint``, where the fitted correctness is halfway from
  chance to ceiling (the 50 % point of the chance-corrected curve; with chance 0 the plain 50 % point). ``None``
  when the fit does not rise (slope <= 0) or the midpoint lies outside the ages observed.
- :func:`read_aoa_norms`: children's ages of acquisition from a CSV with the columns ``word`` and ``aoa_months``.
- :func:`aoa_correlation`: Spearman's rank correlation between the model's and the children's word AoA over the
  words both have, with a seeded percentile bootstrap interval over words and the number of words.

>>> ages = [6, 9, 12, 18, 24]
>>> task_acquisition_age(ages, [0.5, 0.001, 0.2, 0.004, 0.0001])
18
>>> task_acquisition_age(ages, [0.5, 0.001, 0.002, 0.004, 0.3]) is None
True
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.stats import ConstantInputWarning, spearmanr

from .devcv.uncertainty import CONFIDENCE, N_RESAMPLES, percentile_interval

SIGNIFICANCE = 0.01


def task_acquisition_age(ages: Sequence[float], p_values: Sequence[float], level: float = SIGNIFICANCE):
    """The first of ``ages`` (ascending) from which every p-value is below ``level``; None if none."""
    first = None
    for age, p_value in zip(ages, p_values, strict=True):
        if p_value < level:
            first = age if first is None else first
        else:
            first = None
    return first


@dataclass(frozen=True)
class WordFit:
    """A word's fitted midpoint (months, None when not acquired in the range), slope per log-month, and the
    choices it rests on."""

    aoa_months: float | None
    slope: float
    n: int


def word_acquisition_age(
    ages: Sequence[float], right: Sequence[int], trials: Sequence[int], chance: float = 0.0
) -> WordFit:
    """The chance-floored logistic fit of ``right`` of ``trials`` choices at each of ``ages`` (months)."""
    x = np.log(np.asarray(ages, dtype=float))
    k, n = np.asarray(right, dtype=float), np.asarray(trials, dtype=float)

    def negative_log_likelihood(parameters):
        slope, centre = parameters
        p = chance + (1 - chance) / (1 + np.exp(-slope * (x - centre)))
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return -float(np.sum(k * np.log(p) + (n - k) * np.log(1 - p)))

    start = [1.0, float(np.mean(x))]
    fit = minimize(negative_log_likelihood, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    slope, centre = fit.x
    inside = x.min() <= centre <= x.max()
    return WordFit(math.exp(centre) if slope > 0 and inside else None, float(slope), int(n.sum()))


@dataclass(frozen=True)
class Correlation:
    rho: float
    ci_low: float
    ci_high: float
    n_words: int


def aoa_correlation(
    model: Mapping[str, float | None],
    children: Mapping[str, float],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Correlation | None:
    """Spearman's rho between the model's and the children's AoA over the words both give one (words the model
    never acquired are left out), with a percentile bootstrap interval over words; None under 3 words."""
    words = sorted(word for word, age in model.items() if age is not None and word in children)
    if len(words) < 3:
        return None
    a = np.array([model[word] for word in words])
    b = np.array([children[word] for word in words])
    rho = float(spearmanr(a, b).statistic)
    rng = np.random.default_rng(seed)
    replicates = []
    with warnings.catch_warnings():  # a resample of one repeated word has no rank correlation: it is left out
        warnings.simplefilter("ignore", ConstantInputWarning)
        for _ in range(n_resamples):
            pick = rng.integers(0, len(words), len(words))
            value = spearmanr(a[pick], b[pick]).statistic
            if np.isfinite(value):
                replicates.append(value)
    low, high = percentile_interval(np.array(replicates), CONFIDENCE) if replicates else (rho, rho)
    return Correlation(rho, low, high, len(words))


NORM_COLUMNS = ("word", "aoa_months")


def read_aoa_norms(path: str | Path) -> dict[str, float]:
    """Children's age of acquisition (months) per word, from a CSV with the columns ``word`` and ``aoa_months``
    (others are ignored; words compared lower-cased); a one-line ``ValueError`` naming the file and line where
    it cannot be read."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in NORM_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: no column {', '.join(missing)} (it needs {', '.join(NORM_COLUMNS)})")
            norms = {}
            for line, row in enumerate(reader, start=2):
                word = (row["word"] or "").strip().lower()
                try:
                    age = float(row["aoa_months"])
                except (TypeError, ValueError):
                    raise ValueError(f"{path}, line {line}: aoa_months {row['aoa_months']!r} is not a number") from None
                if not word or not math.isfinite(age):
                    raise ValueError(f"{path}, line {line}: needs a word and a finite aoa_months")
                norms[word] = age
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({error})") from error
    if not norms:
        raise ValueError(f"{path}: no words")
    return norms
