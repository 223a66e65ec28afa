"""A normalizing flow on the latent space of an auto-encoder: the density p(z) that turns an AE into a PAE
(Böhm & Seljak 2022, sec. 2.2). Latents are standardised with the training set's mean and std, a transform built
from nflows layers maps them to a standard normal; the standardisation is part of the saved flow.

log p(z) = log N(u; 0, I) + log|det du/dz|, u = f((z - mean) / std), the std entering the log-determinant.
Sampling at temperature T draws u ~ N(0, T^2 I) and inverts.

Kinds (FLOWS, `flow.kind` in the config); `layers` counts coupling / autoregressive layers:
  nsf      rational-quadratic spline couplings (Durkan et al. 2019), mid-split masks, each followed by a fixed
           random permutation.
  realnvp  affine couplings (Dinh et al. 2017) with residual-net conditioners, masks alternating between the two
           halves so consecutive layers transform complementary halves, and a fixed random permutation after every
           pair of layers (a random permutation after every layer could leave a coordinate untransformed in low
           dimensions). The scale is exp(3 tanh(s / 3)), not nflows' sigmoid(s + 2), which can only contract and
           so cannot whiten correlated latents.
  maf      masked affine autoregressive layers (Papamakarios et al. 2017; MADE with residual blocks), each followed
           by a reversal of the dimensions. The density (z -> u) is one pass; sampling is sequential, `dim` passes
           per layer. The scale is exp(3 tanh(s / 3)) too: nflows' softplus scale overflows on outliers.
  hybrid   the PAE paper's flow: ceil(layers / 2) spline couplings followed by floor(layers / 2) affine couplings
           (as in realnvp), alternating masks, each layer followed by a learned LU-decomposed linear map
           (nflows LULinear, identity at initialisation).
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F
from nflows.distributions import StandardNormal
from nflows.nn.nets import ResidualNet
from nflows.transforms import (AffineCouplingTransform, CompositeTransform, LULinear,
                               MaskedAffineAutoregressiveTransform, PiecewiseRationalQuadraticCouplingTransform,
                               RandomPermutation, ReversePermutation, Transform)
from nflows.utils import create_mid_split_binary_mask
from torch import nn
from tqdm import tqdm

from pae.config import default
from pae.io import PaeError, progress_kwargs, torch_load, torch_save

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowSpec:
    kind: str
    layers: int
    hidden: int
    blocks: int
    bins: int
    tail_bound: float
    epochs: int
    patience: int
    batch_size: int
    lr: float
    seed: int = 0
    divergence_nats: float | None = default("flow.divergence_nats")  # flows saved before the setting load with it
    noise: float = default("flow.noise")

    @classmethod
    def from_dict(cls, d: dict) -> "FlowSpec":
        names = {f.name for f in fields(cls)}
        if set(d) - names:
            raise PaeError(f"flow spec: unknown keys {sorted(set(d) - names)}")
        return cls(**d)


def _resnet(spec: FlowSpec) -> Callable[[int, int], nn.Module]:
    """The coupling conditioner: a residual MLP of `spec.blocks` blocks of width `spec.hidden`."""
    def net(n_in, n_out):
        return ResidualNet(n_in, n_out, hidden_features=spec.hidden, num_blocks=spec.blocks, activation=F.relu)
    return net


def _half_mask(dim: int, i: int) -> torch.Tensor:
    """Layer i's coupling mask (1 = transformed): the second half of the dimensions for even i, the first for odd i."""
    mask = create_mid_split_binary_mask(dim)
    return mask if i % 2 == 0 else 1 - mask


def _spline_coupling(spec: FlowSpec, mask: torch.Tensor) -> Transform:
    return PiecewiseRationalQuadraticCouplingTransform(mask, _resnet(spec), num_bins=spec.bins, tails="linear",
                                                       tail_bound=spec.tail_bound)


def _soft_clamp(s: torch.Tensor, bound: float = 3.0) -> torch.Tensor:
    """The affine layers' log-scale: s softly clamped to [-bound, bound]."""
    return bound * torch.tanh(s / bound)


