"""Every model x likelihood x posterior x architecture that makes sense trains: a few Adam steps on a fixed batch of
tiny structured images give a finite loss that decreases, with and without missing pixels. Plus the pieces only
some models have: VAD test-time inference, the beta-VAE's capacity schedule, and the VAD's refusal of DDP."""
from __future__ import annotations

import itertools

import pytest
import torch

from pae.data.loader import to_float
from pae.data.masks import mcar_mask
from pae.io import PaeError
from pae.models import ARCHITECTURES, MODELS, ModelSpec, build_model
from pae.models.likelihoods import LIKELIHOODS, LikelihoodSpec
from pae.models.posteriors import POSTERIORS
from tests.helpers import synthetic_raw

IMAGES = to_float(torch.from_numpy(synthetic_raw(n_train=16, n_test=0, shape=(1, 16, 16)).train_images))
COMBOS = [("ae", arch, "-", "-") for arch in ARCHITECTURES] + [
    (model, arch, lik, post) for model, arch, lik, post in
    itertools.product([m for m in MODELS if m != "ae"], ARCHITECTURES, LIKELIHOODS, POSTERIORS)]


def _spec(model, arch, lik="gaussian_fixed", post="diag", **kw):
    return ModelSpec(model, arch, (1, 16, 16), 3, (8, 16), 32,
                     likelihood=LikelihoodSpec(lik if lik != "-" else "gaussian_fixed", sigma=0.1, beta_nll=0.5),
                     posterior=post if post != "-" else "diag", n_items=len(IMAGES), infer_steps=5, **kw)


