"""Likelihoods: NLLs equal torch.distributions' log-densities, masks restrict them to observed pixels, beta-NLL
reweights the loss only, decoders get the channels each likelihood needs."""
from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from pae.models.likelihoods import LIKELIHOODS, LikelihoodSpec, build_likelihood

N, C, H, W = 4, 3, 5, 6
# Per-image NLLs are float32 sums of C * H * W = 90 pixel terms, here and in torch.distributions by other formulas:
# ~1e-7 sqrt(90) relative to the summed magnitudes (|NLL| ~ 100-1000; 1e-4 absolute seen, 0.2 of float32's default
# tolerance), and another CPU's vector width changes the summation order. SUM_TOL is 1e-5 relative: a missing
# constant or a wrong sigma is off by far more.
SUM_TOL = {"rtol": 1e-5, "atol": 1e-5}


def _out(lik, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, lik.decoder_channels(), H, W, generator=g)


def _x(seed=1):
    return torch.rand(N, C, H, W, generator=torch.Generator().manual_seed(seed)) - 0.5


def test_gaussian_fixed_matches_normal():
    lik = build_likelihood(LikelihoodSpec("gaussian_fixed", sigma=0.2), C)
    out, x = _out(lik), _x()
    expected = D.Normal(out, 0.2).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(-lik.nll(out, x), expected, **SUM_TOL)


def test_gaussian_learned_matches_normal_and_learns_sigma():
    lik = build_likelihood(LikelihoodSpec("gaussian_learned", sigma=0.3), C)
    out, x = _out(lik), _x()
    torch.testing.assert_close(-lik.nll(out, x), D.Normal(out, 0.3).log_prob(x).flatten(1).sum(1), **SUM_TOL)
    lik.nll(out, x).sum().backward()
    assert lik.log_sigma.grad is not None and lik.log_sigma.grad != 0


def test_gaussian_image_uses_one_sigma_per_image():
    lik = build_likelihood(LikelihoodSpec("gaussian_image"), C)
    assert lik.decoder_channels() == C + 1
    out, x = _out(lik), _x()
    sigma = out[:, C:].mean(dim=(1, 2, 3)).exp().view(N, 1, 1, 1)
    expected = D.Normal(out[:, :C], sigma.expand(N, C, H, W)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(-lik.nll(out, x), expected, **SUM_TOL)
    # exp of a float32 mean of 30 values, both ways (equal here): float32 round-off
    assert torch.allclose(lik.scale(out), sigma.expand(N, C, H, W), rtol=1e-5, atol=0)


def test_gaussian_pixel_matches_normal():
    lik = build_likelihood(LikelihoodSpec("gaussian_pixel"), C)
    assert lik.decoder_channels() == 2 * C
    out, x = _out(lik), _x()
    expected = D.Normal(out[:, :C], out[:, C:].exp()).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(-lik.nll(out, x), expected, **SUM_TOL)


def test_bernoulli_matches_torch_on_binary_and_soft_targets():
    lik = build_likelihood(LikelihoodSpec("bernoulli"), C)
    out = _out(lik)
    binary = (torch.rand(N, C, H, W, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    expected = D.Bernoulli(logits=out).log_prob(binary).flatten(1).sum(1)
    torch.testing.assert_close(-lik.nll(out, binary - 0.5), expected, **SUM_TOL)
    soft = _x() + 0.5  # grayscale treated as probabilities: the cross-entropy
    ce = -(soft * torch.nn.functional.logsigmoid(out) + (1 - soft) * torch.nn.functional.logsigmoid(-out))
    torch.testing.assert_close(lik.nll(out, soft - 0.5), ce.flatten(1).sum(1), **SUM_TOL)
    torch.testing.assert_close(lik.mean(out), torch.sigmoid(out) - 0.5)  # elementwise: float32's default tolerance


@pytest.mark.parametrize("kind", sorted(LIKELIHOODS))
def test_mask_keeps_observed_pixels_only(kind):
    lik = build_likelihood(LikelihoodSpec(kind), C)
    out, x = _out(lik), _x()
    mask = (torch.rand(N, 1, H, W, generator=torch.Generator().manual_seed(5)) > 0.4).float()
    full = lik.nll(out, x)
    masked = lik.nll(out, x, mask)
    x_other = torch.where(mask.bool().expand_as(x), x, torch.full_like(x, 0.37))
    # the same sums over the same observed terms (equal here): SUM_TOL
    torch.testing.assert_close(lik.nll(out, x_other, mask), masked, **SUM_TOL)  # missing pixels do not matter
    torch.testing.assert_close(lik.nll(out, x, torch.ones(N, 1, H, W)), full, **SUM_TOL)


def test_beta_nll_reweights_the_loss_not_the_nll():
    plain = build_likelihood(LikelihoodSpec("gaussian_pixel", beta_nll=0.0), C)
    beta = build_likelihood(LikelihoodSpec("gaussian_pixel", beta_nll=0.5), C)
    out, x = _out(plain), _x()
    torch.testing.assert_close(plain.loss(out, x), plain.nll(out, x), **SUM_TOL)
    torch.testing.assert_close(beta.nll(out, x), plain.nll(out, x), **SUM_TOL)
    var = out[:, C:].exp() ** 2
    per_pixel = -D.Normal(out[:, :C], out[:, C:].exp()).log_prob(x)
    torch.testing.assert_close(beta.loss(out, x), (per_pixel * var ** 0.5).flatten(1).sum(1), **SUM_TOL)
    # the weight is a constant: d loss / d mean = var^beta * d nll / d mean
    o1, o2 = out.clone().requires_grad_(True), out.clone().requires_grad_(True)
    beta.loss(o1, x).sum().backward()
    plain.nll(o2, x).sum().backward()
    # per-pixel gradients, a few float32 operations each: float32's default tolerance (0.05 of it seen)
    torch.testing.assert_close(o1.grad[:, :C], o2.grad[:, :C] * var ** 0.5)


def test_unknown_likelihood_and_bad_sigma():
    with pytest.raises(ValueError, match="unknown likelihood 'laplace'"):
        build_likelihood(LikelihoodSpec("laplace"), 1)
    with pytest.raises(ValueError, match="sigma must be positive"):
        build_likelihood(LikelihoodSpec("gaussian_fixed", sigma=0.0), 1)
