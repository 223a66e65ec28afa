"""The latent posterior against closed forms: a linear decoder with a Gaussian prior has a Gaussian posterior, which
MAP, Laplace (both curvatures) and NUTS must recover; the flow prior is really used; coverage is calibrated on data
drawn from the model; sigma_pix is the floored RMS of the residuals."""
from __future__ import annotations

import math

import pytest
import torch
from nflows.transforms import IdentityTransform
from torch import nn

from pae.eval.posterior import (coverage, decoder_jacobian, laplace, laplace_samples, map_estimate, neg_log_post,
                                nuts, observation, predictive)
from pae.eval.residuals import residual_sigma
from pae.flows import FlowSpec, LatentFlow, fit_flow
from pae.models import ModelSpec, build_model

SHAPE = (1, 4, 4)


class LinearDecoder(nn.Module):
    """x = W z + b, reshaped to an image; encode returns the zero latent."""

    def __init__(self, dim: int, shape=SHAPE, seed: int = 0, scale: float = 0.3, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        pixels = math.prod(shape)
        self.shape = shape
        self.weight = nn.Parameter(scale * torch.randn(pixels, dim, generator=g, dtype=dtype))
        self.bias = nn.Parameter(0.1 * torch.randn(pixels, generator=g, dtype=dtype))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.weight.T + self.bias).view(-1, *self.shape)

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x.new_zeros(len(x), self.weight.shape[1])


def closed_form(model: LinearDecoder, x, mask, sigma, prior_mean=None, prior_std=None):
    """Posterior mean (N, D) and covariance (N, D, D) of z given x under N(prior_mean, diag(prior_std^2))."""
    w, b = model.weight.detach(), model.bias.detach()
    dim = w.shape[1]
    prior_mean = torch.zeros(dim, dtype=w.dtype) if prior_mean is None else prior_mean.to(w)
    prior_prec = torch.ones(dim, dtype=w.dtype) if prior_std is None else prior_std.to(w).pow(-2)
    weight = (torch.broadcast_to(mask, x.shape) / torch.as_tensor(sigma, dtype=w.dtype) ** 2).flatten(1)
    precision = torch.einsum("pd,np,pe->nde", w, weight, w) + torch.diag(prior_prec)
    cov = torch.linalg.inv(precision)
    rhs = torch.einsum("pd,np->nd", w, weight * (x.flatten(1) - b)) + prior_prec * prior_mean
    return torch.einsum("nde,ne->nd", cov, rhs), cov


def gaussian_flow(mean: torch.Tensor, std: torch.Tensor) -> LatentFlow:
    """A flow whose density is exactly N(mean, diag(std^2)): the identity transform after standardisation."""
    return LatentFlow(IdentityTransform(), len(mean), mean, std).double()


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(3)
    model = LinearDecoder(3)
    x = 0.3 * torch.randn(5, *SHAPE, generator=g, dtype=torch.float64)
    mask = (torch.rand(5, 1, *SHAPE[1:], generator=g) > 0.4).double()
    return model, x, mask, 0.2


def _map(model, flow, x, mask, sigma, **kw):
    init = torch.zeros(len(x), model.weight.shape[1], dtype=x.dtype)
    return map_estimate(model, flow, x, mask, sigma, restarts=kw.pop("restarts", 2), steps=kw.pop("steps", 400),
                        lr=0.05, init=init, generator=torch.Generator().manual_seed(0), **kw)


