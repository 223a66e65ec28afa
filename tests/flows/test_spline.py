"""The mask-free rational-quadratic spline (pae.flows.spline) against nflows' masked one: values, log-determinants
and gradients, forward and inverse, over random parameters, inside the tail bound, on it, on the knots and beyond.

Tolerances. In float64 both are the same formulas, so they agree to float64 round-off. In float32 they run the same
operations (equal bit for bit on the machine this was written on), but another CPU's vector kernels may round the
softmax or sums differently in the last bit, and that propagates as the computation's own float32 error does. So
each float32 value must agree with nflows' to 4x that element's float32 error (nflows' float32 result against its
float64 one) plus 16 float32 ulps of its scale."""
from __future__ import annotations

import math

import pytest
import torch
from nflows.transforms.splines.rational_quadratic import unconstrained_rational_quadratic_spline

from pae.flows.spline import rational_quadratic_spline

N, D, K, B = 256, 6, 8, 4.0
EPS = {torch.float32: torch.finfo(torch.float32).eps, torch.float64: torch.finfo(torch.float64).eps}


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


def _float32_tolerance(reference64, theirs32, scale):
    """4x the element's own float32 error plus 16 float32 ulps of `scale`."""
    own_error = (theirs32.double() - reference64).abs().nan_to_num(0.0)
    return 4 * own_error + 16 * EPS[torch.float32] * scale


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_values_and_log_dets_equal_nflows(inverse, scale):
    x64, p64 = _case(int(scale * 10), scale, inverse)
    (t_out, t_ld), (o_out, o_ld) = _both(x64, p64, inverse)
    # float64: the same formulas; 64 ulps of the values' scale (B, or |x| outside: the identity there)
    out_scale = x64.abs().clamp_min(B).nan_to_num(posinf=0.0)
    finite = torch.isfinite(x64)
    assert torch.equal(o_out[~finite], t_out[~finite])
    assert ((o_out - t_out)[finite].abs() <= 64 * EPS[torch.float64] * out_scale[finite]).all()
    assert ((o_ld - t_ld).abs() <= 64 * EPS[torch.float64] * (1 + t_ld.abs())).all()
    outside = x64.abs() > B
    assert torch.equal(o_out[outside], x64[outside]) and torch.equal(o_ld[outside], torch.zeros_like(o_ld[outside]))

    (t32_out, t32_ld), (o32_out, o32_ld) = _both(x64.float(), p64.float(), inverse)
    assert torch.equal(o32_out[~finite], t32_out[~finite])
    tol = _float32_tolerance(t_out, t32_out, out_scale)
    assert ((o32_out.double() - t32_out.double())[finite].abs() <= tol[finite]).all()
    tol = _float32_tolerance(t_ld, t32_ld, 1 + t_ld.abs())
    assert ((o32_ld.double() - t32_ld.double()).abs() <= tol).all()


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
    spline gives the parameters of points outside the bound no gradient and the inputs there 1; ours too."""
    x, p = _case(5, 1.0, inverse)
    x = x.nan_to_num(posinf=50.0, neginf=-50.0)
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
