"""The rational-quadratic spline with linear tails (Durkan et al. 2019, "Neural Spline Flows", sec. 3.1 and app. A),
evaluated without boolean masks.

nflows' `unconstrained_rational_quadratic_spline` selects the inputs inside the tail bound with a boolean mask and
evaluates the spline on that subset only: a data-dependent shape, hence a host synchronisation per layer, and a step
that cannot be captured as a CUDA graph. Here every input goes through the spline (those outside at 0, a point
inside) and `torch.where` keeps the identity (log-determinant 0) outside: static shapes, no synchronisation. The
parameters are read exactly as nflows reads them (the same softmax widths and heights with their minima, softplus
derivatives, the boundary derivatives fixed at 1 to join the linear tails), and inside the interval the arithmetic is
nflows' (bins located by the same comparisons, the same formulas in the same order; only the bins' softmax runs over
another dimension), so a flow's values and log-determinants agree with nflows' to float round-off.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from nflows.transforms.splines.rational_quadratic import (DEFAULT_MIN_BIN_HEIGHT, DEFAULT_MIN_BIN_WIDTH,
                                                          DEFAULT_MIN_DERIVATIVE)


def rational_quadratic_spline(inputs: torch.Tensor, unnormalized_widths: torch.Tensor,
                              unnormalized_heights: torch.Tensor, unnormalized_derivatives: torch.Tensor,
                              inverse: bool = False, tail_bound: float = 1.0,
                              min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
                              min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
                              min_derivative: float = DEFAULT_MIN_DERIVATIVE) -> tuple[torch.Tensor, torch.Tensor]:
    """The monotone spline on [-B, B] (B = tail_bound), the identity outside: (outputs, log|d outputs / d inputs|),
    elementwise. `inputs` has any shape S, the parameters S + (K,) for the widths and heights and S + (K - 1,) for the
    interior derivatives (nflows' `tails="linear"` layout). inverse=True evaluates the inverse map. The bins' widths
    and heights share one minimum (nflows' defaults are equal), so that both are computed together."""
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width != min_bin_height:
        raise ValueError(f"min_bin_width ({min_bin_width}) and min_bin_height ({min_bin_height}) must be equal")
    if min_bin_width * num_bins > 1.0:
        raise ValueError("minimal bin width too large for the number of bins")
    bound = float(tail_bound)
    inside = (inputs >= -bound) & (inputs <= bound)
    # a point inside for every element (0 for those outside, whose spline value is discarded): finite values and
    # gradients everywhere, the full gradient at the bound itself (clamp's would be 0 there)
    x = torch.where(inside, inputs, 0.0)

    # bins' widths (row 0) and heights (row 1): softmax, each at least min_bin_width of the interval; the K + 1 knots
    # on [-B, B] (the ends exactly +-B, the K - 1 interior ones from the cumulative sums) and the bins between them
    # (the softmax runs over a leading dimension: PyTorch's CPU kernel over a last dimension as short as K = 8 is
    # ~10x slower than over a leading one; the values are the same up to round-off)
    logits = torch.stack([unnormalized_widths, unnormalized_heights], dim=-2)
    sizes = F.softmax(logits.movedim(-1, 0), dim=0).movedim(0, -1)
    sizes = min_bin_width + (1 - min_bin_width * num_bins) * sizes
    inner = (2 * bound) * torch.cumsum(sizes[..., :-1], dim=-1) + -bound
    knots = F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)
    bins = knots[..., 1:] - knots[..., :-1]
    # the boundary derivatives are 1 (softplus(c) + min_derivative = 1): the spline joins the identity tails smoothly
    one = math.log(math.exp(1 - min_derivative) - 1)
    derivatives = min_derivative + F.softplus(F.pad(unnormalized_derivatives, (1, 1), value=one))

    # the bin of each point: the number of interior knots at or below it (in [0, K - 1] since x is in [-B, B])
    bin_idx = (inner[..., int(inverse), :] <= x[..., None]).sum(-1, keepdim=True)
    both = bin_idx[..., None, :].expand(*bin_idx.shape[:-1], 2, 1)
    input_cumwidths, input_cumheights = knots.gather(-1, both).unbind(-2)
    input_bin_widths, input_heights = bins.gather(-1, both).unbind(-2)
    input_derivatives, input_derivatives_plus_one = derivatives.gather(
        -1, torch.cat([bin_idx, bin_idx + 1], dim=-1)).unbind(-1)
    input_cumwidths, input_cumheights = input_cumwidths[..., 0], input_cumheights[..., 0]
    input_bin_widths, input_heights = input_bin_widths[..., 0], input_heights[..., 0]
    input_delta = input_heights / input_bin_widths
    slope_sum = input_derivatives + input_derivatives_plus_one - 2 * input_delta

    if inverse:
        dy = x - input_cumheights
        a = dy * slope_sum + input_heights * (input_delta - input_derivatives)
        b = input_heights * input_derivatives - dy * slope_sum
        c = -input_delta * dy
        discriminant = (b.pow(2) - 4 * a * c).clamp_min(0)  # >= 0 in exact arithmetic; round-off can dip below
        theta = (2 * c) / (-b - torch.sqrt(discriminant))
        outputs = theta * input_bin_widths + input_cumwidths
    else:
        theta = (x - input_cumwidths) / input_bin_widths
    one_minus_theta = 1 - theta
    theta_one_minus_theta = theta * one_minus_theta
    theta_squared = theta.pow(2)
    denominator = input_delta + slope_sum * theta_one_minus_theta
    if not inverse:
        numerator = input_heights * (input_delta * theta_squared + input_derivatives * theta_one_minus_theta)
        outputs = input_cumheights + numerator / denominator
    derivative_numerator = input_delta.pow(2) * (input_derivatives_plus_one * theta_squared
                                                 + 2 * input_delta * theta_one_minus_theta
                                                 + input_derivatives * one_minus_theta.pow(2))
    logabsdet = torch.log(derivative_numerator) - 2 * torch.log(denominator)
    if inverse:
        logabsdet = -logabsdet
    return torch.where(inside, outputs, inputs), torch.where(inside, logabsdet, 0.0)
