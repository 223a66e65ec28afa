"""Evaluation: reconstruction error, flow likelihoods, samples and interpolations (more metrics plug in here)."""
