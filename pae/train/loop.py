"""The auto-encoder training loop: Adam on the model's loss, validation each epoch, seeded, DDP-aware, resumable.

Equivalence guarantees (tested): a run killed and resumed from its checkpoint ends with the same weights as an
uninterrupted one; W DDP ranks with global batch B follow the same loss curve as one process with batch B.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pae.config import merge, resolve
from pae.data.loader import BatchLoader
from pae.data.masks import mcar_mask
from pae.data.store import Dataset
from pae.io import PaeError, progress_kwargs, write_json
from pae.models import ModelSpec, build_model, save_model
from pae.models.likelihoods import LikelihoodSpec
from pae.train import checkpoint, distributed, interrupt
from pae.train.distributed import DistInfo
from pae.train.graphed import GraphedStep

log = logging.getLogger(__name__)

STOP_CHECK_EVERY = 20  # steps between the collective stop checks of a multi-rank run


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines a training run (one grid point)."""
    model: str
    latent_dim: int
    seed: int
    arch: str
    channels: tuple[int, ...]
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    lr_drop: dict | None
    checkpoint_every_s: float
    divergence_factor: float | None
    dropout: float
    weight_decay: float
    precision: str
    channels_last: bool
    cuda_graph: bool
    likelihood: dict
    posterior: str
    posterior_logvar: float | None
    kl_weight: float
    beta_vae: dict
    vad: dict
    missing: dict

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSpec":
        """A spec from the run's keys (model, latent_dim, seed) and the `train` config section; keys it leaves out,
        also inside its sections (vad, likelihood, ...), take the schema's defaults (the one place defaults are
        written)."""
        names = {f.name for f in fields(cls)}
        d = merge(resolve({})["train"], d)
        unknown, absent = set(d) - names, names - set(d)
        if unknown or absent:
            raise PaeError(f"train spec: unknown keys {sorted(unknown)}, missing keys {sorted(absent)}")
        return cls(**{**d, "channels": tuple(d["channels"])})

    def identity(self) -> dict:
        """What a checkpoint must share to be resumed: all but the number of epochs, the divergence test (neither
        changes the weights of the epochs done) and how the step is launched (train.cuda_graph: the same arithmetic)."""
        d = asdict(self)
        for key in ("epochs", "divergence_factor", "cuda_graph"):
            d.pop(key)
        return d

    def model_spec(self, image_shape, n_items: int) -> ModelSpec:
        return ModelSpec(self.model, self.arch, tuple(image_shape), self.latent_dim, self.channels, self.hidden,
                         likelihood=LikelihoodSpec(**self.likelihood), posterior=self.posterior,
                         posterior_logvar=self.posterior_logvar, kl_weight=self.kl_weight,
                         beta=self.beta_vae["beta"], capacity=self.beta_vae["capacity"],
                         capacity_steps=self.beta_vae["capacity_steps"], gamma=self.beta_vae["gamma"],
                         n_items=n_items, infer_steps=self.vad["infer_steps"], infer_lr=self.vad["infer_lr"],
                         init_std=self.vad["init_std"],
                         dropout=self.dropout)

    def lr_factor(self, epoch: int) -> float:
        """The learning-rate multiplier of 0-based `epoch` (train.lr_drop)."""
        drop = self.lr_drop
        return drop["factor"] if drop and epoch >= math.ceil(drop["at"] * self.epochs) else 1.0


