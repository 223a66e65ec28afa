"""The deterministic auto-encoder, first stage of the PAE (Böhm & Seljak 2022, sec. 2): trained to minimise the
reconstruction error, the pixel MSE on images scaled to [-0.5, 0.5]. Trained on data with missing values, it sees
missing pixels as 0 and the error covers observed pixels only. It has no likelihood: the `likelihood` setting
applies to the VAE, beta-VAE and VAD."""
from __future__ import annotations

import torch
from torch import nn


class AutoEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    needs_index = False

    def encode(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x if mask is None else x * mask)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, mask: torch.Tensor | None = None, idx: torch.Tensor | None = None
             ) -> torch.Tensor:
        """Mean squared error per pixel (the training objective), over observed pixels when a mask is given."""
        err = (self.decode(self.encode(x, mask)).float() - x.float()).pow(2)
        if mask is None:
            return err.mean()
        return (err * mask).sum() / (mask.sum() * x.shape[1]).clamp(min=1)
