"""A normalizing flow on the latent space of an auto-encoder: the density p(z) that turns an AE into a PAE
(Böhm & Seljak 2022, sec. 2.2). Latents are standardised with the training set's mean and std, a transform built
from nflows layers maps them to a standard normal; the standardisation is part of the saved flow. The layers are
nflows' transforms evaluated with static shapes (pae.flows.transforms: the spline without masks), so that the
training step runs as a CUDA graph on a GPU (FlowSteps); their parameters and state dicts are nflows'.

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
from nflows.transforms import (CompositeTransform, MaskedAffineAutoregressiveTransform, RandomPermutation,
                               ReversePermutation, Transform)
from nflows.utils import create_mid_split_binary_mask
from torch import nn
from tqdm import tqdm

from pae.config import default
from pae.flows.transforms import LAYERS, Layers, soft_clamp
from pae.io import PaeError, progress_kwargs, torch_load, torch_save
from pae.train.graphed import GraphedStep

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


class ExpMaskedAffineAutoregressive(MaskedAffineAutoregressiveTransform):
    """nflows' MAF layer with scale exp(3 tanh(s / 3)) instead of softplus(s) + 1e-3. The softplus scale grows
    linearly with the MADE's output, so on outliers it compounds over the layers and the log-density overflows
    (-inf / NaN at 100 standard deviations with 6 layers)."""

    def _elementwise_forward(self, inputs, autoregressive_params):
        unconstrained_scale, shift = self._unconstrained_scale_and_shift(autoregressive_params)
        log_scale = soft_clamp(unconstrained_scale)
        return inputs * log_scale.exp() + shift, log_scale.sum(1)

    def _elementwise_inverse(self, inputs, autoregressive_params):
        unconstrained_scale, shift = self._unconstrained_scale_and_shift(autoregressive_params)
        log_scale = soft_clamp(unconstrained_scale)
        return (inputs - shift) * (-log_scale).exp(), -log_scale.sum(1)


def _nsf(spec: FlowSpec, dim: int, layers: Layers) -> Transform:
    """Rational-quadratic spline couplings (Durkan et al. 2019), each followed by a fixed random permutation."""
    transforms = []
    for _ in range(spec.layers):
        transforms.append(layers.spline(create_mid_split_binary_mask(dim), _resnet(spec), spec.bins, spec.tail_bound))
        transforms.append(RandomPermutation(dim))
    return CompositeTransform(transforms)


def _realnvp(spec: FlowSpec, dim: int, layers: Layers) -> Transform:
    """Affine couplings (Dinh et al. 2017) on alternating halves, a fixed random permutation after every pair."""
    transforms = []
    for i in range(spec.layers):
        transforms.append(layers.affine(_half_mask(dim, i), _resnet(spec)))
        if i % 2 == 1:
            transforms.append(RandomPermutation(dim))
    return CompositeTransform(transforms)


def _maf(spec: FlowSpec, dim: int, layers: Layers) -> Transform:
    """Masked affine autoregressive layers (Papamakarios et al. 2017), each followed by a reversal."""
    transforms = []
    for _ in range(spec.layers):
        transforms.append(ExpMaskedAffineAutoregressive(dim, hidden_features=spec.hidden, num_blocks=spec.blocks,
                                                        use_residual_blocks=True, activation=F.relu))
        transforms.append(ReversePermutation(dim))
    return CompositeTransform(transforms)


def _hybrid(spec: FlowSpec, dim: int, layers: Layers) -> Transform:
    """The PAE paper's flow: ceil(layers / 2) spline couplings, then floor(layers / 2) affine couplings, each followed
    by a learned LU-decomposed linear map (identity at initialisation)."""
    n_spline = math.ceil(spec.layers / 2)
    transforms = []
    for i in range(spec.layers):
        if i < n_spline:
            transforms.append(layers.spline(_half_mask(dim, i), _resnet(spec), spec.bins, spec.tail_bound))
        else:
            transforms.append(layers.affine(_half_mask(dim, i), _resnet(spec)))
        transforms.append(layers.lu(dim, identity_init=True))
    return CompositeTransform(transforms)


# kind -> builder(spec, dim, layers) returning an nflows Transform
FLOWS: dict[str, Callable[[FlowSpec, int, Layers], Transform]] = {"nsf": _nsf, "realnvp": _realnvp, "maf": _maf,
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


def build_flow(spec: FlowSpec, dim: int, mean=None, std=None, layers: str = "pae") -> LatentFlow:
    """The flow of `spec` on `dim` latents. layers="nflows" builds the same flow (the same parameters, state dict and
    values up to round-off) from nflows' own implementations of its layers (pae.flows.transforms.LAYERS), for
    comparisons."""
    if spec.kind not in FLOWS:
        raise PaeError(f"unknown flow kind {spec.kind!r}; known: {sorted(FLOWS)}")
    if dim < 2:
        raise PaeError(f"coupling flows need a latent size of at least 2, got {dim}")
    with torch.random.fork_rng(devices=[]):  # seeded permutations and weights, global RNG left as it was
        torch.manual_seed(spec.seed)
        return LatentFlow(FLOWS[spec.kind](spec, dim, LAYERS[layers]), dim, mean, std)


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


def cosine_lr(spec: FlowSpec, epoch: int) -> float:
    """The learning rate of epoch `epoch` (0-based): spec.lr decayed along a half cosine to zero at spec.epochs."""
    return spec.lr * 0.5 * (1 + math.cos(math.pi * epoch / spec.epochs))


def flatten_parameters(module: nn.Module) -> nn.Parameter:
    """Move the module's parameters into one contiguous buffer and their gradients into another: each parameter's
    data and .grad become views into them, and the returned Parameter holds the buffer with the gradient buffer as
    its .grad. Backward then accumulates into the views in place (autograd adds into a grad that exists), so an
    optimizer and clipping over the one Parameter update every parameter. Keep the grads (zero them in place, never
    unset them) and do not move the module afterwards (.to() would copy the parameters out of the buffer)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if len({(p.dtype, p.device) for p in params}) != 1:
        raise ValueError("flatten_parameters needs parameters of one dtype on one device")
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset:offset + n].view_as(p)
        p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    return flat


