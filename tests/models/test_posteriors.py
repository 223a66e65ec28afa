"""Posterior families: the KL to N(0, I) in closed form, valid full covariances, the prior as initial value."""
from __future__ import annotations

import torch
from torch import distributions as D

from pae.models.posteriors import POSTERIORS, DiagonalGaussian, FullGaussian


def test_diagonal_kl_matches_closed_form():
    post = DiagonalGaussian(5)
    params = torch.randn(7, post.n_params(), generator=torch.Generator().manual_seed(0))
    mu, logvar = params[:, :5], params[:, 5:]
    expected = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    # float32 sums of 5 terms by two formulas (|KL| ~ 5; 5e-7 seen): float32's default tolerance (1.3e-6 + 1e-5)
    torch.testing.assert_close(D.kl_divergence(post.distribution(params), post.prior(params)), expected)
    torch.testing.assert_close(post.mean(params), mu)  # a slice: exact


def test_full_covariance_is_lower_triangular_positive_definite_and_kl_is_right():
    post = FullGaussian(4)
    assert post.n_params() == 4 + 10
    params = torch.randn(6, post.n_params(), generator=torch.Generator().manual_seed(1))
    L = post.scale_tril(params)
    assert torch.equal(L, L.tril()) and (torch.diagonal(L, dim1=1, dim2=2) > 0).all()
    cov = L @ L.transpose(1, 2)
    mu = params[:, :4]
    expected = 0.5 * (torch.diagonal(cov, dim1=1, dim2=2).sum(1) + (mu ** 2).sum(1) - 4 - torch.logdet(cov))
    # float32 logdet of L L^T formed explicitly (cond ~1e2-1e3) against torch's Cholesky-based KL: ~eps cond, 5e-5
    # seen
    torch.testing.assert_close(D.kl_divergence(post.distribution(params), post.prior(params)), expected,
                               rtol=1e-4, atol=1e-4)


def test_initial_parameters_are_the_prior():
    for name, cls in POSTERIORS.items():
        post = cls(3)
        params = post.init_params(2)
        kl = D.kl_divergence(post.distribution(params), post.prior(params))
        assert kl.abs().max() < 1e-3, name  # 0 or float32 round-off (1e-8); a non-prior start is off by O(0.1)


def test_samples_are_reparameterised():
    post = FullGaussian(3)
    params = torch.randn(2, post.n_params(), requires_grad=True)
    post.distribution(params).rsample().sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0


def test_a_fixed_log_variance_leaves_the_mean_as_the_only_parameter():
    post = DiagonalGaussian(4, logvar=-14.0)
    assert post.n_params() == 4
    params = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    q = post.distribution(params)
    torch.testing.assert_close(q.base_dist.scale, torch.full((3, 4), torch.tensor(-7.0).exp().item()))
    expected = 0.5 * (params ** 2 + torch.tensor(-14.0).exp() - 1 + 14.0).sum(1)
    # float32 sums of 4 terms of size ~7 by two formulas: float32's default tolerance (1.3e-6 relative)
    torch.testing.assert_close(D.kl_divergence(q, post.prior(params)), expected)
    assert torch.equal(post.init_params(2), torch.zeros(2, 4))
