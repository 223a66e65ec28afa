"""The evaluate stage: a run's test reconstruction error, per-sample flow log-likelihoods (and the ELBO of the models
with a posterior), samples and interpolations -> metrics/{recon,flow,elbo}.json, metrics/test_scores.csv, samples.h5."""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import h5py
import torch

from pae.config import default
from pae.data.latents import read_latents, read_params, split_with_latents
from pae.eval import generate
from pae.flows.latent_flow import log_probs, mean_log_prob
from pae.io import atomic_path, write_json
from pae.stages.args import json_object
from pae.stages.common import Run, load_run

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=json_object, required=True, help="the eval config section")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--flow", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--latents", type=Path, required=True)
    p.add_argument("--metrics-dir", type=Path, required=True)
    p.add_argument("--samples-out", type=Path, required=True)
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    evaluate(a.spec, a.model, a.flow, a.data, a.latents, a.metrics_dir, a.samples_out, a.device)


def evaluate(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path,
             metrics_dir: Path, samples_out: Path, device: str) -> None:
    """Test reconstruction error, per-sample flow log-likelihoods, samples and interpolations."""
    r = load_run(model_path, flow_path, data_path, device)
    model, flow, dev = r.model, r.flow, r.device
    test_images, test_z = split_with_latents(latents_path, r.data, "test")
    test_labels = r.data.split("test")[1]

    errs = generate.reconstruction_errors(model, test_images, test_z, dev, spec["batch_size"])
    logp = log_probs(flow, test_z)
    recon = {"test_mse_per_pixel": errs.double().mean().item(), "test_mse_std": errs.double().std().item(),
             "n_test": len(errs), "pixel_scale": "[-0.5, 0.5]"}
    finite = torch.isfinite(logp)
    flow_metrics = {"test_logp_mean": logp[finite].double().mean().item(),
                    "test_logp_median": logp[finite].double().median().item(),
                    "test_logp_nonfinite": int((~finite).sum()), "val_logp": r.flow_meta.get("val_logp"),
                    "train_logp": mean_log_prob(flow, read_latents(latents_path, "train")[0].to(dev)),
                    "latent_dim": flow.dim}
    scores = {"label": test_labels, "recon_mse": errs, "flow_logp_z": logp}
    params = read_params(latents_path, "test")
    if params is not None:  # VAE, beta-VAE, VAD: the test ELBO from the posterior the encode stage found
        scores["elbo"] = _elbo(spec, r, test_images, params, metrics_dir / "elbo.json")
    write_json(metrics_dir / "recon.json", recon)
    write_json(metrics_dir / "flow.json", flow_metrics)
    _write_scores(metrics_dir / "test_scores.csv", scores)
    log.info("test recon MSE %.5f per pixel; test log p(z) mean %.3f", recon["test_mse_per_pixel"],
             flow_metrics["test_logp_mean"])
    _write_samples(spec, r, test_images, test_z, samples_out)


def _elbo(spec: dict, r: Run, test_images: torch.Tensor, params: torch.Tensor, out: Path) -> torch.Tensor:
    """The test ELBO per image (its means -> `out`)."""
    terms = generate.elbo(r.model, test_images, params, r.device, samples=spec["elbo_samples"])
    means = {k: v.double().mean().item() for k, v in terms.items()}
    write_json(out, {
        "test_elbo": means["elbo"], "test_nll": means["nll"], "test_kl": means["kl"], "units": "nats per image",
        "test_elbo_per_pixel": means["elbo"] / test_images[0].numel(), "samples": spec["elbo_samples"],
        "likelihood": r.spec.likelihood.kind, "posterior": r.spec.posterior})
    log.info("test ELBO %.2f nats per image (NLL %.2f, KL %.2f)", means["elbo"], means["nll"], means["kl"])
    return terms["elbo"]


def _write_scores(path: Path, scores: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", *scores])
        for i, row in enumerate(zip(*(v.tolist() for v in scores.values()))):
            w.writerow([i, *(f"{v:.6g}" if isinstance(v, float) else v for v in row)])


def _write_samples(spec: dict, r: Run, test_images: torch.Tensor, test_z: torch.Tensor, out: Path) -> None:
    """PAE and prior samples, test images with their reconstructions, interpolations -> samples.h5."""
    model, dev = r.model, r.device
    n, pairs, steps = spec["n_samples"], spec["n_interpolations"], spec["interp_steps"]
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(test_images), generator=g)
    shown = test_images[pick[:n]]
    a, b = pick[n:n + pairs], pick[n + pairs:n + 2 * pairs]
    with atomic_path(out, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f["pae"] = generate.pae_samples(model, r.flow, n, spec["temperature"], dev).numpy()
        f["prior"] = generate.prior_samples(model, r.spec.latent_dim, n, dev).numpy()
        f["originals"] = shown.numpy()
        f["reconstructions"] = generate.decode_to_uint8(model, test_z[pick[:n]], dev).numpy()
        f["interpolations"] = generate.interpolations(model, test_z[a], test_z[b], steps, dev).numpy()
        f.attrs["temperature"] = spec["temperature"]
