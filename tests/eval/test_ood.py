"""OoD metrics: known cases by hand, chance level, intervals around the point estimate, determinism, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from pae.eval.ood import fpr_at_tpr, ood_metrics


def test_perfect_separation():
    m = ood_metrics(np.arange(10.0), np.arange(10.0) + 100, n_boot=50)
    assert m["auroc"]["value"] == 1.0 and m["aupr"]["value"] == pytest.approx(1.0) and m["fpr95"]["value"] == 0.0
    assert m["auroc"]["low"] == 1.0


def test_hand_computed_case():
    """in = [0, 1, 2, 3], out = [2.5, 4]: pairs (out > in) = 3 + 4 of 8 -> AUROC 7/8. All positives are flagged at
    threshold 2.5, which also flags one negative (3): FPR at 95% TPR = 1/4."""
    m = ood_metrics([0, 1, 2, 3], [2.5, 4], n_boot=10)
    assert m["auroc"]["value"] == pytest.approx(7 / 8)
    assert m["fpr95"]["value"] == pytest.approx(0.25)
    labels = np.array([0, 0, 0, 0, 1, 1])
    assert fpr_at_tpr(labels, np.array([0, 1, 2, 3, 2.5, 4]), 0.5) == 0.0  # threshold 4 flags half the positives


def test_same_distribution_is_chance_and_the_interval_covers_it():
    rng = np.random.default_rng(0)
    m = ood_metrics(rng.normal(size=2000), rng.normal(size=2000), n_boot=200)
    assert abs(m["auroc"]["value"] - 0.5) < 0.03
    assert m["auroc"]["low"] < 0.5 < m["auroc"]["high"]
    assert m["fpr95"]["value"] == pytest.approx(0.95, abs=0.03)


def test_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=1000), rng.normal(1.0, size=1000)
    m1, m2 = ood_metrics(a, b, n_boot=300, seed=3), ood_metrics(a, b, n_boot=300, seed=3)
    assert m1 == m2
    for k, v in m1.items():
        assert v["low"] <= v["value"] <= v["high"], k
    # Two unit Gaussians one sigma apart: AUROC = Phi(1 / sqrt(2)) = 0.760
    assert m1["auroc"]["value"] == pytest.approx(0.760, abs=0.03)
    assert m1["auroc"]["high"] - m1["auroc"]["low"] < 0.06


def test_bad_input():
    with pytest.raises(ValueError, match="both"):
        ood_metrics([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        ood_metrics([1.0, np.inf], [2.0])
