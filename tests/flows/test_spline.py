"""The mask-free rational-quadratic spline (pae.flows.spline) against nflows' masked one: values, log-determinants
and gradients, forward and inverse, over random parameters, inside the tail bound, on it, on the knots and beyond.

Tolerances. Both evaluate the same formulas; the bins' softmax runs over another dimension (PyTorch's CPU kernel is
faster there) and may round differently in the last bit, which moves a value as the computation's own round-off
does: strongly where a bin is narrow or a point sits on a knot. In float32 every value must agree with nflows' to 8x
the largest float32 error nflows' own spline makes on the same batch (against its float64 result); over 360 random
batches ours stayed within 3.5x. In float64 they must agree to 1e-8 of the value's scale: 4e-13 seen away from the
knots, 6e-10 on them, where a knot a last bit apart puts the point in the neighbouring bin (the spline is C1, so
only round-off separates the two evaluations); a formula that differed would be off by far more.
"""
from __future__ import annotations

import math

import pytest
import torch
from nflows.transforms.splines.rational_quadratic import unconstrained_rational_quadratic_spline

from pae.flows.spline import rational_quadratic_spline

N, D, K, B = 256, 6, 8, 4.0
EPS32 = torch.finfo(torch.float32).eps


def _case(seed: int, scale: float, inverse: bool, dtype=torch.float64):
    """Random parameters of spread `scale` and inputs: inside [-B, B], exactly +-B, exactly on interior knots (of the
    inputs' side: widths forward, heights inverse), just outside, far outside, infinite."""
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(N, D, 3 * K - 1, generator=g, dtype=torch.float64) * scale
    x = (torch.rand(N, D, generator=g, dtype=torch.float64) * 2 - 1) * B
    x[:8] = torch.randn(8, D, generator=g, dtype=torch.float64) * 30  # mostly outside
    x[8] = B
    x[9] = -B
    x[10] = B * (1 + 1e-6)
    x[11] = -B * (1 + 1e-6)
    x[12, :2] = torch.tensor([math.inf, -math.inf])
    # interior knots of each row's spline, as nflows places them
    logits = params[..., K:2 * K] if inverse else params[..., :K]
    sizes = 1e-3 + (1 - 1e-3 * K) * torch.softmax(logits[13:13 + K - 1] / math.sqrt(128), -1)
    knots = (2 * B) * torch.cumsum(sizes, -1) - B
    for j in range(K - 1):
        x[13 + j] = knots[j, :, j]
    return x.to(dtype), params.to(dtype)


def _both(x, params, inverse, hidden=128):
    """(nflows' outputs, logabsdet), (ours) for the coupling's reading of params (widths, heights / sqrt(hidden))."""
    w, h, d = params[..., :K] / math.sqrt(hidden), params[..., K:2 * K] / math.sqrt(hidden), params[..., 2 * K:]
    theirs = unconstrained_rational_quadratic_spline(x, w, h, d.clone(), inverse=inverse, tails="linear",
                                                     tail_bound=B)
    ours = rational_quadratic_spline(x, w, h, d, inverse=inverse, tail_bound=B)
    return theirs, ours


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_values_and_log_dets_equal_nflows(inverse, scale):
    x64, p64 = _case(int(scale * 10), scale, inverse)
    (t_out, t_ld), (o_out, o_ld) = _both(x64, p64, inverse)
    (t32_out, t32_ld), (o32_out, o32_ld) = _both(x64.float(), p64.float(), inverse)
    out_scale = x64.abs().clamp_min(B).nan_to_num(posinf=0.0)  # B, or |x| outside (the identity there)
    finite = torch.isfinite(x64)
    outside = x64.abs() > B
    assert torch.equal(o_out[outside], x64[outside]) and torch.equal(o_ld[outside], torch.zeros_like(o_ld[outside]))
    assert torch.equal(o32_out[~finite], t32_out[~finite])
    ld_scale = 1 + t_ld.abs()
    assert ((o_out - t_out)[finite].abs() <= 1e-8 * out_scale[finite]).all()
    assert ((o_ld - t_ld).abs() <= 1e-8 * ld_scale).all()
    for ours, theirs, reference, scale in ((o32_out, t32_out, t_out, out_scale), (o32_ld, t32_ld, t_ld, ld_scale)):
        own_error = (theirs.double() - reference)[finite].abs().max()
        tol = 8 * own_error + 4 * EPS32 * scale  # (the ulps: a floor, should nflows' be exact on a batch)
        assert ((ours.double() - theirs.double())[finite].abs() <= tol[finite]).all()


@pytest.mark.parametrize("inverse", [False, True])
def test_inverse_undoes_forward(inverse):
    x, p = _case(3, 1.0, inverse)
    x = x.nan_to_num(posinf=1e3, neginf=-1e3)
    w, h, d = p[..., :K] / math.sqrt(128), p[..., K:2 * K] / math.sqrt(128), p[..., 2 * K:]
    y, ld = rational_quadratic_spline(x, w, h, d, inverse=inverse, tail_bound=B)
    back, ld_back = rational_quadratic_spline(y, w, h, d, inverse=not inverse, tail_bound=B)
    # float64 round trip through the quadratic formula: ~eps times the condition of the bins (1e-10 is 5e5 eps)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-10 * B)
    torch.testing.assert_close(ld + ld_back, torch.zeros_like(ld), rtol=0, atol=1e-10)


@pytest.mark.parametrize("inverse", [False, True])
def test_gradients_equal_nflows(inverse):
    """Gradients of sum(outputs) + sum(logabsdet) with respect to the inputs and every parameter: nflows' masked
    spline gives the parameters of points outside the bound no gradient and the inputs there 1; ours too. Points
    exactly on an interior knot are left out: the spline is C1, so its value and log-determinant are continuous there,
    but which bin's parameters a point on a knot depends on, and the log-determinant's slope, follow the knot's last
    bit."""
    x, p = _case(5, 1.0, inverse)
    x = x.nan_to_num(posinf=50.0, neginf=-50.0)
    x[13:13 + K - 1] = x[20:20 + K - 1]
    grads = []
    for fn in ("theirs", "ours"):
        xx, pp = x.clone().requires_grad_(), p.clone().requires_grad_()
        (t_out, t_ld), (o_out, o_ld) = _both(xx, pp, inverse)
        out, ld = (t_out, t_ld) if fn == "theirs" else (o_out, o_ld)
        grads.append(torch.autograd.grad(out.sum() + ld.sum(), (xx, pp)))
    (gx_t, gp_t), (gx_o, gp_o) = grads
    # float64, the same formulas: 1e-9 relative to the largest gradient (steep bins reach O(1e3))
    torch.testing.assert_close(gx_o, gx_t, rtol=0, atol=1e-9 * gx_t.abs().max().item())
    torch.testing.assert_close(gp_o, gp_t, rtol=0, atol=1e-9 * gp_t.abs().max().item())
    outside = x.abs() > B
    assert torch.equal(gx_o[outside], torch.ones_like(gx_o[outside]))
    assert torch.equal(gp_o[outside], torch.zeros_like(gp_o[outside]))


def test_unequal_minimum_bin_sizes_refused():
    x, p = _case(0, 1.0, False)
    with pytest.raises(ValueError, match="must be equal"):
        rational_quadratic_spline(x, p[..., :K], p[..., K:2 * K], p[..., 2 * K:], min_bin_width=1e-3,
                                  min_bin_height=2e-3)