def test_standard_normal_prior_matches_the_closed_form(problem):
    model, x, mask, sigma = problem
    mean, cov = closed_form(model, x, mask, sigma)
    z, nlp = _map(model, None, x, mask, sigma)
    # the MAP is found by 400 Adam steps on a quadratic: this bounds their convergence (4e-9 seen), not round-off
    assert torch.allclose(z, mean, rtol=0, atol=1e-6)
    for curvature in ("gauss_newton", "hessian"):  # float64 3x3 inverses of a well-conditioned precision: ~1e-14
        assert torch.allclose(laplace(model, None, x, mask, sigma, z, curvature=curvature), cov, rtol=1e-9,
                              atol=1e-12), curvature
    # the objective is -log N(x_obs; W z + b, sigma^2) - log N(z; 0, I)
    w_obs = torch.broadcast_to(mask, x.shape).flatten(1).bool()
    lik = torch.distributions.Normal(model.decode(z).detach().flatten(1), sigma).log_prob(x.flatten(1))
    expected = -(lik * w_obs).sum(1) - torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(nlp, expected, rtol=0, atol=1e-9)  # float64 sums of 16 + 3 terms (|nlp| ~ 12): ~1e-14


def test_gaussian_flow_prior_enters_map_and_laplace(problem):
    model, x, mask, sigma = problem
    prior_mean, prior_std = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.5, 2.0, 1.0])
    mean, cov = closed_form(model, x, mask, sigma, prior_mean, prior_std)
    flow = gaussian_flow(prior_mean, prior_std)
    z, _ = _map(model, flow, x, mask, sigma, steps=600)
    assert torch.allclose(z, mean, rtol=0, atol=1e-5)  # 600 Adam steps' convergence (6e-13 seen), not round-off
    for curvature in ("gauss_newton", "hessian"):  # float64 3x3 inverses: ~1e-14
        assert torch.allclose(laplace(model, flow, x, mask, sigma, z, curvature=curvature), cov, rtol=1e-9,
                              atol=1e-12), curvature
    # the prior matters here: it changes the covariance by up to 85%, far beyond 5%
    assert not torch.allclose(cov, closed_form(model, x, mask, sigma)[1], rtol=0.05)