@pytest.mark.parametrize("missing", [0.0, 0.5], ids=["complete", "missing"])
@pytest.mark.parametrize("model, arch, lik, post", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_trains(model, arch, lik, post, missing):
    torch.manual_seed(0)
    net = build_model(_spec(model, arch, lik, post))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    idx = torch.arange(len(IMAGES))
    mask = mcar_mask(0, idx, (16, 16), missing) if missing else None
    losses = []
    for _ in range(25):
        loss = net.loss(IMAGES, mask, idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(map(lambda v: v == v and abs(v) < float("inf"), losses)), losses
    assert sum(losses[-5:]) < sum(losses[:5]), f"loss did not decrease: {losses[:5]} -> {losses[-5:]}"
    with torch.no_grad():
        assert net.decode(torch.zeros(2, 3)).shape == (2, 1, 16, 16)


def test_vad_inference_improves_the_elbo_and_leaves_the_decoder_alone():
    torch.manual_seed(0)
    vad = build_model(_spec("vad", "conv"))
    before = {k: v.clone() for k, v in vad.decoder.state_dict().items()}
    init = vad.posterior.init_params(len(IMAGES))
    params = vad.infer(IMAGES, steps=50)
    with torch.no_grad():
        loss0 = sum(vad.elbo_terms(IMAGES, init, samples=4)).mean()
        loss1 = sum(vad.elbo_terms(IMAGES, params, samples=4)).mean()
    assert loss1 < loss0
    assert all(torch.equal(v, vad.decoder.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in vad.decoder.parameters())
    with pytest.raises(ValueError, match="needs the items' indices"):
        vad.loss(IMAGES)


def test_the_vad_authors_protocol_fixed_variance_no_kl_and_small_initial_latents():
    """posterior_logvar fixes q's variance (the latent table holds means only), kl_weight 0 leaves the likelihood
    alone in training and in test-time inference, init_std starts the means at N(0, init_std^2)."""
    vad = build_model(_spec("vad", "mlp", posterior_logvar=-14.0, kl_weight=0.0, init_std=1e-3))
    assert vad.latents.shape == (len(IMAGES), 3)
    # 48 draws of N(0, 1e-6): their std is 1e-3 within ~10% (chi, 48 dof); a prior start would have std 0
    assert 5e-4 < vad.latents.std().item() < 2e-3
    idx = torch.arange(len(IMAGES))
    torch.manual_seed(1)
    loss = vad.loss(IMAGES, idx=idx)
    torch.manual_seed(1)  # the same posterior draw
    nll, kl = vad.elbo_terms(IMAGES, vad.latents[idx], training_loss=True)
    assert kl.min() > 1.0 and torch.equal(loss, nll.mean())  # the KL is there, and weighs nothing

    g = torch.Generator().manual_seed(3)
    params = vad.infer(IMAGES, steps=50, generator=g)
    assert params.shape == (len(IMAGES), 3)
    init = vad.init_params(len(IMAGES), torch.Generator().manual_seed(3))
    with torch.no_grad():
        nll0, _ = vad.elbo_terms(IMAGES, init)
        nll1, kl1 = vad.elbo_terms(IMAGES, params)
    assert nll1.mean() < nll0.mean()

    vae = build_model(_spec("vae", "mlp", posterior_logvar=-14.0))
    assert vae.posterior_params(IMAGES).shape == (len(IMAGES), 3)  # the encoder gives the mean alone
    with pytest.raises(PaeError, match="fixed posterior log-variance .* needs the diag posterior"):
        build_model(_spec("vae", "mlp", post="full", posterior_logvar=-14.0))


def test_capacity_grows_linearly_then_stays():
    vae = build_model(_spec("beta_vae", "conv", capacity=10.0, capacity_steps=4, gamma=1.0))
    vae.train()
    for _ in range(6):
        vae.loss(IMAGES)
    assert vae.steps_seen.item() == 6
    vae.eval()
    vae.loss(IMAGES)
    assert vae.steps_seen.item() == 6, "evaluation does not advance the schedule"
    assert "steps_seen" in vae.state_dict(), "the schedule's position is checkpointed with the weights"


def test_beta_weights_the_kl():
    torch.manual_seed(0)
    a = build_model(_spec("vae", "conv"))
    b = build_model(_spec("beta_vae", "conv", beta=4.0))
    b.load_state_dict(a.state_dict())
    params = a.posterior_params(IMAGES)
    torch.manual_seed(1)
    nll, kl = a.elbo_terms(IMAGES, params, training_loss=True)
    torch.manual_seed(1)
    la = a.loss(IMAGES)
    torch.manual_seed(1)
    lb = b.loss(IMAGES)
    # float32 means of 16 per-image losses, the same terms (equal here): float32's default tolerance
    torch.testing.assert_close(la, (nll + kl).mean())
    torch.testing.assert_close(lb, (nll + 4.0 * kl).mean())


def test_vad_refuses_ddp(synthetic_h5, tmp_path):
    from pae.data.store import open_dataset
    from pae.train.distributed import DistInfo
    from pae.train.loop import TrainSpec, train
    spec = TrainSpec.from_dict({"model": "vad", "latent_dim": 3, "seed": 0, "channels": [8], "hidden": 16,
                                "epochs": 1, "batch_size": 20})
    with pytest.raises(PaeError, match="trains in one process"):
        train(spec, open_dataset(synthetic_h5), tmp_path / "m.pt", tmp_path / "h.json", tmp_path / "c.pt",
              DistInfo(rank=0, local_rank=0, world_size=2, device=torch.device("cpu")))


def test_vad_latents_train_at_their_own_learning_rate():
    """The VAD's per-item latents are a separate Adam group at train.vad.latent_lr, without weight decay; the other
    models have one group at train.lr."""
    from pae.train.loop import TrainSpec, _param_groups
    spec = TrainSpec.from_dict({"model": "vad", "latent_dim": 3, "seed": 0, "channels": [8], "hidden": 16,
                                "weight_decay": 1e-4, "vad": {"infer_steps": 5, "infer_lr": 0.05, "latent_lr": 0.2}})
    vad = build_model(_spec("vad", "conv"))
    opt = torch.optim.Adam(_param_groups(vad, spec), lr=spec.lr, weight_decay=spec.weight_decay)
    nets, latents = opt.param_groups
    assert latents["params"] == [vad.latents] and (latents["lr"], latents["weight_decay"]) == (0.2, 0.0)
    assert nets["lr"] == spec.lr and nets["weight_decay"] == 1e-4
    assert sum(p.numel() for p in nets["params"]) + vad.latents.numel() == sum(p.numel() for p in vad.parameters())
    null = TrainSpec.from_dict({**{k: getattr(spec, k) for k in ("model", "latent_dim", "seed", "channels", "hidden")},
                                "vad": {"infer_steps": 5, "infer_lr": 0.05, "latent_lr": None}})
    assert _param_groups(vad, null)[1]["lr"] == null.lr
    ae = build_model(_spec("ae", "conv"))
    assert len(_param_groups(ae, spec)) == 1


def test_precision_auto_follows_the_device():
    from pae.train.loop import bf16_supported, uses_bf16
    cpu = torch.device("cpu")
    assert uses_bf16(cpu, "bf16") and not uses_bf16(cpu, "fp32")
    assert uses_bf16(cpu, "auto") == bf16_supported(cpu)
