"""What the per-run stages (encode, evaluate, fid, ood, posterior, impute) start with: `load_run` picks the device,
loads the model (and the flow), opens the dataset and checks that they belong together."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pae.data.store import Dataset, open_dataset
from pae.device import resolve_device
from pae.flows import LatentFlow, load_flow
from pae.io import PaeError
from pae.models import ModelSpec, load_model


@dataclass
class Run:
    model: torch.nn.Module
    spec: ModelSpec
    flow: LatentFlow | None  # None when load_run was given no flow
    data: Dataset
    device: torch.device
    flow_meta: dict = field(default_factory=dict)  # what fit_flow recorded (best epoch, val_logp, ...)


def load_run(model_path: Path, flow_path: Path | None, data_path: Path, device: str) -> Run:
    """The run's model (and flow, unless flow_path is None) on the device `--device` names, and its dataset; raises
    PaeError naming the files when the flow's latent size or the images' shape is not the model's."""
    dev = resolve_device(device)
    model, spec, _ = load_model(model_path, dev)
    flow, flow_meta = None, {}
    if flow_path is not None:
        flow, _, flow_meta = load_flow(flow_path, dev)
        if flow.dim != spec.latent_dim:
            raise PaeError(f"{flow_path}: a flow on {flow.dim} latent dimensions, but {model_path} has latent size "
                           f"{spec.latent_dim}")
    data = open_dataset(data_path)
    if tuple(data.image_shape) != tuple(spec.image_shape):
        raise PaeError(f"{data_path}: images of shape {tuple(data.image_shape)}, but {model_path} expects "
                       f"{tuple(spec.image_shape)}")
    return Run(model, spec, flow, data, dev, flow_meta)
