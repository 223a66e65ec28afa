"""The PAE density: the decoder's 1/2 log det(J^T J) against an explicit autograd Jacobian (conv AE, VAE with a
per-pixel-sigma likelihood whose decode is the mean only) and against the closed form of a linear map with known
singular values; the PAE density of a linear decoder with a Gaussian flow against its analytic value."""
from __future__ import annotations

import math

import pytest
import torch
from nflows.transforms import IdentityTransform
from torch import nn

from pae.eval.density import decoder_log_det, pae_log_density
from pae.flows import FlowSpec, build_flow
from pae.flows.latent_flow import LatentFlow
from pae.models import ModelSpec, build_model
from pae.models.likelihoods import LikelihoodSpec


def _explicit(decode, z: torch.Tensor) -> torch.Tensor:
    out = []
    for z1 in z:
        jac = torch.autograd.functional.jacobian(lambda v: decode(v[None]).flatten(), z1).double()
        out.append(0.5 * torch.linalg.slogdet(jac.T @ jac).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("spec", [
    ModelSpec(kind="ae", arch="conv", image_shape=(1, 28, 28), latent_dim=4, channels=(8, 16), hidden=32),
    ModelSpec(kind="vae", arch="mlp", image_shape=(3, 8, 8), latent_dim=3, channels=(32,), hidden=16,
              likelihood=LikelihoodSpec(kind="gaussian_pixel")),
], ids=["conv_ae", "mlp_vae_pixel_sigma"])
def test_log_det_matches_an_explicit_jacobian(spec):
    torch.manual_seed(0)
    model = build_model(spec).eval()
    z = torch.randn(5, spec.latent_dim)
    got = decoder_log_det(model.decode, z, chunk_size=2)  # chunks of 2, 2, 1
    assert got.shape == (5,) and got.dtype == torch.float64
    # float32 Jacobians by two routes (~1e-6 relative) through the log det of J^T J, which the conditioning of J
    # amplifies: ~1e-5 at worst (1e-7 seen)
    torch.testing.assert_close(got, _explicit(model.decode, z), rtol=1e-4, atol=1e-4)
    assert got.std() > 0.01  # a non-linear decoder: the volume factor varies with z


def _linear_map(singular_values: list[float], n: int, seed: int = 0) -> torch.Tensor:
    """A (n x d) matrix U diag(s) V^T with orthonormal U (n x d) and V (d x d)."""
    g = torch.Generator().manual_seed(seed)
    d = len(singular_values)
    u = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
    return u @ torch.diag(torch.tensor(singular_values, dtype=torch.float64)) @ v.T


class LinearDecoder(nn.Module):
    """decode(z) = A z, shaped as (N, 3, 4, 4) images."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.register_buffer("a", a.float())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.a.T).view(-1, 3, 4, 4)


def test_log_det_of_a_linear_map_is_the_sum_of_log_singular_values():
    s = [0.05, 0.5, 1.0, 3.0, 40.0]
    decoder = LinearDecoder(_linear_map(s, 48))
    z = torch.randn(7, 5)
    got = decoder_log_det(decoder.decode, z, chunk_size=3)
    # A is stored in float32: rounding its entries (6e-8 relative, |A| = 40) moves the smallest singular value 0.05 by
    # at most ~5e-5 of itself, so the log det by < 1e-4 (7e-8 seen)
    torch.testing.assert_close(got, torch.full((7,), sum(map(math.log, s)), dtype=torch.float64), rtol=0, atol=1e-4)


def test_a_collapsed_direction_gives_a_vanishing_volume():
    """A decoder ignoring one latent direction: J^T J is singular (the Cholesky fails, the SVD path takes over) and
    the log-volume is -inf or far below that of the other directions (log 1 + log 2 = 0.69)."""
    a = _linear_map([1.0, 2.0, 3.0], 48)
    a[:, 2] = 0
    got = decoder_log_det(LinearDecoder(a).decode, torch.randn(4, 3))
    assert (got < -25).all()


def test_pae_density_of_a_linear_decoder_with_a_gaussian_flow_is_analytic():
    """z ~ N(m, diag(sd^2)) (a flow with an identity transform: only its standardisation), x = A z: on the decoder's
    manifold log p(x) = sum_i log N(z_i; m_i, sd_i^2) - sum_j log s_j."""
    s, m, sd = [0.2, 1.5, 4.0], torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 0.3, 2.5])
    decoder = LinearDecoder(_linear_map(s, 48, seed=1))
    flow = LatentFlow(IdentityTransform(), 3, mean=m, std=sd)
    z = m + sd * torch.randn(6, 3)
    expected = torch.distributions.Normal(m, sd).log_prob(z).sum(1).double() - sum(map(math.log, s))
    # float32 log p(z) (~1e-6) plus the float32-stored map's log det (as above): 1e-4 (5e-7 seen)
    torch.testing.assert_close(pae_log_density(decoder, flow, z, batch_size=2), expected, rtol=0, atol=1e-4)

    nonlinear_flow = build_flow(FlowSpec(kind="realnvp", layers=2, hidden=8, blocks=1, bins=4, tail_bound=3.0,
                                         epochs=1, patience=1, batch_size=8, lr=1e-3), 3).eval()
    with torch.no_grad():
        expected = nonlinear_flow.log_prob(z).double() - sum(map(math.log, s))
    torch.testing.assert_close(pae_log_density(decoder, nonlinear_flow, z), expected, rtol=0, atol=1e-4)  # as above
