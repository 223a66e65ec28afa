"""Every registered architecture (parametrised over ARCHITECTURES, so new ones are covered): encoder and decoder
shapes at 28x28, 64x64 RGB and an odd 30x22, with the decoder's extra output channels; an AE on a fixed batch of
structured images learns (loss decreases, finite gradients); the model is the same function of each image whatever
the batch (no cross-sample normalisation, which DDP relies on) and with channels_last tensors. Parameter counts and
training throughput at the default widths: bench/architectures.py."""
from __future__ import annotations

import copy

import pytest
import torch

from pae.data.loader import to_float
from pae.models import ARCHITECTURES, AutoEncoder
from tests.helpers import synthetic_raw

SHAPES = [(1, 28, 28), (3, 64, 64), (1, 30, 22)]
SHAPE_IDS = ["28", "64rgb", "30x22"]
LATENT = 5
CHANNELS, HIDDEN = (8, 16), 32  # small widths keep the tests fast
ARCHS = sorted(ARCHITECTURES)


def _ae(arch, shape, channels=CHANNELS, hidden=HIDDEN, latent=LATENT) -> AutoEncoder:
    enc_cls, dec_cls = ARCHITECTURES[arch]
    return AutoEncoder(enc_cls(shape, latent, channels, hidden), dec_cls(shape, latent, channels, hidden))


def _images(shape, n) -> torch.Tensor:
    return to_float(torch.from_numpy(synthetic_raw(n_train=n, n_test=0, shape=shape).train_images))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes(arch, shape):
    torch.manual_seed(0)
    enc_cls, dec_cls = ARCHITECTURES[arch]
    c = shape[0]
    with torch.no_grad():
        assert enc_cls(shape, 7, CHANNELS, HIDDEN)(torch.rand(3, *shape) - 0.5).shape == (3, 7)
        z = torch.randn(2, LATENT)
        assert dec_cls(shape, LATENT, CHANNELS, HIDDEN)(z).shape == (2, *shape)
        assert dec_cls(shape, LATENT, CHANNELS, HIDDEN, out_channels=None)(z).shape == (2, *shape)
        assert dec_cls(shape, LATENT, CHANNELS, HIDDEN, out_channels=2 * c)(z).shape == (2, 2 * c, *shape[1:])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_ae_learns(arch, shape):
    torch.manual_seed(0)
    model = _ae(arch, shape)
    x = _images(shape, 8)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):  # infogan starts from N(0, 0.02^2) weights, as its authors' code does, and moves slowest
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{arch}: bad gradient for {name}"
        opt.step()
        losses.append(loss.item())
    assert all(map(lambda v: v == v and abs(v) < float("inf"), losses)), losses
    assert sum(losses[-3:]) < 0.95 * sum(losses[:3]), f"{arch}: loss did not decrease: {losses}"


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_batch_independent(arch, shape):
    """A batch of 4 gives the outputs of its 4 images run one by one (train mode, so any normaliser is live). Each
    call starts from the same state: spectral normalisation (infogan) takes a power-iteration step per call in train
    mode, a function of the weights alone."""
    torch.manual_seed(0)
    model = _ae(arch, shape).train()
    state = copy.deepcopy(model.state_dict())
    x = _images(shape, 4) + 0.05 * torch.randn(4, *shape)  # distinct images

    def fresh(f, *args):
        model.load_state_dict(state)
        return f(*args)

    with torch.no_grad():
        z, y = fresh(model.encode, x), fresh(model, x)
        z1 = torch.cat([fresh(model.encode, x[i:i + 1]) for i in range(4)])
        y1 = torch.cat([fresh(model, x[i:i + 1]) for i in range(4)])
    # float32 conv stacks run on 4 images or 1 take other GEMM / oneDNN blockings: ~1e-6 of the activations (|y| <=
    # ~1) per layer (2.4e-6 seen); an image leaking into another changes outputs by O(0.01-1)
    torch.testing.assert_close(z, z1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, y1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_channels_last(arch):
    """train.channels_last hands the model channels_last images (and weights): same outputs."""
    torch.manual_seed(0)
    shape = (3, 30, 22)
    model, x = _ae(arch, shape), _images(shape, 3)
    with torch.no_grad():
        y = model(x)
        y_cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert y_cl.shape == y.shape
    torch.testing.assert_close(y_cl, y, rtol=1e-5, atol=1e-5)  # other conv kernels for that layout: as above
