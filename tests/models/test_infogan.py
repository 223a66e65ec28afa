"""The PAE authors' InfoGAN networks (pae/models/infogan.py): outputs in the pixel range, spectral normalisation on
every encoder layer and none in the decoder, their initialisation, dropout where their code has it."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pae.models.infogan import TORCH_SPECTRAL_NORM_KEYS, Affine, InfoGANDecoder, InfoGANEncoder, SNConv2d, SNLinear


def test_decoder_outputs_lie_in_the_pixel_range_and_extra_channels_stay_linear():
    torch.manual_seed(0)
    dec = InfoGANDecoder((1, 28, 28), 4, (8, 16), 32, out_channels=2)
    with torch.no_grad():
        for p in dec.parameters():
            p.mul_(50)  # large pre-activations
        out = dec(torch.randn(16, 4))
    assert out.shape == (16, 2, 28, 28)
    assert out[:, 0].min() >= -0.5 and out[:, 0].max() <= 0.5
    assert out[:, 1].abs().max() > 1  # a likelihood's scale channel is not squashed


def test_spectral_norm_on_the_encoder_only_and_the_authors_initialisation():
    torch.manual_seed(0)
    enc, dec = InfoGANEncoder((1, 28, 28), 8, (64, 128), 1024), InfoGANDecoder((1, 28, 28), 8, (64, 128), 1024)
    weighted = [m for m in enc.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 4 and all(isinstance(m, (SNConv2d, SNLinear)) for m in weighted)
    assert not any(isinstance(m, (SNConv2d, SNLinear)) for m in dec.modules())
    raw = torch.cat([m.weight.flatten() for m in weighted])
    assert abs(raw.std().item() - 0.02) < 0.001 and all((m.bias == 0).all() for m in weighted)
    with torch.no_grad():
        for _ in range(20):  # power iterations converge: the normalised weight has spectral norm ~1
            enc.train()(torch.zeros(1, 1, 28, 28))
        enc.eval()
        m = weighted[-1]
        w = m.weight / m.sigma()
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1) < 0.05


@pytest.mark.parametrize("ours_cls, theirs_cls, args, shape", [(SNLinear, nn.Linear, (300, 50), (5, 300)),
                                                              (SNConv2d, nn.Conv2d, (8, 16, 4, 2, 1), (5, 8, 12, 12))],
                         ids=["linear", "conv"])
def test_dividing_the_output_is_torchs_spectral_norm(ours_cls, theirs_cls, args, shape):
    """Outputs, gradients and the power iteration's u and v equal those of torch's parametrization (which divides the
    weight) over two training steps and one in eval mode. In float64 the two orders of the same products differ by
    round-off of ~1e-16 per term (300 or 128 terms): 1e-10 is far above that and far below any real difference."""
    torch.manual_seed(0)
    ours, theirs = ours_cls(*args).double(), spectral_norm(theirs_cls(*args).double())
    theirs.load_state_dict({TORCH_SPECTRAL_NORM_KEYS.get(k, k): t for k, t in ours.state_dict().items()})
    assert [n for n, _ in ours.named_parameters()] == ["bias", "weight"]  # theirs: bias, then the weight
    x = torch.randn(*shape, dtype=torch.float64)
    for train in (True, True, False):
        ours.train(train), theirs.train(train)
        y_ours, y_theirs = ours(x), theirs(x)
        torch.testing.assert_close(y_ours, y_theirs, rtol=1e-10, atol=1e-12)
        g_ours = torch.autograd.grad(y_ours.square().sum(), list(ours.parameters()))
        g_theirs = torch.autograd.grad(y_theirs.square().sum(), list(theirs.parameters()))
        for a, b in zip(g_ours, g_theirs):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours._u, theirs.parametrizations.weight[0]._u, rtol=0, atol=1e-12)
        torch.testing.assert_close(ours._v, theirs.parametrizations.weight[0]._v, rtol=0, atol=1e-12)


def test_a_state_dict_saved_under_torchs_parametrization_loads():
    torch.manual_seed(0)
    theirs = spectral_norm(nn.Linear(20, 6))
    ours = SNLinear(20, 6)
    ours.load_state_dict(theirs.state_dict())
    p = theirs.parametrizations.weight
    assert torch.equal(ours.weight, p.original) and torch.equal(ours._u, p[0]._u) and torch.equal(ours._v, p[0]._v)
    theirs.eval(), ours.eval()
    x = torch.randn(3, 20)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)  # float32: the two orders' round-off


def test_dropout_and_affine_layers_where_the_authors_put_them():
    enc, dec = InfoGANEncoder((1, 28, 28), 8, (64, 128), 1024, 0.25), InfoGANDecoder((1, 28, 28), 8, (64, 128), 1024,
                                                                                      dropout=0.25)
    drops = lambda m: sum(isinstance(x, nn.Dropout) and x.p == 0.25 for x in m.modules())  # noqa: E731
    affines = lambda m: sum(isinstance(x, Affine) for x in m.modules())  # noqa: E731
    assert (drops(enc), affines(enc)) == (2, 2)  # second conv, fully connected layer
    assert (drops(dec), affines(dec)) == (2, 3)  # both fully connected layers have affines; dropout after the second
    x = torch.rand(6, 1, 28, 28) - 0.5
    enc.eval()
    assert torch.equal(enc(x), enc(x))  # no dropout in eval mode
