"""Intervals and tests of DevCV scores, checked against scipy and simulations whose answers are known."""

import doctest

import numpy as np
import pytest
from babyvlm.evaluate_metrics.devcv import uncertainty
from babyvlm.evaluate_metrics.devcv.uncertainty import (
    Resampler,
    binomial_p_value,
    bootstrap_mean,
    bootstrap_p_value,
    holm,
    mcnemar,
    paired_bootstrap,
)
from scipy import stats


def test_docstring_examples():
    result = doctest.testmod(uncertainty)
    assert result.attempted > 0 and result.failed == 0


def test_item_bootstrap_matches_scipys_percentile_bootstrap():
    correct = np.random.default_rng(1).random(200) < 0.62
    ours = bootstrap_mean(correct, n_resamples=4000, seed=3)
    theirs = stats.bootstrap(
        (correct.astype(float),), np.mean, n_resamples=4000, method="percentile", random_state=4
    ).confidence_interval
    assert ours.estimate == pytest.approx(correct.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.012)
    assert ours.high == pytest.approx(theirs.high, abs=0.012)
    assert (ours.n, ours.n_clusters) == (200, 200)


def test_the_same_seed_gives_the_same_interval():
    values = np.random.default_rng(0).random(50)
    assert bootstrap_mean(values, seed=7) == bootstrap_mean(values, seed=7)
    assert bootstrap_mean(values, seed=7) != bootstrap_mean(values, seed=8)


def test_clustered_interval_is_wider_when_a_recordings_items_agree():
    # 20 recordings of 10 items each; a recording's items are all right or all wrong.
    recording_right = np.random.default_rng(2).random(20) < 0.5
    correct = np.repeat(recording_right, 10)
    units = np.repeat([f"rec{k}" for k in range(20)], 10)
    by_item = bootstrap_mean(correct, seed=0)
    by_recording = bootstrap_mean(correct, units, seed=0)
    assert by_recording.n_clusters == 20
    assert (by_recording.high - by_recording.low) > 2 * (by_item.high - by_item.low)
    # Resampling whole clusters is the item bootstrap of the cluster means (equal cluster sizes).
    per_recording = stats.bootstrap(
        (recording_right.astype(float),), np.mean, n_resamples=1000, method="percentile", random_state=0
    ).confidence_interval
    assert by_recording.low == pytest.approx(per_recording.low, abs=0.06)
    assert by_recording.high == pytest.approx(per_recording.high, abs=0.06)


def test_binomial_p_value_is_scipys_one_sided_test():
    for successes, trials, chance in ((30, 100, 0.25), (3, 10, 1 / 3), (100, 100, 0.5), (0, 7, 1 / 6)):
        expected = stats.binomtest(successes, trials, chance, alternative="greater").pvalue
        assert binomial_p_value(successes, trials, chance) == pytest.approx(expected)


def test_bootstrap_p_value_against_chance_agrees_with_the_binomial_test():
    correct = np.random.default_rng(5).random(300) < 0.31
    resampler = Resampler(None, len(correct), n_resamples=4000, seed=0)
    p = bootstrap_p_value(correct.mean(), resampler.replicates(correct), 0.25)
    assert p == pytest.approx(binomial_p_value(correct.sum(), len(correct), 0.25), abs=0.02)


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_items():
    rng = np.random.default_rng(6)
    a, b = rng.random(120) < 0.7, rng.random(120) < 0.5
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b) == (int(np.sum(a & ~b)), int(np.sum(b & ~a)))
    assert result.p_value == pytest.approx(stats.binomtest(result.only_a, result.only_a + result.only_b).pvalue)


def test_a_known_difference_is_detected_and_identical_runs_are_not():
    rng = np.random.default_rng(8)
    units = np.repeat(np.arange(40), 5)  # 40 episodes of 5 items
    better = rng.random(200) < 0.8
    worse = better & (rng.random(200) < 0.7)  # loses 30% of the better model's right answers, gains none
    assert mcnemar(better, worse).p_value < 1e-6
    difference = paired_bootstrap(better, worse, units, seed=1)
    assert difference.difference == pytest.approx(better.mean() - worse.mean())
    assert 0 < difference.low < difference.difference < difference.high
    assert difference.p_value < 0.01

    assert mcnemar(better, better).p_value == 1.0
    same = paired_bootstrap(better, better, units, seed=1)
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_false_positive_rate_is_near_its_level():
    rng = np.random.default_rng(9)
    rejections = 0
    for trial in range(100):
        shared = rng.random(150) < 0.6  # two models of equal skill, errors correlated through the items
        a = np.where(rng.random(150) < 0.3, rng.random(150) < 0.6, shared)
        b = np.where(rng.random(150) < 0.3, rng.random(150) < 0.6, shared)
        rejections += paired_bootstrap(a, b, n_resamples=400, seed=trial).p_value < 0.05
    assert rejections <= 12


def test_paired_tests_refuse_different_item_counts():
    with pytest.raises(ValueError, match="same items"):
        mcnemar([1, 0], [1])
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1, 0], [1])


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.2]
    # sorted: 0.01*4, 0.03*3, 0.04*2, 0.2*1, made monotone
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([]) == []
