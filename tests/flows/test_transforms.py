"""The flows' layers (pae.flows.transforms) against nflows' own implementations of the same transforms: a flow built
from either has the same state dict, a flow saved from nflows' layers loads into pae's with the same log-densities
and samples, the couplings agree forward and inverse, and pae's training step has static shapes (no host
synchronisation, no data-dependent shapes).

Tolerances: both run the same float32 arithmetic up to the order of a few operations (the LU map multiplies by W = L U
once instead of by U then L, the affine coupling's log-determinant is the log-scale itself, not log(exp(log-scale)),
the spline's softmax runs over another dimension). Each float32 value must agree with nflows' to 4x the largest
float32 error nflows' layers make on the batch (against the same layers in float64) plus 64 float32 ulps of its
scale. In float64 they agree to 1e-9 of the scale (4e-12 seen: the inverse spline in a nearly flat bin amplifies
round-off 1e4-fold); a formula that differed would be off by far more.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from pae.flows.latent_flow import FLOWS, FlowSteps, build_flow, load_flow, save_flow
from pae.flows.transforms import (ExpAffineCoupling, NflowsExpAffineCoupling, NflowsLULinear, NflowsSplineCoupling,
                                  SolveLULinear, SplineCoupling)
from tests.helpers import FLOW_SPEC, points, stats

KINDS = sorted(FLOWS)
EPS32 = torch.finfo(torch.float32).eps
SYNCING_OPS = {"aten::nonzero", "aten::item", "aten::_local_scalar_dense", "aten::masked_select", "aten::is_nonzero"}


def _jitter(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Every parameter moved off its initialisation (identity LU maps, zero-initialised residual blocks)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def _assert_agree(ours32, theirs32, theirs64, scale):
    """ours32 within 4x the largest float32 error of theirs32 (against theirs64) on the batch, plus 64 ulps of
    `scale`, of theirs32."""
    tol = 4 * (theirs32.double() - theirs64).abs().max() + 64 * EPS32 * scale
    diff = (ours32.double() - theirs32.double()).abs()
    assert (diff <= tol).all(), f"max excess {(diff - tol).max().item():.3g}"


def _coupling_pairs(dim: int):
    from nflows.nn.nets import ResidualNet
    from nflows.utils import create_mid_split_binary_mask
    net = lambda n_in, n_out: ResidualNet(n_in, n_out, 32, num_blocks=2)  # noqa: E731
    pairs = []
    for mask in (create_mid_split_binary_mask(dim), 1 - create_mid_split_binary_mask(dim)):
        pairs.append((SplineCoupling(mask, net, 6, 3.0), NflowsSplineCoupling(mask, net, 6, 3.0)))
        pairs.append((ExpAffineCoupling(mask, net), NflowsExpAffineCoupling(mask, net)))
    pairs.append((SolveLULinear(dim), NflowsLULinear(dim)))
    return pairs


@pytest.mark.parametrize("dim", [2, 5])
def test_layers_agree_with_nflows_forward_and_inverse(dim):
    """Both directions in float64; the forward direction (what log p(z) and the fit use) in float32 too. (The float32
    inverse of a spline in a nearly flat bin is ill-conditioned for both: 1e-2 apart at a few points; the round trip is
    tested in test_flow_zoo.py.)"""
    x = torch.randn(300, dim, generator=torch.Generator().manual_seed(1)) * 2.5  # about 1 in 4 beyond the bound 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dim)
        pairs = _coupling_pairs(dim)
    for ours, theirs in pairs:
        _jitter(theirs)
        ours.load_state_dict(theirs.state_dict())
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for direction in ("forward", "inverse"):
            with torch.no_grad():
                o_out, o_ld = getattr(ours, direction)(x)
                t_out, t_ld = getattr(theirs, direction)(x)
                t64_out, t64_ld = getattr(theirs.double(), direction)(x.double())
                o64_out, o64_ld = getattr(ours.double(), direction)(x.double())
            ours.float(), theirs.float()
            name = f"{type(ours).__name__}.{direction}"
            scale = t64_out.abs().amax(1, keepdim=True).clamp_min(1.0)
            assert ((o64_out - t64_out).abs() <= 1e-9 * scale).all(), name
            assert ((o64_ld - t64_ld).abs() <= 1e-9 * (1 + t64_ld.abs())).all(), name
            if direction == "forward":
                _assert_agree(o_out, t_out, t64_out, scale)
                _assert_agree(o_ld, t_ld, t64_ld, 1 + t64_ld.abs())


def test_a_coupling_needs_a_contiguous_mask():
    from nflows.nn.nets import ResidualNet
    with pytest.raises(ValueError, match="contiguous block"):
        ExpAffineCoupling(torch.tensor([1, 0, 1, 0]), lambda i, o: ResidualNet(i, o, 8))


@pytest.mark.parametrize("kind", KINDS)
def test_state_dicts_are_the_same(kind):
    spec = dataclasses.replace(FLOW_SPEC, kind=kind, layers=3)
    ours, theirs = build_flow(spec, 5), build_flow(spec, 5, layers="nflows")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():  # the same seeded initialisation
        assert torch.equal(ours.state_dict()[key], value), key


@pytest.mark.parametrize("kind", KINDS)
def test_a_flow_saved_from_nflows_layers_loads_with_the_same_densities(kind, tmp_path):
    """A flow fitted before (nflows' layers, the same state dict) loads into pae's layers: its log p(z) is that of
    nflows' layers up to float32 round-off, and its samples (the inverse) agree in float64."""
    dim = 4
    mean, std = stats(dim)
    spec = dataclasses.replace(FLOW_SPEC, kind=kind, layers=4)
    old = build_flow(spec, dim, mean, std, layers="nflows").eval()
    _jitter(old, scale=0.2)
    save_flow(tmp_path / "flow.pt", old, spec, {})
    new, _, _ = load_flow(tmp_path / "flow.pt")
    z = torch.cat([points(200, dim), points(20, dim, seed=1) * 6])  # some far out: the splines' linear tails
    u = torch.randn(100, dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        lp_old, lp_new = old.log_prob(z), new.log_prob(z)
        lp_old64 = old.double().log_prob(z.double())
        s_old64, s_new64 = old.inverse(u.double())[0], new.double().inverse(u.double())[0]
    _assert_agree(lp_new, lp_old, lp_old64, 1 + lp_old64.abs())
    torch.testing.assert_close(s_new64, s_old64, rtol=0, atol=1e-9 * s_old64.abs().max().item())


def _ops_of_a_step(flow) -> set[str]:
    z = points(64, flow.dim)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        (-flow.log_prob(z).mean()).backward()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("kind", KINDS)
def test_the_training_step_has_static_shapes(kind):
    """No op of pae's forward and backward reads a tensor's value on the host or makes a shape from its values (what
    a CUDA graph cannot capture); nflows' masked spline does both."""
    spec = dataclasses.replace(FLOW_SPEC, kind=kind, layers=2)
    assert not _ops_of_a_step(build_flow(spec, 4)) & SYNCING_OPS
    if kind in ("nsf", "hybrid"):
        assert _ops_of_a_step(build_flow(spec, 4, layers="nflows")) & SYNCING_OPS


def test_the_step_does_not_depend_on_the_thread_count():
    """The loss and its gradient with 1 and 2 threads: the same up to float32 round-off of the batch mean's and the
    matrix products' sums (a few ulps; 1e-5 relative is ~80 ulps). (Adam's updates are left out: they divide by the
    gradients' running rms, so a parameter whose gradient is near 0 moves by round-off-sized signs.)"""
    before = torch.get_num_threads()
    flow = build_flow(dataclasses.replace(FLOW_SPEC, kind="hybrid", layers=4), 6, *stats(6))
    _jitter(flow, scale=0.2)
    z = points(512, 6)
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            flow.zero_grad(set_to_none=True)
            loss = FlowSteps(flow, FLOW_SPEC).loss(z)
            loss.backward()
            results.append((loss.item(), torch.cat([p.grad.flatten() for p in flow.parameters()])))
    finally:
        torch.set_num_threads(before)
    (l1, g1), (l2, g2) = results
    assert l1 == pytest.approx(l2, rel=1e-5)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-5 * g2.abs().max().item())