class ExpAffineCoupling(AffineCouplingTransform):
    """nflows' affine coupling with scale exp(3 tanh(s / 3)), i.e. a log-scale softly clamped to [-3, 3] per layer.
    nflows' own scale, sigmoid(s + 2) + 1e-3, never exceeds 1.001, so the data -> noise direction can only contract:
    it cannot stretch the narrow directions of correlated latents to unit variance."""

    def _scale_and_shift(self, transform_params):
        shift = transform_params[:, :self.num_transform_features, ...]
        return _soft_clamp(transform_params[:, self.num_transform_features:, ...]).exp(), shift


class ExpMaskedAffineAutoregressive(MaskedAffineAutoregressiveTransform):
    """nflows' MAF layer with scale exp(3 tanh(s / 3)) instead of softplus(s) + 1e-3. The softplus scale grows
    linearly with the MADE's output, so on outliers it compounds over the layers and the log-density overflows
    (-inf / NaN at 100 standard deviations with 6 layers)."""

    def _elementwise_forward(self, inputs, autoregressive_params):
        unconstrained_scale, shift = self._unconstrained_scale_and_shift(autoregressive_params)
        log_scale = _soft_clamp(unconstrained_scale)
        return inputs * log_scale.exp() + shift, log_scale.sum(1)

    def _elementwise_inverse(self, inputs, autoregressive_params):
        unconstrained_scale, shift = self._unconstrained_scale_and_shift(autoregressive_params)
        log_scale = _soft_clamp(unconstrained_scale)
        return (inputs - shift) * (-log_scale).exp(), -log_scale.sum(1)


def _affine_coupling(spec: FlowSpec, mask: torch.Tensor) -> Transform:
    return ExpAffineCoupling(mask, _resnet(spec))


class SolveLULinear(LULinear):
    """nflows' LULinear with its inverse computed by torch.linalg.solve_triangular instead of the deprecated
    torch.triangular_solve (same parameters and state dict)."""

    def inverse_no_cache(self, inputs):
        lower, upper = self._create_lower_upper()
        outputs = torch.linalg.solve_triangular(lower, (inputs - self.bias).t(), upper=False, unitriangular=True)
        outputs = torch.linalg.solve_triangular(upper, outputs, upper=True)
        return outputs.t(), -self.logabsdet() * inputs.new_ones(inputs.shape[0])

    def weight_inverse(self):
        lower, upper = self._create_lower_upper()
        identity = torch.eye(self.features, dtype=lower.dtype, device=lower.device)
        lower_inverse = torch.linalg.solve_triangular(lower, identity, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_inverse, upper=True)


def _nsf(spec: FlowSpec, dim: int) -> Transform:
    """Rational-quadratic spline couplings (Durkan et al. 2019), each followed by a fixed random permutation."""
    layers = []
    for _ in range(spec.layers):
        layers.append(_spline_coupling(spec, create_mid_split_binary_mask(dim)))
        layers.append(RandomPermutation(dim))
    return CompositeTransform(layers)


def _realnvp(spec: FlowSpec, dim: int) -> Transform:
    """Affine couplings (Dinh et al. 2017) on alternating halves, a fixed random permutation after every pair."""
    layers = []
    for i in range(spec.layers):
        layers.append(_affine_coupling(spec, _half_mask(dim, i)))
        if i % 2 == 1:
            layers.append(RandomPermutation(dim))
    return CompositeTransform(layers)


def _maf(spec: FlowSpec, dim: int) -> Transform:
    """Masked affine autoregressive layers (Papamakarios et al. 2017), each followed by a reversal."""
    layers = []
    for _ in range(spec.layers):
        layers.append(ExpMaskedAffineAutoregressive(dim, hidden_features=spec.hidden, num_blocks=spec.blocks,
                                                    use_residual_blocks=True, activation=F.relu))
        layers.append(ReversePermutation(dim))
    return CompositeTransform(layers)


