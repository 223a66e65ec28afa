"""A training step replayed as one CUDA graph (train.cuda_graph): forward, backward and Adam's update are captured
once and then launched together, so the host no longer issues each small kernel.

At batch 128 the infogan AE's eager step is bound by the host launching a few hundred small kernels (5 to 8 ms per
step on an H200, BENCHMARKS.md section 6); the graph's replay costs what the GPU computes. Capture follows PyTorch's
whole-network recipe (a few warm-up steps on a side stream, then capture with grads unset, Adam capturable, autocast
without its weight cache). The warm-up steps change weights, Adam's moments and the RNG; they are put back in place
afterwards (the graph reads fixed addresses), so the first replay is the step the eager loop would take next, and a
run resumed from a checkpoint continues the same stream of random numbers.

The graph bakes in float learning rates it was captured with: a step whose rates differ (train.lr_drop) captures
anew. A learning rate held in a CUDA tensor (Adam(lr=tensor), changed with fill_) is read by every replay instead, so
a schedule that moves it every epoch (the flow fit's cosine decay) keeps one graph.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before capture (PyTorch's recipe; lets lazy state be created)


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Copies of everything a step changes: weights and buffers, Adam's state per parameter, the RNG states."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "opt": {p: {k: v.detach().clone() for k, v in s.items()} for p, s in opt.state.items()},
            "cpu_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state()}


def _restore(model: nn.Module, opt: torch.optim.Optimizer, snap: dict) -> None:
    """Put a snapshot back into the same tensors (the graph reads their addresses). Adam's state created by the
    warm-up (a fresh run) goes back to zeros, step 0: what Adam's first step would create."""
    with torch.no_grad():
        for k, v in model.state_dict().items():
            v.copy_(snap["model"][k])
        for p, state in opt.state.items():
            before = snap["opt"].get(p)
            for k, v in state.items():
                if before is None:
                    v.zero_()
                else:
                    v.copy_(before[k])
    torch.set_rng_state(snap["cpu_rng"])
    torch.cuda.set_rng_state(snap["cuda_rng"])


def _baked_lrs(opt: torch.optim.Optimizer) -> list[float | None]:
    """The float learning rates a capture bakes in (None for a tensor one, which the graph reads when replayed)."""
    return [None if isinstance(group["lr"], torch.Tensor) else group["lr"] for group in opt.param_groups]


class GraphedStep:
    """`step(*inputs)` -> the loss of one training step (a tensor that the next step overwrites: clone it to keep
    it). `objective(*inputs)` returns the loss; inputs are tensors or None, and each call must pass the same shapes,
    dtypes and Nones as the first (a training's batches do, with drop_last). `before_step()`, if given, runs between
    the backward pass and the optimizer's step, in the graph too (gradient clipping). `zero_grad()`, if given, zeroes
    gradients that must stay where they are (views into one flat buffer, FlowSteps): it runs inside the graph before
    the forward pass, and the captured backward accumulates into them; without it the grads are unset before the
    capture and the captured backward allocates them."""

    def __init__(self, objective: Callable[..., torch.Tensor], model: nn.Module, opt: torch.optim.Optimizer,
                 bf16: bool, before_step: Callable[[], object] | None = None,
                 zero_grad: Callable[[], object] | None = None):
        self.objective, self.model, self.opt, self.bf16 = objective, model, opt, bf16
        self.before_step, self.zero_grad = before_step, zero_grad
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[torch.Tensor | None] = []
        self.loss: torch.Tensor | None = None
        self.lrs: list[float | None] = []
        for group in opt.param_groups:
            group["capturable"] = True  # Adam's step count on the GPU, updated inside the graph

    def _eager(self) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            return self.objective(*self.inputs)

    def _capture(self) -> None:
        snap = _snapshot(self.model, self.opt)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._zero_grad()
                self._eager().backward()
                self._update()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        if self.zero_grad is None:
            self.opt.zero_grad(set_to_none=True)  # the captured backward allocates the grads it then overwrites
        with torch.cuda.graph(self.graph):
            if self.zero_grad is not None:
                self.zero_grad()
            self.loss = self._eager()
            self.loss.backward()
            self._update()
        _restore(self.model, self.opt, snap)
        self.lrs = _baked_lrs(self.opt)
        log.info("captured the training step as a CUDA graph (learning rates %s)",
                 [float(group["lr"]) for group in self.opt.param_groups])

    def _zero_grad(self) -> None:
        if self.zero_grad is None:
            self.opt.zero_grad(set_to_none=True)
        else:
            self.zero_grad()

    def _update(self) -> None:
        if self.before_step is not None:
            self.before_step()
        self.opt.step()

    def __call__(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        if self.graph is None:
            self.inputs = [None if t is None else t.clone() for t in inputs]
        else:
            for static, t in zip(self.inputs, inputs):
                if (static is None) != (t is None) or (t is not None and static.shape != t.shape):
                    raise ValueError("a CUDA-graph step takes inputs of the shapes it was captured with")
                if t is not None:
                    static.copy_(t)
        if self.graph is None or self.lrs != _baked_lrs(self.opt):
            self._capture()
        self.graph.replay()
        return self.loss
