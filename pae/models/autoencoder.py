"""The deterministic auto-encoder, first stage of the PAE (Böhm & Seljak 2022, sec. 2): trained to minimise the
reconstruction error, the pixel MSE on images scaled to [-0.5, 0.5]."""
from __future__ import annotations

import torch
from torch import nn


class AutoEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared error per pixel (the training objective)."""
        return (self.forward(x).float() - x.float()).pow(2).mean()
