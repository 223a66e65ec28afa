"""Models: encoder/decoder architectures and auto-encoder kinds, chosen through registries (no if/elif chains).

`build_model(spec)` is the one constructor; `save_model` / `load_model` write and read `model.pt` files that carry
their own spec, so any stage can rebuild a trained model from the file alone.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from pae.config import ARCHS_WITH_DROPOUT, default
from pae.io import PaeError, torch_load, torch_save
from pae.models.autoencoder import AutoEncoder
from pae.models.conv import ConvDecoder, ConvEncoder
from pae.models.infogan import InfoGANDecoder, InfoGANEncoder
from pae.models.likelihoods import LikelihoodSpec, build_likelihood
from pae.models.mlp import MLPDecoder, MLPEncoder
from pae.models.posteriors import POSTERIORS
from pae.models.resnet import ResNetDecoder, ResNetEncoder
from pae.models.vae import VAD, VAE

# name -> (encoder class, decoder class): Encoder(image_shape, out_features, channels, hidden),
# Decoder(image_shape, latent_dim, channels, hidden, out_channels=None); those in ARCHS_WITH_DROPOUT also take dropout=p
ARCHITECTURES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "conv": (ConvEncoder, ConvDecoder),
    "infogan": (InfoGANEncoder, InfoGANDecoder),
    "mlp": (MLPEncoder, MLPDecoder),
    "resnet": (ResNetEncoder, ResNetDecoder),
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model (saved inside model.pt)."""
    kind: str
    arch: str
    image_shape: tuple[int, int, int]
    latent_dim: int
    channels: tuple[int, ...]
    hidden: int
    likelihood: LikelihoodSpec = LikelihoodSpec()  # VAE, beta-VAE, VAD
    posterior: str = default("train.posterior")  # diag | full (VAE, beta-VAE, VAD)
    posterior_logvar: float | None = default("train.posterior_logvar")  # diag: a fixed log-variance (None: learnt)
    kl_weight: float = default("train.kl_weight")  # the VAE's and VAD's KL weight
    beta: float = 1.0  # the beta-VAE's KL weight (train.beta_vae.beta)
    capacity: float | None = default("train.beta_vae.capacity")  # beta-VAE: anneal the KL towards this many nats instead of weighting it
    capacity_steps: int = default("train.beta_vae.capacity_steps")
    gamma: float = default("train.beta_vae.gamma")  # weight of |KL - C| when annealing capacity
    n_items: int = 0  # VAD: training items, one latent each
    infer_steps: int = default("train.vad.infer_steps")  # VAD: test-time optimisation steps
    infer_lr: float = default("train.vad.infer_lr")
    init_std: float | None = default("train.vad.init_std")  # VAD: latent means start at N(0, init_std^2)
    dropout: float = default("train.dropout")  # architectures in ARCHS_WITH_DROPOUT

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["image_shape"], d["channels"] = tuple(d["image_shape"]), tuple(d["channels"])
        d["likelihood"] = LikelihoodSpec(**d.get("likelihood", {}))
        return cls(**d)


def _ae(spec: ModelSpec, enc_cls, dec_cls) -> nn.Module:
    args = (spec.image_shape, spec.latent_dim, spec.channels, spec.hidden)
    return AutoEncoder(enc_cls(*args), dec_cls(*args))


def _latent_variable_parts(spec: ModelSpec, dec_cls):
    if spec.posterior not in POSTERIORS:
        raise PaeError(f"unknown posterior {spec.posterior!r}; known: {sorted(POSTERIORS)}")
    if spec.posterior_logvar is not None and spec.posterior != "diag":
        raise PaeError(f"a fixed posterior log-variance ({spec.posterior_logvar}) needs the diag posterior, not "
                       f"{spec.posterior!r}")
    posterior = (POSTERIORS[spec.posterior](spec.latent_dim) if spec.posterior_logvar is None
                 else POSTERIORS[spec.posterior](spec.latent_dim, logvar=spec.posterior_logvar))
    likelihood = build_likelihood(spec.likelihood, spec.image_shape[0])
    decoder = dec_cls(spec.image_shape, spec.latent_dim, spec.channels, spec.hidden,
                      out_channels=likelihood.decoder_channels())
    return posterior, likelihood, decoder


def _vae(spec: ModelSpec, enc_cls, dec_cls, beta: float | None = None, capacity: float | None = None) -> nn.Module:
    beta = spec.kl_weight if beta is None else beta
    posterior, likelihood, decoder = _latent_variable_parts(spec, dec_cls)
    encoder = enc_cls(spec.image_shape, posterior.n_params(), spec.channels, spec.hidden)
    return VAE(encoder, decoder, likelihood, posterior, beta=beta, capacity=capacity,
               capacity_steps=spec.capacity_steps, gamma=spec.gamma)


def _beta_vae(spec: ModelSpec, enc_cls, dec_cls) -> nn.Module:
    return _vae(spec, enc_cls, dec_cls, beta=spec.beta, capacity=spec.capacity)


def _vad(spec: ModelSpec, enc_cls, dec_cls) -> nn.Module:
    posterior, likelihood, decoder = _latent_variable_parts(spec, dec_cls)
    return VAD(decoder, likelihood, posterior, n_items=spec.n_items, infer_steps=spec.infer_steps,
               infer_lr=spec.infer_lr, init_std=spec.init_std, beta=spec.kl_weight)


# name -> builder(spec, encoder class, decoder class)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "ae": _ae,
    "vae": _vae,
    "beta_vae": _beta_vae,
    "vad": _vad,
}


def build_model(spec: ModelSpec) -> nn.Module:
    if spec.kind not in MODELS:
        raise PaeError(f"unknown model kind {spec.kind!r}; known: {sorted(MODELS)}")
    if spec.arch not in ARCHITECTURES:
        raise PaeError(f"unknown architecture {spec.arch!r}; known: {sorted(ARCHITECTURES)}")
    if spec.dropout and spec.arch not in ARCHS_WITH_DROPOUT:
        raise PaeError(f"train.dropout={spec.dropout}: architecture {spec.arch!r} has no dropout layers "
                       f"(those that have: {sorted(ARCHS_WITH_DROPOUT)})")
    enc_cls, dec_cls = ARCHITECTURES[spec.arch]
    if spec.arch in ARCHS_WITH_DROPOUT:
        enc_cls, dec_cls = partial(enc_cls, dropout=spec.dropout), partial(dec_cls, dropout=spec.dropout)
    try:
        return MODELS[spec.kind](spec, enc_cls, dec_cls)
    except ValueError as e:  # a bad likelihood/posterior setting
        raise PaeError(f"model {spec.kind}: {e}") from None


def save_model(path: str | os.PathLike, model: nn.Module, spec: ModelSpec, meta: dict) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save(path, {"kind": "model", "spec": asdict(spec), "state_dict": state, "meta": meta})


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelSpec, dict]:
    obj = torch_load(path, "model")
    spec = ModelSpec.from_dict(obj["spec"])
    model = build_model(spec)
    model.load_state_dict(obj["state_dict"])
    return model.to(device).eval(), spec, obj.get("meta", {})
