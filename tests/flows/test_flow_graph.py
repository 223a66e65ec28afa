"""The flow fit's training step as a CUDA graph (pae.flows.latent_flow.FlowSteps): it follows the eager fit (same
weights and log-likelihoods up to round-off, the cosine schedule and the last, smaller batch included), and a graph
captured from a state loaded mid-fit (as a resumed fit would) continues bit for bit as the uninterrupted one. The
CUDA tests run where a GPU is (they are skipped on a CPU-only machine)."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from pae.flows.latent_flow import FlowSteps, build_flow, fit_flow
from tests.helpers import FLOW_SPEC, correlated_gaussian, points, stats

cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="needs a CUDA device: `make test` on a machine with an NVIDIA GPU runs it")
SPEC = dataclasses.replace(FLOW_SPEC, kind="hybrid", layers=4, epochs=3, patience=3, batch_size=128, noise=0.1)


def _relative_difference(a: dict, b: dict) -> float:
    num = sum((a[k].double() - b[k].double()).pow(2).sum() for k in a if a[k].is_floating_point())
    den = sum(b[k].double().pow(2).sum() for k in b if b[k].is_floating_point())
    return (num / den).sqrt().item()


def test_on_a_cpu_the_step_runs_eagerly():
    flow = build_flow(SPEC, 2, *stats(2))
    step = FlowSteps(flow, SPEC)
    assert not step.graphed
    step(points(8, 2))
    assert step.graphs == {} and not isinstance(step.opt.param_groups[0]["lr"], torch.Tensor)


@cuda
def test_graph_replay_follows_the_eager_fit():
    """1,000 latents in batches of 128: 7 full batches and one of 104, two graphs. The graph launches the eager
    step's kernels; its learning rate is float32 on the GPU (the eager step's a double: 3e-8 apart). Float32
    round-off grows through Adam's 24 updates to at most a few hundred ulps, so the weights must agree to 1e-4 in
    relative norm and the epochs' log-likelihoods to 1e-4 relative; a skipped update, a step replayed twice or a
    wrong learning rate misses by orders of magnitude more."""
    train, val, _ = correlated_gaussian(1000, 300)
    eager, eager_history = fit_flow(SPEC, train, val, "cuda", cuda_graph=False)
    graph, graph_history = fit_flow(SPEC, train, val, "cuda")
    assert len(graph_history) == len(eager_history) == SPEC.epochs
    for he, hg in zip(eager_history, graph_history):
        assert hg["train_logp"] == pytest.approx(he["train_logp"], rel=1e-4)
        assert hg["val_logp"] == pytest.approx(he["val_logp"], rel=1e-4)
    assert _relative_difference(graph.state_dict(), eager.state_dict()) < 1e-4


def _batches(n: int, dim: int) -> list[torch.Tensor]:
    return [points(100 if i % 3 == 2 else 128, dim, seed=i).cuda() for i in range(n)]


@cuda
def test_a_graph_captured_from_a_loaded_state_continues_exactly():
    """Resume: the capture's warm-up steps are undone (weights, Adam's moments and step counts), so a fit whose
    state is saved after 4 steps and loaded into a new flow and optimizer, whose graphs are then captured anew,
    takes the same steps as the uninterrupted one, bit for bit (the same kernels on the same GPU)."""
    dim, batches = 4, _batches(9, 4)
    mean, std = stats(dim)

    def new_steps():
        flow = build_flow(SPEC, dim, mean, std).cuda()
        return FlowSteps(flow, SPEC)

    ref = new_steps()
    ref.set_lr(2e-3)
    ref_losses = [ref(z).item() for z in batches]

    first = new_steps()
    first.set_lr(2e-3)
    losses = [first(z).item() for z in batches[:4]]
    flow_state = {k: v.clone() for k, v in first.flow.state_dict().items()}
    opt_state = copy.deepcopy(first.opt.state_dict())  # as a checkpoint would hold it
    resumed = new_steps()
    resumed.flow.load_state_dict(flow_state)
    resumed.opt.load_state_dict(opt_state)
    resumed.set_lr(2e-3)
    losses += [resumed(z).item() for z in batches[4:]]

    assert losses == ref_losses
    ref_state, state = ref.flow.state_dict(), resumed.flow.state_dict()
    assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)
    for p_ref, p in zip(ref.params, resumed.params):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(resumed.opt.state[p][key], ref.opt.state[p_ref][key]), key