class _Objective(nn.Module):
    """Wraps a model so that forward() returns its loss: DDP then hooks every parameter the loss uses."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, mask=None, idx=None):
        return self.model.loss(x, mask, idx)


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (CUDA: Ampere and later; CPU: AVX512-BF16 / AMX, as oneDNN
    reports it); elsewhere bf16 autocast is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def uses_bf16(device: torch.device, precision: str) -> bool:
    """train.precision -> autocast to bf16 or not: bf16 always, fp32 never, auto where the device supports it."""
    return precision == "bf16" or (precision == "auto" and bf16_supported(device))


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


@torch.no_grad()
def mean_squared_error(model: nn.Module, images: torch.Tensor, info: DistInfo, batch_size: int = 1000,
                       bf16: bool = False, channels_last: bool = False) -> float:
    """Per-pixel MSE of reconstructions over `images` (uint8), sharded over ranks and summed exactly."""
    was_training = model.training
    model.eval()
    loader = BatchLoader(images, batch_size * info.world_size, shuffle=False, rank=info.rank,
                         world_size=info.world_size, device=info.device, channels_last=channels_last)
    total = torch.zeros(2, dtype=torch.float64, device=info.device)
    for x in loader:
        if len(x) == 0:
            continue
        with _autocast(info.device, bf16):
            recon = model(x)
        total[0] += (recon.float() - x).pow(2).sum(dtype=torch.float64)
        total[1] += x.numel()
    distributed.all_reduce_sum(total)
    model.train(was_training)
    return (total[0] / total[1]).item()


def grey_mse(images: torch.Tensor) -> float:
    """The MSE of a mid-grey reconstruction (every pixel 0 on the [-0.5, 0.5] scale, about what an untrained decoder
    outputs) of uint8 `images`: the validation MSE's reference before the first epoch. From the pixel histogram, so
    no float copy of the images is made."""
    if images.numel() == 0:
        return math.inf
    counts = torch.bincount(images.reshape(-1), minlength=256).double()
    squares = (torch.arange(256, dtype=torch.float64) / 255.0 - 0.5) ** 2
    return (counts @ squares / counts.sum()).item()


def divergence(factor: float | None, losses: list[float], val: float | None, history: list[dict],
               grey: float) -> str | None:
    """Why an epoch counts as diverged (train.divergence_factor, the schema has the rule), or None. `losses` are the
    epoch's step losses, `val` its validation MSE (None when not computed), `history` the epochs before it, `grey` the
    mid-grey image's validation MSE (grey_mse)."""
    bad = [x for x in losses if not math.isfinite(x)]
    if bad or (val is not None and not math.isfinite(val)):
        what = f"training loss {bad[0]}" if bad else f"validation MSE {val}"
        return f"a non-finite {what}"
    if factor is None:
        return None
    vals = [h["val_mse"] for h in history if h["val_mse"] is not None]
    ref = min([grey, *vals])
    if val is not None and val > factor * ref:
        which = "a mid-grey image's" if ref == grey else "the lowest so far"
        return f"validation MSE {val:.4g} is more than train.divergence_factor = {factor:g} times {which} ({ref:.4g})"
    first = (history[0]["step_losses"] if history else losses)[0]  # the untrained model's loss
    lowest = min([first, *(h["train_loss"] for h in history)])
    scale = max(abs(lowest), abs(first))
    mean = sum(losses) / len(losses)
    if mean - lowest > (factor - 1) * scale:
        return (f"mean training loss {mean:.4g} is more than (train.divergence_factor - 1) x {scale:.4g} above the "
                f"lowest so far ({lowest:.4g}; the first step's loss: {first:.4g})")
    return None


def _param_groups(model: nn.Module, spec: TrainSpec) -> list[dict]:
    """Adam's parameter groups: the networks at train.lr; a VAD's per-item latents at train.vad.latent_lr, without
    weight decay (they are data, not weights)."""
    latents = getattr(model, "latents", None) if model.needs_index else None
    if latents is None:
        return [{"params": list(model.parameters())}]
    others = [p for p in model.parameters() if p is not latents]
    return [{"params": others},
            {"params": [latents], "lr": spec.vad.get("latent_lr") or spec.lr, "weight_decay": 0.0}]


def _where(epochs_done: int, batches_done: int, spec, loader) -> str:
    """A position in the training, the one convention of its stop and resume messages: 'epoch 4/25, batch 6/20' is
    the 4th epoch of 25 in progress with 6 of its 20 batches done."""
    return f"epoch {epochs_done + 1}/{spec.epochs}, batch {batches_done}/{len(loader)}"


def _new_epoch() -> dict:
    """The part of the training state that covers the epoch in progress: its mean-over-ranks step losses and
    seconds so far (non-empty only when a stop came mid-epoch)."""
    return {"losses": [], "seconds": 0.0}


def _mean_over_ranks(step_losses: list[torch.Tensor], info: DistInfo) -> list[float]:
    """Per-step losses averaged over ranks, as floats (one host sync for the whole list)."""
    if not step_losses:
        return []
    return (distributed.all_reduce_sum(torch.stack(step_losses).float()) / info.world_size).cpu().tolist()


def _missing_mask(spec: TrainSpec, idx: torch.Tensor, epoch: int, shape: tuple[int, int]) -> torch.Tensor | None:
    """The MCAR mask of these training items (None without missing data); a pure function of the seed, the items and,
    in random mode, the epoch, so resumed and distributed runs see the same masks."""
    if spec.missing["ratio"] == 0:
        return None
    return mcar_mask(spec.seed, idx, shape, spec.missing["ratio"], epoch if spec.missing["mode"] == "random" else 0)


def _save(path: Path, spec: TrainSpec, state: dict, model: nn.Module, opt: torch.optim.Optimizer,
          info: DistInfo) -> None:
    """The checkpoint: the training state, weights, optimiser and every rank's RNG states (collective; rank 0
    writes)."""
    rngs = distributed.all_gather_object(checkpoint.rng_state())
    if info.is_main:
        checkpoint.save(path, identity=spec.identity(), **state, model=model.state_dict(), optimizer=opt.state_dict(),
                        rng=rngs)
    distributed.barrier()


