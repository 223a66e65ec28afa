"""The flows' layers: nflows' transforms with their parameters and state-dict keys unchanged (flows saved before load
as they were), evaluated with few, static-shape operations so that a training step can be captured as a CUDA graph.

  SplineCoupling    nflows' PiecewiseRationalQuadraticCouplingTransform (linear tails), its spline evaluated without
                    boolean masks (pae.flows.spline).
  ExpAffineCoupling nflows' AffineCouplingTransform with the scale exp(3 tanh(s / 3)).
  SolveLULinear     nflows' LULinear, the weight assembled from index buffers made once (nflows rebuilds index
                    tensors from numpy arrays at every call) and applied as one matrix; inverse by solve_triangular.

The couplings split the latent with slices: every mask the flows build transforms one contiguous half (nflows
indexes with the mask's feature lists and scatters the halves back).

LAYERS["nflows"] holds nflows' own implementations of the same layers (masked spline, index-based split, numpy-indexed
LU), the code the flows ran before (build_flow(..., layers="nflows")): bench/flow_fit.py measures both, the tests
check that they agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from nflows.transforms import AffineCouplingTransform, LULinear, PiecewiseRationalQuadraticCouplingTransform
from nflows.transforms.base import Transform

from pae.flows.spline import rational_quadratic_spline


def soft_clamp(s: torch.Tensor, bound: float = 3.0) -> torch.Tensor:
    """The affine layers' log-scale: s softly clamped to [-bound, bound]."""
    return bound * torch.tanh(s / bound)


