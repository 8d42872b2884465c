"""Ages of acquisition and their correlation with children's, on synthetic curves whose answers are known."""

import math

import numpy as np
import pytest
from babyvlm.evaluate_metrics.acquisition import (
    aoa_correlation,
    read_aoa_norms,
    task_acquisition_age,
    word_acquisition_age,
)
from scipy.stats import spearmanr


def test_a_task_is_acquired_from_the_first_age_after_which_every_checkpoint_is_significant():
    ages = [6, 9, 12, 18, 24, 32]
    assert task_acquisition_age(ages, [0.3, 0.005, 0.4, 0.009, 0.001, 1e-5]) == 18
    assert task_acquisition_age(ages, [0.3] * 5 + [0.001]) == 32
    assert task_acquisition_age(ages, [0.001] * 5 + [0.02]) is None


@pytest.mark.parametrize("chance", [0.0, 0.25, 0.5])
def test_the_word_fit_recovers_a_known_midpoint(chance):
    ages = np.array([6, 9, 12, 15, 18, 24, 32], dtype=float)
    midpoint, slope, trials = 14.0, 4.0, 10_000
    p = chance + (1 - chance) / (1 + np.exp(-slope * (np.log(ages) - math.log(midpoint))))
    fit = word_acquisition_age(ages, np.round(p * trials).astype(int), [trials] * len(ages), chance)
    assert fit.aoa_months == pytest.approx(midpoint, rel=0.01)
    assert fit.slope == pytest.approx(slope, rel=0.05)


def test_a_word_that_never_rises_has_no_age_of_acquisition():
    fit = word_acquisition_age([6, 12, 24], [5, 5, 5], [10, 10, 10], chance=0.5)
    assert fit.aoa_months is None


def test_a_monotone_relation_correlates_perfectly_and_scipy_agrees():
    children = {f"w{k}": 10 + k for k in range(8)}
    model = {word: math.exp(age / 5) for word, age in children.items()}
    model["never"] = None
    result = aoa_correlation(model, children | {"never": 20}, seed=0)
    assert result.rho == pytest.approx(1.0) and result.n_words == 8
    assert result.ci_low == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    noisy = {word: age + rng.normal(0, 3) for word, age in children.items()}
    result = aoa_correlation(noisy, children, seed=0)
    words = sorted(children)
    expected = spearmanr([noisy[w] for w in words], [children[w] for w in words]).statistic
    assert result.rho == pytest.approx(expected)
    assert result.ci_low <= result.rho <= result.ci_high
    assert aoa_correlation(noisy, children, seed=0) == result  # seeded


def test_under_three_shared_words_no_correlation_is_claimed():
    assert aoa_correlation({"a": 1.0, "b": 2.0}, {"a": 10, "b": 20}) is None


def test_children_norms_are_read_from_a_word_and_aoa_months_csv(tmp_path):
    path = tmp_path / "norms.csv"
    path.write_text("word,aoa_months,source\nBall ,14.5,wordbank\ndog,17,wordbank\n")
    assert read_aoa_norms(path) == {"ball": 14.5, "dog": 17.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("word,age\nball,14\n", "no column aoa_months"),
        ("word,aoa_months\nball,14\ndog,soon\n", r"norms.csv, line 3: aoa_months 'soon' is not a number"),
        ("word,aoa_months\n", "no words"),
    ],
)
def test_a_bad_norms_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "norms.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_aoa_norms(path)
