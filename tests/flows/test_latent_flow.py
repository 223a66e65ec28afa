"""LatentFlow itself: the standardisation's log-determinant, argument checks, fitting a Gaussian, load errors.
What every flow kind must satisfy (invertibility, change of variables, temperature, save/load) is in
test_flow_zoo.py."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from pae.flows.latent_flow import FlowSpec, LatentFlow, build_flow, fit_flow, load_flow, mean_log_prob
from pae.io import PaeError
from pae.models import ModelSpec, build_model, save_model
from tests.helpers import FLOW_SPEC, correlated_gaussian, points, stats


def flow_with_stats(dim: int):
    """A freshly built flow (random weights, not the identity) with that standardisation."""
    mean, std = stats(dim)
    return build_flow(FLOW_SPEC, dim, mean, std).eval(), mean, std


def test_standardisation_contributes_minus_sum_log_std():
    flow, _, std = flow_with_stats(2)
    z = points(8, 2)
    with torch.no_grad():
        _, ld_total = flow(z)
        _, ld_transform = flow.transform((z - flow.mean) / flow.std)
    # the same float32 terms in another order: float32's default tolerance (equal here)
    torch.testing.assert_close(ld_total, ld_transform - std.log().sum())


def test_sample_rejects_non_positive_temperature():
    flow, _, _ = flow_with_stats(2)
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(3, 0.0)


def test_wrong_latent_shape_rejected():
    flow, _, _ = flow_with_stats(2)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        flow.log_prob(torch.zeros(4, 3))


def test_build_flow_dim_1_rejected():
    with pytest.raises(PaeError, match="at least 2"):
        build_flow(FLOW_SPEC, 1)


def test_build_flow_unknown_kind_rejected():
    with pytest.raises(PaeError, match="unknown flow kind 'glow'"):
        build_flow(FlowSpec(**{**FLOW_SPEC.__dict__, "kind": "glow"}), 2)


def test_flow_spec_from_dict_rejects_unknown_keys():
    with pytest.raises(PaeError, match="unknown keys.*'depth'"):
        FlowSpec.from_dict({**FLOW_SPEC.__dict__, "depth": 3})


def test_fit_flow_reaches_true_gaussian_log_likelihood():
    train, val, true = correlated_gaussian(2000, 1000)
    flow, history = fit_flow(FLOW_SPEC, train, val)
    assert not flow.training
    assert 1 <= len(history) <= FLOW_SPEC.epochs
    assert {"epoch", "train_logp", "val_logp", "seconds"} <= set(history[0])
    best = max(h["val_logp"] for h in history)
    # the best state is the one kept: the same computation on the same weights (bitwise equal); epochs differ by >1e-3
    assert mean_log_prob(flow, val) == pytest.approx(best, abs=1e-6)
    assert abs(best - true) < 0.15, (best, true)  # fit + sampling error of 1,000 validation points (sd ~0.03)
    # the flow stores these very float32 reductions (equal here): float32's default tolerance
    torch.testing.assert_close(flow.mean, train.mean(0))
    torch.testing.assert_close(flow.std, train.std(0))


def test_flow_noise_jitters_the_training_batches_only(monkeypatch):
    """flow.noise adds N(0, noise^2) per standardised dimension to every training batch, drawn anew each time; the
    validation log-likelihood sees the clean latents."""
    train, val, _ = correlated_gaussian(8000, 1000)
    seen = {True: [], False: []}
    log_prob = LatentFlow.log_prob

    def recording(self, z):
        seen[self.training].append(z.detach().clone())
        return log_prob(self, z)

    monkeypatch.setattr(LatentFlow, "log_prob", recording)
    noise = 0.5
    fit_flow(FlowSpec(**{**FLOW_SPEC.__dict__, "epochs": 2, "patience": 2, "noise": noise}), train, val)
    epochs = [torch.cat(seen[True][i:i + len(seen[True]) // 2]) for i in (0, len(seen[True]) // 2)]
    std = train.std(0)
    for z in epochs:  # each epoch: every training latent once, plus independent noise
        assert z.shape == train.shape
        # var(z + e) - var(z) = var(e) + 2 cov(z, e), in units of var(z): noise^2 (1 +- sqrt(2 / n)) + 2 N(0, noise^2 / n),
        # sd 0.012 for n = 8,000 and noise 0.5; the draws are seeded, the tolerance is 4 sd
        extra = (z.var(0) - train.var(0)) / std ** 2
        torch.testing.assert_close(extra, torch.full((2,), noise ** 2), atol=0.05, rtol=0)
        assert not torch.equal(z.sort(0).values, train.sort(0).values)
    assert not torch.equal(epochs[0].sort(0).values, epochs[1].sort(0).values)  # new noise every epoch
    # the validation passes (before the fit and after each epoch) see exactly the clean validation latents
    assert all(torch.equal(z, val) for z in seen[False]) and len(seen[False]) == 3


def test_load_flow_on_model_file(tmp_path):
    spec = ModelSpec("ae", "conv", (1, 8, 8), 2, (4,), 8)
    save_model(tmp_path / "model.pt", build_model(spec), spec, {})
    with pytest.raises(PaeError, match="model.pt.*not a pae flow file"):
        load_flow(tmp_path / "model.pt")


def test_mean_log_prob_is_the_average_of_log_prob():
    flow, _, _ = flow_with_stats(2)
    z = points(50, 2)
    with torch.no_grad():
        expected = flow.log_prob(z).double().mean().item()
    # float32 log p (|value| ~ 4) in batches of 7 vs 50 (other kernels): ~1e-6 per point, averaged (1e-8 seen)
    assert mean_log_prob(flow, z, batch_size=7) == pytest.approx(expected, abs=1e-5)


def test_flat_parameters_take_the_same_steps_in_a_few_ops():
    """FlowSteps' flat buffer (what fit_flow runs): backward fills the parameters' grads in place inside one
    gradient buffer, clipping and Adam update every parameter through the one flat Parameter, in a handful of ops
    instead of a loop over the parameter tensors, and the steps equal the per-tensor optimizer's. The only
    difference is the order the gradient's norm is summed in (the clip factor differs in its last bits), so each
    step's update may round differently by an ulp of the parameter (float32: 6e-8 relative) and the loss by a few
    ulps: over 5 steps, parameters and losses stay within 1e-5 relative (+1e-6 absolute near zero), ~100 ulps of
    slack, where a missed update of Adam (steps of about lr = 5e-3) would move them by 5e-3."""
    from torch.profiler import ProfilerActivity, profile

    from pae.flows.latent_flow import FlowSteps

    dim = 6
    g = torch.Generator().manual_seed(3)
    z = torch.randn(256, dim, generator=g) @ torch.randn(dim, dim, generator=g)
    mean, std = z.mean(0), z.std(0)
    flat = FlowSteps(build_flow(FLOW_SPEC, dim, mean, std), FLOW_SPEC)
    loop = FlowSteps(build_flow(FLOW_SPEC, dim, mean, std), FLOW_SPEC, flat=False)
    before = {k: v.clone() for k, v in flat.flow.state_dict().items()}
    for i in range(5):
        batch = z[i * 50:(i + 1) * 50]
        torch.testing.assert_close(flat(batch), loop(batch), rtol=1e-5, atol=1e-6)
    grad = flat.params[0].grad
    for p in flat.flow.parameters():  # views into the one buffer, filled in place by backward
        assert p.grad.untyped_storage().data_ptr() == grad.untyped_storage().data_ptr()
        assert p.untyped_storage().data_ptr() == flat.params[0].untyped_storage().data_ptr()
    after, reference = flat.flow.state_dict(), loop.flow.state_dict()
    assert all(not torch.equal(after[k], before[k]) for k, p in flat.flow.named_parameters())
    for k in reference:
        torch.testing.assert_close(after[k], reference[k], rtol=1e-5, atol=1e-6)

    def optimizer_ops(steps):
        steps.zero_grad()
        steps.loss(z[:50]).backward()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            steps.clip_gradients()
            steps.opt.step()
        return sum(e.name.startswith("aten::") for e in prof.events())

    n_tensors = len(list(loop.flow.parameters()))
    assert optimizer_ops(flat) < 40 and optimizer_ops(loop) > 5 * n_tensors > 40


def test_fit_flow_returns_a_flow_with_its_own_parameters():
    """fit_flow trains through the flat buffer, then gives each parameter its own storage back and no grads: the
    flow moves, saves and loads like any module."""
    train, val, _ = correlated_gaussian(500, 100)
    flow, _ = fit_flow(dataclasses.replace(FLOW_SPEC, epochs=1), train, val)
    pointers = {p.untyped_storage().data_ptr() for p in flow.parameters()}
    assert len(pointers) == len(list(flow.parameters())) and all(p.grad is None for p in flow.parameters())