class _SlicedSplit:
    """A coupling whose mask transforms one contiguous block of features: the halves are slices and the output one
    concatenation (nflows' CouplingTransform gathers with index lists and scatters into an empty tensor)."""

    def _init_split(self) -> None:
        n_id, n_tr = self.num_identity_features, self.num_transform_features
        transform_first = bool(self.transform_features[0] == 0)
        blocks = (self.transform_features, self.identity_features) if transform_first else \
            (self.identity_features, self.transform_features)
        if not all(torch.equal(b, torch.arange(b[0], b[0] + len(b))) for b in blocks) or blocks[0][0] != 0:
            raise ValueError("a sliced coupling needs a mask that transforms one contiguous block of features")
        self._transform_first = transform_first
        self._sizes = [n_tr, n_id] if transform_first else [n_id, n_tr]

    def _split(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if inputs.dim() != 2 or inputs.shape[1] != self.features:
            raise ValueError(f"expected inputs of shape (N, {self.features}), got {tuple(inputs.shape)}")
        first, second = inputs.split(self._sizes, dim=1)
        return (second, first) if self._transform_first else (first, second)  # (identity, transformed)

    def _join(self, identity: torch.Tensor, transformed: torch.Tensor) -> torch.Tensor:
        return torch.cat([transformed, identity] if self._transform_first else [identity, transformed], dim=1)

    def forward(self, inputs, context=None):
        identity, transformed = self._split(inputs)
        transformed, logabsdet = self._coupling_transform_forward(transformed, self.transform_net(identity, context))
        return self._join(identity, transformed), logabsdet

    def inverse(self, inputs, context=None):
        identity, transformed = self._split(inputs)
        transformed, logabsdet = self._coupling_transform_inverse(transformed, self.transform_net(identity, context))
        return self._join(identity, transformed), logabsdet


class SplineCoupling(_SlicedSplit, PiecewiseRationalQuadraticCouplingTransform):
    """nflows' rational-quadratic spline coupling with linear tails (Durkan et al. 2019), the spline evaluated
    without masks: the same parameters, the same values up to float round-off."""

    def __init__(self, mask, transform_net_create_fn, num_bins: int, tail_bound: float):
        super().__init__(mask, transform_net_create_fn, num_bins=num_bins, tails="linear", tail_bound=tail_bound)
        self._init_split()

    def _piecewise_cdf(self, inputs, transform_params, inverse=False):
        # nflows' reading of the conditioner's output: widths, heights (both scaled by 1 / sqrt(hidden), as nflows
        # does for a ResidualNet) and the K - 1 interior derivatives
        k = self.num_bins
        scale = math.sqrt(self.transform_net.hidden_features)
        return rational_quadratic_spline(inputs, transform_params[..., :k] / scale,
                                         transform_params[..., k:2 * k] / scale, transform_params[..., 2 * k:],
                                         inverse=inverse, tail_bound=self.tail_bound,
                                         min_bin_width=self.min_bin_width, min_bin_height=self.min_bin_height,
                                         min_derivative=self.min_derivative)


class ExpAffineCoupling(_SlicedSplit, AffineCouplingTransform):
    """nflows' affine coupling with scale exp(3 tanh(s / 3)), i.e. a log-scale softly clamped to [-3, 3] per layer.
    nflows' own scale, sigmoid(s + 2) + 1e-3, never exceeds 1.001, so the data -> noise direction can only contract:
    it cannot stretch the narrow directions of correlated latents to unit variance. The log-determinant is the sum
    of the log-scales themselves (not the log of their exponentials)."""

    def __init__(self, mask, transform_net_create_fn):
        super().__init__(mask, transform_net_create_fn)
        self._init_split()

    def _log_scale_and_shift(self, transform_params):
        n = self.num_transform_features
        return soft_clamp(transform_params[:, n:]), transform_params[:, :n]

    def _scale_and_shift(self, transform_params):
        log_scale, shift = self._log_scale_and_shift(transform_params)
        return log_scale.exp(), shift

    def _coupling_transform_forward(self, inputs, transform_params):
        log_scale, shift = self._log_scale_and_shift(transform_params)
        return inputs * log_scale.exp() + shift, log_scale.sum(1)

    def _coupling_transform_inverse(self, inputs, transform_params):
        log_scale, shift = self._log_scale_and_shift(transform_params)
        return (inputs - shift) / log_scale.exp(), -log_scale.sum(1)


class SolveLULinear(LULinear):
    """nflows' LULinear (W = L U, unit lower L, upper U with diagonal softplus(d) + eps; the same parameters and state
    dict). L and U are assembled by one index_put each from index buffers made at construction (not saved), the
    forward map is x W^T + b with W formed once, and the inverse uses torch.linalg.solve_triangular (nflows calls the
    deprecated torch.triangular_solve)."""

    def __init__(self, features: int, identity_init: bool = True):
        super().__init__(features, identity_init=identity_init)
        flat = lambda rows, cols: torch.as_tensor(rows * features + cols, dtype=torch.long)  # noqa: E731
        self.register_buffer("_lower_flat", flat(*self.lower_indices), persistent=False)
        diag = torch.arange(features)
        upper = torch.cat([flat(*self.upper_indices), diag * features + diag])
        self.register_buffer("_upper_flat", upper, persistent=False)
        self.register_buffer("_eye", torch.eye(features), persistent=False)

    def _create_lower_upper(self):
        n = self.features
        lower = self._eye.flatten().index_put((self._lower_flat,), self.lower_entries).view(n, n)
        upper_values = torch.cat([self.upper_entries, self.upper_diag])
        upper = upper_values.new_zeros(n * n).index_put((self._upper_flat,), upper_values).view(n, n)
        return lower, upper

    def forward_no_cache(self, inputs):
        lower, upper = self._create_lower_upper()
        logabsdet = torch.log(upper.diagonal()).sum()  # log|det W| = sum log diag(U)
        return F.linear(inputs, lower @ upper, self.bias), logabsdet.expand(inputs.shape[0])

    def inverse_no_cache(self, inputs):
        lower, upper = self._create_lower_upper()
        outputs = torch.linalg.solve_triangular(lower, (inputs - self.bias).t(), upper=False, unitriangular=True)
        outputs = torch.linalg.solve_triangular(upper, outputs, upper=True)
        logabsdet = -torch.log(upper.diagonal()).sum()
        return outputs.t(), logabsdet.expand(inputs.shape[0])

    def weight(self):
        lower, upper = self._create_lower_upper()
        return lower @ upper

    def weight_inverse(self):
        lower, upper = self._create_lower_upper()
        lower_inverse = torch.linalg.solve_triangular(lower, self._eye, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_inverse, upper=True)


# ---- nflows' own implementations of the same layers (the code before; for comparisons) ----

class NflowsSplineCoupling(PiecewiseRationalQuadraticCouplingTransform):
    """nflows' spline coupling as nflows evaluates it (masked spline, index-based split)."""

    def __init__(self, mask, transform_net_create_fn, num_bins: int, tail_bound: float):
        super().__init__(mask, transform_net_create_fn, num_bins=num_bins, tails="linear", tail_bound=tail_bound)


class NflowsExpAffineCoupling(AffineCouplingTransform):
    """ExpAffineCoupling's map through nflows' AffineCouplingTransform (index-based split, log of the scale)."""

    def _scale_and_shift(self, transform_params):
        n = self.num_transform_features
        return soft_clamp(transform_params[:, n:]).exp(), transform_params[:, :n]


class NflowsLULinear(LULinear):
    """nflows' LULinear as nflows evaluates it, the inverse by torch.linalg.solve_triangular (nflows'
    torch.triangular_solve is deprecated)."""

    def inverse_no_cache(self, inputs):
        lower, upper = self._create_lower_upper()
        outputs = torch.linalg.solve_triangular(lower, (inputs - self.bias).t(), upper=False, unitriangular=True)
        outputs = torch.linalg.solve_triangular(upper, outputs, upper=True)
        return outputs.t(), -self.logabsdet() * inputs.new_ones(inputs.shape[0])


@dataclass(frozen=True)
class Layers:
    """The classes a flow is built from: (mask, net factory, bins, tail bound) -> spline coupling, (mask, net factory)
    -> affine coupling, (features) -> LU map."""
    spline: type[Transform]
    affine: type[Transform]
    lu: type[Transform]


LAYERS = {"pae": Layers(SplineCoupling, ExpAffineCoupling, SolveLULinear),
          "nflows": Layers(NflowsSplineCoupling, NflowsExpAffineCoupling, NflowsLULinear)}
