"""The latent normalizing flow: invertibility, log-density against a numerical change of variables, sampling at a
temperature, fitting a Gaussian, save/load."""
from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from pae.flows.latent_flow import FlowSpec, build_flow, fit_flow, load_flow, mean_log_prob, save_flow
from pae.io import PaeError
from pae.models import ModelSpec, build_model, save_model

SPEC = FlowSpec(kind="nsf", layers=2, hidden=16, blocks=1, bins=4, tail_bound=4.0, epochs=8, patience=3,
                batch_size=128, lr=5e-3, seed=0)


def stats(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A non-trivial standardisation: mean and std differ per dimension."""
    return torch.linspace(-2.0, 1.5, dim), torch.linspace(0.5, 3.0, dim)


def flow_with_stats(dim: int):
    """A freshly built flow (random weights, not the identity) with that standardisation."""
    mean, std = stats(dim)
    return build_flow(SPEC, dim, mean, std).eval(), mean, std


def points(n: int, dim: int, seed=0) -> torch.Tensor:
    """Latents roughly on the flow's standardised scale."""
    mean, std = stats(dim)
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * std + mean


@pytest.mark.parametrize("dim", [2, 5])
def test_inverse_undoes_forward_and_log_dets_cancel(dim):
    flow, _, _ = flow_with_stats(dim)
    z = points(64, dim)
    with torch.no_grad():
        u, ld_fwd = flow(z)
        z_back, ld_inv = flow.inverse(u)
    assert not torch.allclose(u, (z - flow.mean) / flow.std, atol=1e-3)  # the transform does something
    torch.testing.assert_close(z_back, z, atol=1e-4, rtol=0)
    torch.testing.assert_close(ld_fwd + ld_inv, torch.zeros(64), atol=1e-4, rtol=0)


def test_log_prob_matches_numerical_change_of_variables():
    flow, _, _ = flow_with_stats(2)
    z = points(16, 2, seed=1)
    with torch.no_grad():
        log_prob = flow.log_prob(z)
    base = torch.distributions.Normal(0.0, 1.0)
    for i in range(len(z)):
        J = jacobian(lambda p: flow(p[None])[0][0], z[i])
        assert J.shape == (2, 2)
        with torch.no_grad():
            u = flow(z[i:i + 1])[0][0]
        expected = base.log_prob(u).sum() + torch.linalg.slogdet(J).logabsdet
        assert log_prob[i].item() == pytest.approx(expected.item(), abs=1e-4)


def test_standardisation_contributes_minus_sum_log_std():
    flow, _, std = flow_with_stats(2)
    z = points(8, 2)
    with torch.no_grad():
        _, ld_total = flow(z)
        _, ld_transform = flow.transform((z - flow.mean) / flow.std)
    torch.testing.assert_close(ld_total, ld_transform - std.log().sum())


@pytest.mark.parametrize("value", [50.0, -50.0, 1e3])
def test_log_prob_finite_on_outliers(value):
    flow, mean, std = flow_with_stats(2)
    z = torch.tensor([[value, value], [value, 0.0], [0.0, -value]])
    for zz in (z, z * std + mean):
        with torch.no_grad():
            lp = flow.log_prob(zz)
        assert torch.isfinite(lp).all()
        assert (lp < -10).all()  # far out means improbable


@pytest.mark.parametrize("dim", [2, 5])
def test_sample_shape_and_reproducible(dim):
    flow, _, _ = flow_with_stats(dim)
    a = flow.sample(100, 0.8, generator=torch.Generator().manual_seed(7))
    b = flow.sample(100, 0.8, generator=torch.Generator().manual_seed(7))
    c = flow.sample(100, 0.8, generator=torch.Generator().manual_seed(8))
    assert a.shape == (100, dim) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_temperature_sets_spread_in_u_space():
    flow, _, _ = flow_with_stats(2)
    stds = {}
    for t in (0.3, 1.0):
        z = flow.sample(4000, t, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            u = flow(z)[0]
        stds[t] = u.std(0)
        torch.testing.assert_close(stds[t], torch.full((2,), t), atol=0.05 * t, rtol=0)
    assert (stds[0.3] < stds[1.0]).all()


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
        build_flow(SPEC, 1)


def test_build_flow_unknown_kind_rejected():
    with pytest.raises(PaeError, match="unknown flow kind 'glow'"):
        build_flow(FlowSpec(**{**SPEC.__dict__, "kind": "glow"}), 2)


def test_flow_spec_from_dict_rejects_unknown_keys():
    with pytest.raises(PaeError, match="unknown keys.*'depth'"):
        FlowSpec.from_dict({**SPEC.__dict__, "depth": 3})


def test_fit_flow_reaches_true_gaussian_log_likelihood():
    mu, cov = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])  # correlation 0.85
    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(cov)
    train = torch.randn(2000, 2, generator=g) @ chol.T + mu
    val = torch.randn(1000, 2, generator=g) @ chol.T + mu
    true = torch.distributions.MultivariateNormal(mu, cov).log_prob(val).mean().item()
    flow, history = fit_flow(SPEC, train, val)
    assert not flow.training
    assert 1 <= len(history) <= SPEC.epochs
    assert {"epoch", "train_logp", "val_logp", "seconds"} <= set(history[0])
    best = max(h["val_logp"] for h in history)
    assert mean_log_prob(flow, val) == pytest.approx(best, abs=1e-6)  # the best state is the one kept
    assert abs(best - true) < 0.15, (best, true)
    torch.testing.assert_close(flow.mean, train.mean(0))
    torch.testing.assert_close(flow.std, train.std(0))


def test_save_load_round_trip(tmp_path):
    flow, _, _ = flow_with_stats(3)
    meta = {"dataset": "synthetic", "val_logp": -1.25}
    save_flow(tmp_path / "flow.pt", flow, SPEC, meta)
    loaded, spec, loaded_meta = load_flow(tmp_path / "flow.pt")
    assert spec == SPEC and loaded_meta == meta and loaded.dim == 3
    z = points(32, 3)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(z), flow.log_prob(z))
    torch.testing.assert_close(loaded.mean, flow.mean)
    torch.testing.assert_close(loaded.std, flow.std)


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
    assert mean_log_prob(flow, z, batch_size=7) == pytest.approx(expected, abs=1e-5)