class FlowSteps:
    """fit_flow's training step: -mean log p(z) of a batch, its gradient clipped to norm 5, fused Adam's update.

    On a CUDA device (unless cuda_graph=False) each batch size's step (a fit has two: the full batches and the last)
    is captured once as a CUDA graph and replayed (pae.train.graphed, as train.cuda_graph does for the AE): the flow's
    step is some thousand small kernels whose launches, not the arithmetic, bound it. The capture's warm-up steps are
    undone, so the graph continues the eager step's trajectory from wherever it is captured, and the learning rate is
    a tensor on the device that every replay reads (set_lr), so the cosine schedule needs no new capture. Elsewhere
    the step runs eagerly.

    With flat=True (what fit_flow runs) the flow's parameters and their gradients are views into one buffer each
    (flatten_parameters), and clipping and Adam see that one tensor: a handful of ops per step instead of a loop
    over the flow's ~130 parameter tensors (1,686 of a step's 7,076 ATen ops on the CPU before). The update is the
    same elementwise; the gradient's norm sums in another order (round-off). flat=False keeps one tensor per
    parameter (the bench's "before")."""

    def __init__(self, flow: LatentFlow, spec: FlowSpec, cuda_graph: bool = True, flat: bool = True):
        device = flow.mean.device
        self.flow, self.graphed = flow, cuda_graph and device.type == "cuda"
        self.flat = flatten_parameters(flow) if flat else None
        self.params = [self.flat] if flat else list(flow.parameters())
        lr = torch.tensor(spec.lr, device=device) if self.graphed else spec.lr  # fused Adam reads a float32 tensor
        self.opt = torch.optim.Adam(self.params, lr=lr, fused=True)  # one kernel for all parameters
        self.graphs: dict[int, GraphedStep] = {}

    def zero_grad(self) -> None:
        """Zero the gradients: the flat one in place (the parameters' grads are views into it), else unset them."""
        if self.flat is not None:
            self.flat.grad.zero_()
        else:
            self.opt.zero_grad(set_to_none=True)

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        """The objective: -mean log p(z) of the batch."""
        return -self.flow.log_prob(z).mean()

    def clip_gradients(self) -> None:
        nn.utils.clip_grad_norm_(self.params, 5.0)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """One step on the batch z; returns its loss (detached; a graph's loss is overwritten by the next step)."""
        if self.graphed:
            if len(z) not in self.graphs:
                self.graphs[len(z)] = GraphedStep(self.loss, self.flow, self.opt, False,
                                                  before_step=self.clip_gradients,
                                                  zero_grad=self.zero_grad if self.flat is not None else None)
            return self.graphs[len(z)](z).detach()
        loss = self.loss(z)
        self.zero_grad()
        loss.backward()
        self.clip_gradients()
        self.opt.step()
        return loss.detach()


def fit_flow(spec: FlowSpec, train_z: torch.Tensor, val_z: torch.Tensor, device: torch.device | str = "cpu",
             cuda_graph: bool = True) -> tuple[LatentFlow, list[dict]]:
    """Maximum likelihood with Adam and a cosine learning-rate decay over `spec.epochs`, on training latents jittered
    by `spec.noise` (flow.noise); early stopping on the clean validation latents' log-likelihood, best state kept. A
    fit that diverges raises PaeError (flow.divergence_nats; see divergence). On a CUDA device the training step is
    replayed as a CUDA graph (FlowSteps; cuda_graph=False runs it eagerly)."""
    device = torch.device(device)
    mean, std = train_z.mean(0), train_z.std(0).clamp_min(1e-6)
    flow = build_flow(spec, train_z.shape[1], mean, std).to(device)
    train_z, val_z = train_z.to(device), val_z.to(device)
    step = FlowSteps(flow, spec, cuda_graph)
    g = torch.Generator().manual_seed(spec.seed)
    start = mean_log_prob(flow, val_z)  # the untrained flow's: the divergence test's reference before epoch 1
    start = start if math.isfinite(start) else -math.inf
    best, best_state, bad_epochs, history = -math.inf, None, 0, []
    bar = tqdm(range(spec.epochs), desc="flow", **progress_kwargs())
    for epoch in bar:
        t0 = time.perf_counter()
        flow.train()
        step.set_lr(cosine_lr(spec, epoch))
        perm = torch.randperm(len(train_z), generator=g).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, len(perm), spec.batch_size):
            z = train_z[perm[i:i + spec.batch_size]]
            if spec.noise:  # flow.noise, per standardised dimension; drawn on the CPU: the same draws on any device
                z = z + spec.noise * flow.std * torch.randn(z.shape, generator=g).to(device)
            total += step(z) * len(z)
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
    for p in flow.parameters():  # each its own storage again, out of FlowSteps' flat buffer; no grads kept
        p.data, p.grad = p.data.clone(), None
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