def _hybrid(spec: FlowSpec, dim: int) -> Transform:
    """The PAE paper's flow: ceil(layers / 2) spline couplings, then floor(layers / 2) affine couplings, each followed
    by a learned LU-decomposed linear map (identity at initialisation)."""
    n_spline = math.ceil(spec.layers / 2)
    layers = []
    for i in range(spec.layers):
        coupling = _spline_coupling if i < n_spline else _affine_coupling
        layers.append(coupling(spec, _half_mask(dim, i)))
        layers.append(SolveLULinear(dim, identity_init=True))
    return CompositeTransform(layers)


# kind -> builder(spec, dim) returning an nflows Transform
FLOWS: dict[str, Callable[[FlowSpec, int], Transform]] = {"nsf": _nsf, "realnvp": _realnvp, "maf": _maf,
                                                          "hybrid": _hybrid}


class LatentFlow(nn.Module):
    def __init__(self, transform: Transform, dim: int, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None):
        super().__init__()
        self.dim = dim
        self.transform = transform
        self.base = StandardNormal([dim])
        self.register_buffer("mean", torch.zeros(dim) if mean is None else mean.detach().clone().float())
        self.register_buffer("std", torch.ones(dim) if std is None else std.detach().clone().float())

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"expected latents of shape (N, {self.dim}), got {tuple(z.shape)}")

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z -> (u, log|det du/dz|)."""
        self._check(z)
        u, logabsdet = self.transform((z - self.mean) / self.std)
        return u, logabsdet - self.std.log().sum()

    def inverse(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u -> (z, log|det dz/du|)."""
        self._check(u)
        x, logabsdet = self.transform.inverse(u)
        return x * self.std + self.mean, logabsdet + self.std.log().sum()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u, logabsdet = self(z)
        return self.base.log_prob(u) + logabsdet

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents from the flow with the base drawn from N(0, T^2 I)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        u = torch.randn(n, self.dim, generator=generator).to(self.mean.device) * temperature
        return self.inverse(u)[0]


def build_flow(spec: FlowSpec, dim: int, mean=None, std=None) -> LatentFlow:
    if spec.kind not in FLOWS:
        raise PaeError(f"unknown flow kind {spec.kind!r}; known: {sorted(FLOWS)}")
    if dim < 2:
        raise PaeError(f"coupling flows need a latent size of at least 2, got {dim}")
    with torch.random.fork_rng(devices=[]):  # seeded permutations and weights, global RNG left as it was
        torch.manual_seed(spec.seed)
        return LatentFlow(FLOWS[spec.kind](spec, dim), dim, mean, std)


