"""Models: encoder/decoder architectures and auto-encoder kinds, chosen through registries (no if/elif chains).

`build_model(spec)` is the one constructor; `save_model` / `load_model` write and read `model.pt` files that carry
their own spec, so any stage can rebuild a trained model from the file alone.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from torch import nn

from pae.io import PaeError, torch_load, torch_save
from pae.models.autoencoder import AutoEncoder
from pae.models.conv import ConvDecoder, ConvEncoder

# name -> (encoder class, decoder class); each takes (image_shape, latent_dim, channels, hidden)
ARCHITECTURES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "conv": (ConvEncoder, ConvDecoder),
}
# name -> model class taking (encoder, decoder)
MODELS: dict[str, type[nn.Module]] = {
    "ae": AutoEncoder,
}


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    arch: str
    image_shape: tuple[int, int, int]
    latent_dim: int
    channels: tuple[int, ...]
    hidden: int

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        return cls(kind=d["kind"], arch=d["arch"], image_shape=tuple(d["image_shape"]), latent_dim=int(d["latent_dim"]),
                   channels=tuple(d["channels"]), hidden=int(d["hidden"]))


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.kind not in MODELS:
        raise PaeError(f"unknown model kind {spec.kind!r}; known: {sorted(MODELS)}")
    if spec.arch not in ARCHITECTURES:
        raise PaeError(f"unknown architecture {spec.arch!r}; known: {sorted(ARCHITECTURES)}")
    enc_cls, dec_cls = ARCHITECTURES[spec.arch]
    args = (spec.image_shape, spec.latent_dim, spec.channels, spec.hidden)
    return MODELS[spec.kind](enc_cls(*args), dec_cls(*args))


def save_model(path: str | os.PathLike, model: nn.Module, spec: ModelSpec, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save(path, {"kind": "model", "spec": asdict(spec), "state_dict": state, "meta": meta})


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelSpec, dict]:
    obj = torch_load(path, "model")
    spec = ModelSpec.from_dict(obj["spec"])
    model = build_model(spec)
    model.load_state_dict(obj["state_dict"])
    return model.to(device).eval(), spec, obj.get("meta", {})
