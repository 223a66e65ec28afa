"""The PAE authors' InfoGAN networks (pae/models/infogan.py): outputs in the pixel range, spectral normalisation on
every encoder layer and none in the decoder, their initialisation, dropout where their code has it."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from pae.models.infogan import Affine, InfoGANDecoder, InfoGANEncoder


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
    assert len(weighted) == 4 and all(parametrize.is_parametrized(m, "weight") for m in weighted)
    assert not any(parametrize.is_parametrized(m) for m in dec.modules())
    raw = torch.cat([m.parametrizations.weight.original.flatten() for m in weighted])
    assert abs(raw.std().item() - 0.02) < 0.001 and all((m.bias == 0).all() for m in weighted)
    enc.eval()
    with torch.no_grad():
        for _ in range(20):  # power iterations converge: the normalised weight has spectral norm ~1
            enc.train()(torch.zeros(1, 1, 28, 28))
        enc.eval()
        w = weighted[-1].weight
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1) < 0.05


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