@torch.no_grad()
def log_probs(flow: LatentFlow, z: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """log p(z) of every latent (N,), in batches, on the flow's device; returned on the CPU."""
    flow.eval()
    device = flow.mean.device
    return torch.cat([flow.log_prob(z[i:i + batch_size].to(device)).cpu() for i in range(0, len(z), batch_size)])


@torch.no_grad()
def mean_log_prob(flow: LatentFlow, z: torch.Tensor, batch_size: int = 4096) -> float:
    return log_probs(flow, z, batch_size).double().mean().item()


def divergence(nats: float | None, dim: int, train_lp: float, val_lp: float, history: list[dict],
               start: float) -> str | None:
    """Why a flow epoch counts as diverged (flow.divergence_nats, the schema has the rule), or None. `history` holds
    the epochs before it, `start` is the untrained flow's validation log-likelihood."""
    if not (math.isfinite(train_lp) and math.isfinite(val_lp)):
        return f"a non-finite log-likelihood (train log p {train_lp}, val log p {val_lp})"
    if nats is None:
        return None
    margin = nats * dim
    for name, value, key in (("validation", val_lp, "val_logp"), ("training", train_lp, "train_logp")):
        best = max([start, *(h[key] for h in history)])
        if value < best - margin:
            which = "the untrained flow's" if best == start else "the best so far"
            return (f"mean {name} log p(z) {value:.4g} is {best - value:.4g} nats below {which} ({best:.4g}), more "
                    f"than flow.divergence_nats = {nats:g} x the latent size {dim} = {margin:g}")
    return None


def fit_flow(spec: FlowSpec, train_z: torch.Tensor, val_z: torch.Tensor, device: torch.device | str = "cpu"
             ) -> tuple[LatentFlow, list[dict]]:
    """Maximum likelihood with Adam and a cosine learning-rate decay over `spec.epochs`, on training latents jittered
    by `spec.noise` (flow.noise); early stopping on the clean validation latents' log-likelihood, best state kept. A
    fit that diverges raises PaeError (flow.divergence_nats; see divergence)."""
    device = torch.device(device)
    mean, std = train_z.mean(0), train_z.std(0).clamp_min(1e-6)
    flow = build_flow(spec, train_z.shape[1], mean, std).to(device)
    train_z, val_z = train_z.to(device), val_z.to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=spec.lr, fused=True)  # one kernel for all parameters
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs)  # to zero at the last epoch
    g = torch.Generator().manual_seed(spec.seed)
    start = mean_log_prob(flow, val_z)  # the untrained flow's: the divergence test's reference before epoch 1
    start = start if math.isfinite(start) else -math.inf
    best, best_state, bad_epochs, history = -math.inf, None, 0, []
    bar = tqdm(range(spec.epochs), desc="flow", **progress_kwargs())
    for epoch in bar:
        t0 = time.perf_counter()
        flow.train()
        perm = torch.randperm(len(train_z), generator=g).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, len(perm), spec.batch_size):
            z = train_z[perm[i:i + spec.batch_size]]
            if spec.noise:  # flow.noise, per standardised dimension; drawn on the CPU: the same draws on any device
                z = z + spec.noise * flow.std * torch.randn(z.shape, generator=g).to(device)
            loss = -flow.log_prob(z).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
            total += loss.detach() * len(perm[i:i + spec.batch_size])
        schedule.step()
        train_lp = -(total / len(perm)).item()
        val_lp = mean_log_prob(flow, val_z)
        history.append({"epoch": epoch + 1, "train_logp": train_lp, "val_logp": val_lp,
                        "seconds": time.perf_counter() - t0})
        bar.set_postfix(train=f"{train_lp:.3f}", val=f"{val_lp:.3f}", refresh=False)
        log.info("flow epoch %d: train log p %.4f, val log p %.4f", epoch + 1, train_lp, val_lp)
        why = divergence(spec.divergence_nats, flow.dim, train_lp, val_lp, history[:-1], start)
        if why:
            hint = "" if why.startswith("a non-finite") else \
                ", or raise flow.divergence_nats if this is not a divergence"
            raise PaeError(f"fit_flow: the flow diverged at epoch {epoch + 1}/{spec.epochs}: {why}. Lower flow.lr "
                           f"(now {spec.lr:g}){hint}; no flow was written")
        if val_lp > best:
            best, best_state, bad_epochs = val_lp, copy.deepcopy(flow.state_dict()), 0
        else:
            bad_epochs += 1
            if bad_epochs >= spec.patience:
                log.info("early stopping after epoch %d (best val log p %.4f)", epoch + 1, best)
                break
    if best_state is None:
        raise PaeError("the flow never reached a finite validation log-likelihood (try a lower flow.lr)")
    flow.load_state_dict(best_state)
    return flow.eval(), history


def save_flow(path: str | os.PathLike, flow: LatentFlow, spec: FlowSpec, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in flow.state_dict().items()}
    torch_save(path, {"kind": "flow", "spec": asdict(spec), "dim": flow.dim, "state_dict": state, "meta": meta})


def load_flow(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[LatentFlow, FlowSpec, dict]:
    obj = torch_load(path, "flow")
    spec = FlowSpec.from_dict(obj["spec"])
    flow = build_flow(spec, obj["dim"])
    flow.load_state_dict(obj["state_dict"])
    return flow.to(device).eval(), spec, obj.get("meta", {})