class TanhDecoder(LinearDecoder):
    """A curved decoder, x = tanh(W z + b): the exact Hessian differs from Gauss-Newton by the residual term."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().decode(z))


def test_exact_hessian_of_a_curved_decoder(problem):
    _, x, mask, sigma = problem
    model = TanhDecoder(3, scale=1.5)
    z, _ = _map(model, None, x, mask, sigma)
    exact = laplace(model, None, x, mask, sigma, z, curvature="hessian")
    for i in range(len(x)):  # image i's objective alone, differentiated twice by torch
        single = observation(x[i:i + 1], mask[i:i + 1], sigma)
        hess = torch.autograd.functional.hessian(lambda v: neg_log_post(model, None, single, v[None])[0], z[i])
        assert torch.linalg.eigvalsh(hess).min() > 0  # a minimum: the covariance is its plain inverse
        # two float64 routes to the same 3x3 Hessian and its inverse: ~1e-14 relative (9e-15 seen)
        assert torch.allclose(exact[i], torch.linalg.inv(hess), rtol=1e-9, atol=1e-12)
    # Gauss-Newton differs (by up to 5x here), far beyond 1e-3
    assert not torch.allclose(exact, laplace(model, None, x, mask, sigma, z), rtol=1e-3)


def test_restarts_keep_the_lowest_objective(problem):
    model, x, mask, sigma = problem
    mean, _ = closed_form(model, x, mask, sigma)
    g = torch.Generator().manual_seed(0)
    z, _ = map_estimate(model, None, x, mask, sigma, restarts=4, steps=0, lr=0.05, init=mean, generator=g)
    assert torch.equal(z, mean)  # no prior draw beats the optimum
    far = torch.full_like(mean, 50.0)
    z, nlp = map_estimate(model, None, x, mask, sigma, restarts=4, steps=0, lr=0.05, init=far, generator=g)
    assert (z.abs() < 10).all()  # a prior draw beats the far start
    # the same float64 objective at the same z (equal here); 1e-12 allows another summation order
    assert torch.allclose(nlp, neg_log_post(model, None, observation(x, mask, sigma), z), rtol=1e-12, atol=1e-12)


def test_nuts_samples_the_posterior(problem):
    model, x, mask, sigma = problem
    x, mask = x[:3], mask[:3]
    mean, cov = closed_form(model, x, mask, sigma)
    # precondition with a deliberately wrong (inflated) covariance: only the potential can make the samples right
    state = torch.get_rng_state()
    z, info = nuts(model, None, x, mask, sigma, mean, 2 * cov, samples=400, warmup=200, max_tree_depth=5, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
    assert z.shape == (400, 3, 3) and info["divergences"] == 0 and info["step_size"] > 0
    white = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), (z - mean)[..., None], upper=False)[..., 0]
    assert white.mean(0).abs().max() < 0.25  # ~5 Monte Carlo standard errors
    white_cov = torch.einsum("sni,snj->nij", white, white) / len(white)
    # ~5 standard errors; samples following the preconditioner alone would be off by 1
    assert (white_cov - torch.eye(3, dtype=white.dtype)).abs().max() < 0.35
    again, _ = nuts(model, None, x, mask, sigma, mean, 2 * cov, samples=400, warmup=200, max_tree_depth=5, seed=1)
    assert torch.equal(z, again)


def test_the_flow_prior_is_used_and_dominates_as_sigma_grows():
    model = LinearDecoder(2, seed=1)
    z_true = torch.tensor([[-1.0, 1.0], [0.5, -0.5]], dtype=torch.float64)
    x = model.decode(z_true).detach()
    g = torch.Generator().manual_seed(0)
    shifted = 2.0 + 0.5 * torch.randn(640, 2, generator=g)
    spec = FlowSpec(kind="realnvp", layers=2, hidden=16, blocks=1, bins=4, tail_bound=5.0, epochs=20, patience=20,
                    batch_size=128, lr=5e-3)
    flow, _ = fit_flow(spec, shifted[:512], shifted[512:])
    flow = flow.double()
    z_flat, _ = _map(model, None, x, None, 0.5, restarts=1)
    z_flow, _ = _map(model, flow, x, None, 0.5, restarts=1)
    assert (z_flow - z_flat).norm(dim=1).min() > 0.3  # same decoder, data and start: the prior moves the MAP

    mode, _ = _map(model, flow, x, None, 1e4, restarts=1)
    assert (mode - 2.0).abs().max() < 0.5  # the fitted flow's mode is near the shifted latents' mean
    for flow_, target in ((None, torch.zeros_like(mode)), (flow, mode)):
        distances = [(_map(model, flow_, x, None, s, restarts=1)[0] - target).norm(dim=1) for s in (0.03, 0.3, 3.0)]
        assert (distances[0] > distances[1]).all() and (distances[1] > distances[2]).all()
    # data dominate: at sigma 0.03 the prior moves the MAP by ~1e-3 (6e-4 seen), its mode lies ~2 away
    assert torch.allclose(_map(model, None, x, None, 0.03, restarts=1)[0], z_true, rtol=0, atol=0.05)


def test_coverage_is_nominal_on_data_from_the_model():
    """z ~ N(0, I), truth = W z + b + sigma_pix e, observed = truth + noise on the right half: the exact posterior's
    predictive covers the missing true pixels at the nominal rates, and only with sigma_pix included."""
    g = torch.Generator().manual_seed(0)
    shape, n, sigma_pix, noise = (1, 6, 6), 400, 0.1, 0.1
    model = LinearDecoder(3, shape=shape, seed=2)
    z_true = torch.randn(n, 3, generator=g, dtype=torch.float64)
    truth = model.decode(z_true).detach() + sigma_pix * torch.randn(n, *shape, generator=g, dtype=torch.float64)
    mask = torch.ones(n, 1, 6, 6, dtype=torch.float64)
    mask[..., :3] = 0
    x = (truth + noise * torch.randn(truth.shape, generator=g, dtype=torch.float64)) * mask
    sigma = math.hypot(sigma_pix, noise)
    z_map, _ = _map(model, None, x, mask, sigma, restarts=1, steps=300)
    cov = laplace(model, None, x, mask, sigma, z_map)
    pred = predictive(model, laplace_samples(z_map, cov, 300, torch.Generator().manual_seed(1)))
    cov_missing = coverage(truth, pred.samples, sigma_pix, mask, region="missing")
    # sampling: 7,200 missing pixels of 400 images, 300 draws each (sd ~0.01 with the pixels of an image correlated)
    assert cov_missing[0.68] == pytest.approx(0.68, abs=0.03) and cov_missing[0.95] == pytest.approx(0.95, abs=0.02)
    without_pixel_error = coverage(truth, pred.samples, 1e-6, mask, region="missing")
    assert without_pixel_error[0.68] < 0.55 and without_pixel_error[0.95] < 0.85
    # the predictive std is the latent posterior seen through the decoder: sqrt(diag(W cov W^T))
    w = model.weight.detach()
    exact_std = torch.einsum("pd,nde,pe->np", w, cov, w).sqrt().view_as(pred.std)
    # the std of 300 draws is off by ~1/sqrt(600) = 4% (sd); the worst of 400 images by ~4 sd (16% seen)
    assert torch.allclose(pred.std, exact_std, rtol=0.2)
    assert ((pred.mean - model.decode(z_map).detach()).abs() < 5 * exact_std / 300 ** 0.5).all()


def test_coverage_of_a_known_predictive_and_its_regions():
    g = torch.Generator().manual_seed(0)
    truth = torch.randn(50, 1, 20, 20, generator=g)
    c = coverage(truth, torch.zeros(1, *truth.shape), 1.0)  # truth ~ N(0, 1) = the predictive
    # binomial sampling over 20,000 pixels: sd 0.0033 at 68%, 0.0015 at 95%
    assert c[0.68] == pytest.approx(0.68, abs=0.015) and c[0.95] == pytest.approx(0.95, abs=0.01)
    mask = torch.zeros(50, 1, 20, 20)
    mask[..., 10:] = 1
    samples = torch.where(mask.bool(), truth, truth + 100.0)[None]  # right on observed pixels, far off elsewhere
    assert coverage(truth, samples, 0.1, mask, region="observed") == {0.68: 1.0, 0.95: 1.0}
    assert coverage(truth, samples, 0.1, mask, region="missing") == {0.68: 0.0, 0.95: 0.0}
    assert coverage(truth, samples, 0.1, mask, region="all") == {0.68: 0.5, 0.95: 0.5}
    with pytest.raises(ValueError, match="no missing pixels"):
        coverage(truth, samples, 0.1, torch.ones_like(mask), region="missing")


def test_residual_sigma_is_the_floored_rms():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 1, 4, 4), generator=g, dtype=torch.uint8)
    images[:, :, 0, 0] = 128  # constant pixel: residual 0.5 / 255 against a decoder that outputs 0.0
    model = LinearDecoder(2, dtype=torch.float32)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    sigma = residual_sigma(model, images, torch.zeros(30, 2), "cpu", batch_size=7, floor=0.01)
    expected = (images.double() / 255 - 0.5).pow(2).mean(0).sqrt().clamp_min(0.01).float()
    # float32 mean of 30 squared residuals against float64: ~1e-7 relative; sigma >= 0.01, so rtol alone
    assert sigma.shape == (1, 4, 4) and torch.allclose(sigma, expected, rtol=1e-5, atol=0) and sigma[0, 0, 0] == 0.01


def test_decoder_jacobian_of_a_conv_decoder():
    spec = ModelSpec(kind="ae", arch="conv", image_shape=(1, 12, 12), latent_dim=3, channels=(4,), hidden=8)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    z = torch.randn(2, 3)
    jac = decoder_jacobian(model, z)
    for i in range(2):
        expected = torch.autograd.functional.jacobian(lambda v: model.decode(v[None]).flatten(), z[i])
        # float32 conv decoder, two autograd routes: ~1e-7 of the entries' scale (~0.1); 4e-8 seen
        assert torch.allclose(jac[i], expected, rtol=1e-5, atol=1e-6)