def _checkpoint_due(last_save: float, every_s: float, info: DistInfo) -> bool:
    """Whether checkpoint_every_s has passed; rank 0's clock decides for all ranks (saving is collective)."""
    due = time.perf_counter() - last_save >= every_s
    if not info.distributed:
        return due
    flag = torch.tensor([float(due and info.is_main)], device=distributed.collective_device())
    return distributed.all_reduce_sum(flag).item() > 0


def train(spec: TrainSpec, data: Dataset, model_path: Path, history_path: Path, checkpoint_path: Path,
          info: DistInfo) -> list[dict]:
    """Train (or resume) and write the final model and history on rank 0; returns the history."""
    # Data, and the checks that need no model.
    train_images, _ = data.split("train")
    val_images, _ = data.split("val")
    if spec.batch_size % info.world_size:
        raise PaeError(f"train.batch_size={spec.batch_size} must be divisible by the {info.world_size} ranks")
    if len(train_images) < spec.batch_size:
        raise PaeError(f"{data.path}: {len(train_images)} training images, fewer than one batch of "
                       f"{spec.batch_size}")
    if spec.cuda_graph and info.distributed and info.device.type == "cuda":
        raise PaeError(f"train.cuda_graph: true runs in one process; this training has {info.world_size} ranks "
                       "(set it to false for DDP)")
    device, shape = info.device, tuple(data.image_shape[1:])

    # Model and optimiser, with the same initial weights on every rank.
    torch.manual_seed(spec.seed)
    mspec = spec.model_spec(data.image_shape, n_items=len(train_images))
    model = build_model(mspec).to(device)
    if model.needs_index and info.distributed:
        raise PaeError(f"model {spec.model!r} trains in one process: its per-item latents would make DDP all-reduce "
                       "the whole latent table every step")
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # fused: one kernel updates every parameter, instead of a few kernels per tensor
    opt = torch.optim.Adam(_param_groups(model, spec), lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    base_lrs = [group["lr"] for group in opt.param_groups]
    torch.manual_seed(spec.seed * 1000 + info.rank + 1)  # per-rank stream for stochastic layers and samplers

    # The training state, saved in the checkpoint and read back whole: `epoch` epochs done, `batch` batches of the
    # next one done (a mid-epoch stop) with their losses and seconds in `partial`, the history, the seconds spent.
    state = {"epoch": 0, "batch": 0, "partial": _new_epoch(), "history": [], "elapsed_s": 0.0}
    ckpt = checkpoint.load_compatible(checkpoint_path, spec.identity(), spec.epochs, defaults=resolve({})["train"])
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        for group in opt.param_groups:  # Adam's capturable mode is this run's, not the checkpoint's
            group["capturable"] = False
        state = {key: ckpt[key] for key in state}
        checkpoint.set_rng_state(ckpt["rng"][min(info.rank, len(ckpt["rng"]) - 1)])
    history = state["history"]

    # The objective (DDP hooks every parameter the loss uses), the batches, the precision.
    objective = _Objective(model)
    if info.distributed:
        objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    loader = BatchLoader(train_images, spec.batch_size, shuffle=True, seed=spec.seed, rank=info.rank,
                         world_size=info.world_size, drop_last=True, device=device,
                         channels_last=spec.channels_last)
    if ckpt is not None:  # the position as a stop names it (_where): the epoch in progress, its batches done
        log.info("resuming from %s at %s", checkpoint_path, _where(state["epoch"], state["batch"], spec, loader))
    grey = grey_mse(val_images)  # the reference of the divergence test before the first epoch
    bf16 = uses_bf16(device, spec.precision)  # decided once (the oneDNN query is not free), used at every step
    graphed = GraphedStep(objective, model, opt, bf16) if spec.cuda_graph and device.type == "cuda" else None
    if spec.cuda_graph and device.type != "cuda":
        log.info("train.cuda_graph applies on CUDA devices; on %s the steps run eagerly", device)
    log.info("training %s: %d parameters, %d train / %d val images, %d steps per epoch, device %s, %d rank(s), %s%s",
             mspec, sum(p.numel() for p in model.parameters()), len(train_images), len(val_images), len(loader),
             device, info.world_size, "bf16 autocast" if bf16 else "fp32", ", CUDA graph" if graphed else "")
    t_start = last_save = time.perf_counter()
    elapsed_before = state["elapsed_s"]
    # A stop request is looked at after every step in one process (a flag, no sync); with several ranks every
    # STOP_CHECK_EVERY steps, in one collective so that all ranks stop at the same step.
    check_every = STOP_CHECK_EVERY if info.distributed else 1

    while state["epoch"] < spec.epochs:
        epoch, first, partial = state["epoch"], state["batch"], state["partial"]
        t_epoch = time.perf_counter() - partial["seconds"]

        # The epoch's shuffle and learning rate (train.lr_drop).
        loader.set_epoch(epoch)
        for group, base in zip(opt.param_groups, base_lrs):
            group["lr"] = base * spec.lr_factor(epoch)

        # Steps; the losses stay on the device (no host sync per step).
        model.train()
        step_losses = []
        bar = tqdm(loader.batches(first, with_index=True), desc=f"epoch {epoch + 1}/{spec.epochs}", initial=first,
                   total=len(loader), disable=not info.is_main, **progress_kwargs())
        for i, (x, idx) in enumerate(bar, start=first + 1):
            mask = _missing_mask(spec, idx, epoch, shape)
            if graphed is not None:
                loss = graphed(x, mask, idx).clone()  # the graph's loss tensor is overwritten by the next step
            else:
                with _autocast(device, bf16):
                    loss = objective(x, mask, idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            step_losses.append(loss.detach())
            # A stop signal mid-epoch: save the position within the epoch, then stop.
            signum = i < len(loader) and i % check_every == 0 and interrupt.requested(synchronise=info.distributed)
            if signum:
                state.update(batch=i, partial={"losses": partial["losses"] + _mean_over_ranks(step_losses, info),
                                               "seconds": time.perf_counter() - t_epoch},
                             elapsed_s=elapsed_before + time.perf_counter() - t_start)
                _save(checkpoint_path, spec, state, model, opt, info)
                raise interrupt.Interrupted(signum, f"at {_where(epoch, i, spec, loader)}")
        bar.close()

        # Validation (a VAD reconstructs new images only by test-time optimisation: at the last epoch only), then
        # the divergence test on values every rank shares (losses averaged over ranks, val all-reduced).
        losses = partial["losses"] + _mean_over_ranks(step_losses, info)
        val = None
        if not model.needs_index or epoch + 1 == spec.epochs:
            val = mean_squared_error(model, val_images, info, bf16=bf16, channels_last=spec.channels_last)
        why = divergence(spec.divergence_factor, losses, val, history, grey)
        if why:
            hint = "" if why.startswith("a non-finite") else \
                ", or raise train.divergence_factor if this is not a divergence"
            raise PaeError(f"train: the training diverged at epoch {epoch + 1}/{spec.epochs}: {why}. Lower train.lr "
                           f"(now {spec.lr:g}){hint}; no model was written (the rolling checkpoint is kept)")

        # The epoch's record.
        history.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": sum(losses) / len(losses),
                        "val_mse": val, "seconds": time.perf_counter() - t_epoch, "step_losses": losses})
        log.info("epoch %d/%d: train loss %.6f, val MSE %s (%.1f s)", epoch + 1, spec.epochs,
                 history[-1]["train_loss"], "-" if val is None else f"{val:.6f}", history[-1]["seconds"])
        state.update(epoch=epoch + 1, batch=0, partial=_new_epoch(),
                     elapsed_s=elapsed_before + time.perf_counter() - t_start)

        # The rolling checkpoint, when due (train.checkpoint_every_s) or asked for by a stop signal.
        signum = interrupt.requested(synchronise=info.distributed)
        if signum or _checkpoint_due(last_save, spec.checkpoint_every_s, info):
            _save(checkpoint_path, spec, state, model, opt, info)
            last_save = time.perf_counter()
        if signum and state["epoch"] < spec.epochs:
            raise interrupt.Interrupted(signum, f"at {_where(state['epoch'], 0, spec, loader)}")

    # The final model and history (rank 0); the checkpoint is no longer needed.
    if info.is_main:
        best = min((h for h in history if h["val_mse"] is not None), key=lambda h: h["val_mse"])
        meta = {"train_spec": asdict(spec), "epochs": spec.epochs, "final_val_mse": history[-1]["val_mse"],
                "best_val_mse": best["val_mse"], "best_epoch": best["epoch"], "world_size": info.world_size,
                "train_seconds": elapsed_before + time.perf_counter() - t_start, "dataset": str(data.path),
                "dataset_sha256": data.attrs["sha256"]}
        save_model(model_path, model, mspec, meta)
        write_json(history_path, {"meta": meta, "epochs": history})
        checkpoint.remove(checkpoint_path)
        log.info("wrote %s (val MSE %.6f after %d epochs)", model_path, history[-1]["val_mse"], spec.epochs)
    distributed.barrier()
    return history
