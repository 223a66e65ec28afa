"""Out-of-distribution detection metrics (issue 4's battery): AUROC, AUPR and the false-positive rate at 95% true-
positive rate, with percentile bootstrap intervals. Out-of-distribution images are the positive class and a higher
score means "more out-of-distribution": pass -log p for likelihood scores (flow log p(z), PAE density, ELBO) and the
reconstruction error as it is. The ROC and PR computations are scikit-learn's.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """The lowest false-positive rate among thresholds that flag at least `tpr` of the positives."""
    fprs, tprs, _ = roc_curve(labels, scores)
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


def _point(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"auroc": float(roc_auc_score(labels, scores)), "aupr": float(average_precision_score(labels, scores)),
            "fpr95": fpr_at_tpr(labels, scores)}


def ood_metrics(scores_in: np.ndarray, scores_out: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """Each metric with its `level` bootstrap interval (in- and out-of-distribution sets resampled separately)."""
    scores_in, scores_out = np.asarray(scores_in, float), np.asarray(scores_out, float)
    if not (len(scores_in) and len(scores_out)):
        raise ValueError("need scores for both in- and out-of-distribution images")
    if not (np.isfinite(scores_in).all() and np.isfinite(scores_out).all()):
        raise ValueError("scores must be finite (a -inf log-likelihood should be mapped to a large finite score)")
    labels = np.r_[np.zeros(len(scores_in)), np.ones(len(scores_out))]
    point = _point(labels, np.r_[scores_in, scores_out])
    rng = np.random.default_rng(seed)
    boots = {k: [] for k in point}
    for _ in range(n_boot):
        a = scores_in[rng.integers(0, len(scores_in), len(scores_in))]
        b = scores_out[rng.integers(0, len(scores_out), len(scores_out))]
        for k, v in _point(labels, np.r_[a, b]).items():
            boots[k].append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: {"value": v, "low": float(np.percentile(boots[k], lo)), "high": float(np.percentile(boots[k], hi)),
                "n_boot": n_boot, "level": level} for k, v in point.items()}
