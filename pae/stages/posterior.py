"""Stage posterior: inpainting and denoising of test images with the posterior over the latent, the flow as prior
(pae.eval.posterior): multi-restart MAP, Laplace approximation, and NUTS (spec["mcmc"]), for each corruption of
pae.eval.corruptions. Pixels are on the [-0.5, 0.5] scale; errors are squared errors per pixel on that scale.

Likelihood sigma: sigma_pix (C, H, W) from the validation residuals of the run's model at its validation latents
(latents.h5), combined with the corruption's noise: sigma^2 = sigma_pix^2 + noise_sigma^2. Coverage is against the
clean truth with the predictive mixture of N(decode(z_s), sigma_pix^2) (see pae.eval.posterior).

metrics/posterior.json:
    n_images, latent_dim, pixel_scale, spec (the eval.posterior section), labels (the test images' labels, in order),
    classifier (with --classifier: {file, test_accuracy, n_classes}, else null),
    sigma_pix: {floor, mean, median, min, max, floored_fraction},
    corruptions: {kind: {
        missing_fraction, noise_sigma, corrupted_mse_all (the observed image, missing pixels mid-grey, vs the truth),
        methods: {map | laplace | mcmc: {
            reconstruction ("map" for map: decode(z_map); "posterior_mean" for laplace, mcmc: the mean of the decoded
                samples),
            mse_missing, mse_all (per pixel, vs the clean truth; mse_missing null without missing pixels),
            posterior_std_missing, posterior_std_all (mean per-pixel std of the decoded samples; 0 for map),
            coverage_missing, coverage_all ({"0.68": fraction, "0.95": fraction}; map: the plug-in predictive
                N(decode(z_map), sigma_pix^2); null on an empty region),
            seconds (map: encoder start + optimisation; laplace: curvature, covariance and sampling; mcmc: NUTS
                alone, its Laplace preconditioner counted under laplace),
            map: neg_log_post_mean; laplace: curvature; mcmc: n_images (NUTS runs on the first
                eval.posterior.mcmc_images images; its figures are over those), laplace_same_images (the Laplace
                figures of the same images, when fewer than n_images), step_size, acceptance_rate, divergences,
                grad_evals_per_iteration, n_eff_min, n_eff_median,
            classes (with a classifier of the dataset's classes: per image, how many of the method's decoded
                samples the domain classifier gives each class (map: its one image): whether a posterior spreads
                over several classes, e.g. an inpainted digit compatible with a 3 and a 5 (the PAE paper's Fig. 6))
            }}}}

panels (HDF5, for the figure "truth | observed | MAP | Laplace samples, std | NUTS samples, std"), per corruption
kind, the same first F images for every method: F = figure_images, or fewer where NUTS ran on fewer (mcmc_images), so
that Laplace and NUTS are shown on the same images. Images uint8 on the 0-255 scale: /{kind}/truth, corrupted
(missing pixels mid-grey), map (F, C, H, W); mask (F, 1, H, W) 0/1; and per method (laplace, and mcmc when NUTS ran)
/{kind}/{method}/samples (F, K, C, H, W), K = min(4, posterior_samples) decoded posterior samples, mean (F, C, H, W)
the posterior-mean image, std (F, C, H, W) float32 the per-pixel posterior std on the [-0.5, 0.5] pixel scale.
With a classifier of the dataset's classes also /{kind}/labels (F,) the images' labels, and per method
/{kind}/{method}/sample_classes (F, K) the classifier's class of each shown sample and class_counts (F, n_classes)
over all of the method's samples of each image.
Group attrs: methods (the methods present), noise_sigma (the corruption's noise, 0 for masks), class_names (JSON,
with a classifier). File attrs: format.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import h5py
import torch

from pae import threads
from pae.data.loader import to_float, to_uint8
from pae.eval.classifier import class_counts, load_classifier, sample_classes
from pae.eval.corruptions import corrupt
from pae.eval.posterior import Predictive, fit_posteriors, method_metrics
from pae.eval.residuals import SIGMA_FLOOR, validation_sigma
from pae.io import atomic_path, write_json
from pae.stages.args import add_run_inputs
from pae.stages.common import load_run

log = logging.getLogger(__name__)

PANELS_FORMAT = "pae-posterior-panels/2"
FIGURE_SAMPLES = 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_inputs(p, "the eval.posterior config section", latents=True)
    p.add_argument("--panels-out", type=Path, required=True, help="HDF5 file of images for the figure")
    p.add_argument("--classifier", type=Path, default=None,
                   help="the dataset's domain classifier (train_classifier): the classes of each method's posterior "
                        "samples are counted (posterior.json: classes)")


def run(a: argparse.Namespace) -> None:
    posterior(a.spec, a.model, a.flow, a.data, a.latents, a.out, a.panels_out, a.device, a.classifier)


def _sigma_summary(sigma: torch.Tensor) -> dict:
    s = sigma.double()
    return {"floor": SIGMA_FLOOR, "mean": s.mean().item(), "median": s.median().item(), "min": s.min().item(),
            "max": s.max().item(), "floored_fraction": (sigma <= SIGMA_FLOOR).double().mean().item()}


def _log_method(kind: str, method: str, m: dict) -> None:
    def fmt(v, spec=".4f"):
        return "n/a" if v is None else format(v, spec)
    cov_m, cov_a = m["coverage_missing"] or {}, m["coverage_all"]
    log.info("%s / %s: MSE missing %s, all %s; posterior std missing %s; coverage 68/95%% missing %s/%s, "
             "all %s/%s; %.1f s", kind, method, fmt(m["mse_missing"]), fmt(m["mse_all"]),
             fmt(m["posterior_std_missing"]), fmt(cov_m.get("0.68"), ".3f"), fmt(cov_m.get("0.95"), ".3f"),
             fmt(cov_a["0.68"], ".3f"), fmt(cov_a["0.95"], ".3f"), m["seconds"])


def _first(pred: Predictive, k: int) -> Predictive:
    """The predictive of the first k images."""
    return Predictive(pred.mean[:k], pred.std[:k], pred.samples[:, :k])


def _analyse(kind: str, spec: dict, model, flow, truth: torch.Tensor, labels: torch.Tensor, sigma_pix: torch.Tensor,
             device: torch.device, classifier=None) -> tuple[dict, dict]:
    """One corruption: (its metrics, its figure panels)."""
    x, mask, noise = corrupt(kind, truth.cpu(), box_fraction=spec["box_fraction"],
                             sparse_ratio=spec["sparse_ratio"], noise_sigma=spec["noise_sigma"], seed=spec["seed"])
    x, mask = x.to(device), mask.to(device)
    sigma = (sigma_pix.pow(2) + noise ** 2).sqrt()
    fits = fit_posteriors(model, flow, x, mask, sigma, spec, device, last="mcmc" if spec["mcmc"] else "laplace")
    methods, classes = {}, {}
    for method, (pred, _, record) in fits.items():
        k = record.get("n_images", len(truth))  # mcmc may cover the first images only
        methods[method] = record | method_metrics(truth[:k], mask[:k], pred, sigma_pix)
        if k < len(truth):  # the same images under the Laplace posterior, to compare like with like
            methods[method]["laplace_same_images"] = method_metrics(truth[:k], mask[:k],
                                                                    _first(fits["laplace"].predictive, k), sigma_pix)
        if classifier is not None:
            classes[method] = sample_classes(classifier, to_uint8(pred.samples), device)
            counts = class_counts(classes[method], classifier.config["n_classes"])
            methods[method]["classes"] = counts.tolist()
            spread = int(((counts.float() / counts.sum(1, keepdim=True)) >= 0.1).sum(1).gt(1).sum())
            log.info("%s, %s: the samples of %d of %d images take two or more classes (each >= 10%% of them)",
                     kind, method, spread, len(counts))
        _log_method(kind, method, methods[method])
    metrics = {"missing_fraction": 1 - mask.mean().item(), "noise_sigma": noise,
               "corrupted_mse_all": (x - truth).pow(2).mean().item(), "methods": methods}
    n_fig = min(spec["figure_images"], len(truth))
    if "mcmc" in fits:  # Laplace and NUTS side by side on the same images
        n_fig = min(n_fig, fits["mcmc"].record["n_images"])
    shown = [m for m in ("laplace", "mcmc") if m in fits]
    panels = _panels(truth, x, mask, fits["map"].predictive.mean, {m: fits[m].predictive for m in shown}, n_fig)
    if classes:  # the classifier's class of each shown sample, and the counts over all of a method's samples
        panels["labels"] = labels[:n_fig]
        for m in shown:
            panels[f"{m}/sample_classes"] = classes[m][:panels[f"{m}/samples"].shape[1], :n_fig].T.contiguous()
            panels[f"{m}/class_counts"] = class_counts(classes[m][:, :n_fig], classifier.config["n_classes"])
    return metrics, panels | {"attrs": {"methods": shown, "noise_sigma": noise}}


def _panels(truth: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, map_image: torch.Tensor,
            preds: dict[str, Predictive], n: int) -> dict:
    out = {"truth": to_uint8(truth[:n]), "corrupted": to_uint8(x[:n]), "mask": mask[:n].to(torch.uint8).cpu(),
           "map": to_uint8(map_image[:n])}
    for method, pred in preds.items():
        k = min(FIGURE_SAMPLES, len(pred.samples))
        out |= {f"{method}/samples": to_uint8(pred.samples[:k, :n].transpose(0, 1)),
                f"{method}/mean": to_uint8(pred.mean[:n]), f"{method}/std": pred.std[:n].float().cpu()}
    return out


def _write_panels(path: Path, panels: dict[str, dict]) -> None:
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = PANELS_FORMAT
        for kind, arrays in panels.items():
            group = f.create_group(kind)
            group.attrs.update(arrays.pop("attrs"))
            for name, value in arrays.items():
                group.create_dataset(name, data=value.cpu().numpy())


def posterior(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path, out: Path,
              panels_out: Path, device: str, classifier_path: Path | None = None) -> None:
    """Inpainting and denoising with MAP, Laplace and (spec["mcmc"]) NUTS posteriors -> `out` (metrics JSON) and
    `panels_out` (HDF5 images for the figure); layouts in the module docstring. spec = config eval.posterior."""
    r = load_run(model_path, flow_path, data_path, device)
    model, mspec, flow, data, dev = r.model, r.spec, r.flow, r.data, r.device
    for p in (*model.parameters(), *flow.parameters()):
        p.requires_grad_(False)  # gradients are taken with respect to the latents only
    # One thread for all of it: NUTS's tree decisions follow the last bits of every gradient, and its start (the
    # MAP) and sigma_pix carry the thread count's round-off, so only a fixed count makes the launcher not matter.
    classifier, cinfo = None, None
    if classifier_path is not None:
        with torch.random.fork_rng(devices=[]):  # building the network draws initial weights: not the global RNG
            classifier, cmeta = load_classifier(classifier_path, dev)
        if cmeta.get("task", "classes") == "classes":
            cinfo = {"file": str(classifier_path), "test_accuracy": cmeta.get("test_accuracy"),
                     "n_classes": classifier.config["n_classes"]}
        else:  # a dataset with one class: the classifier learnt rotations, which say nothing of the content
            log.info("%s: trained on the rotation task (one class); no class counts", classifier_path)
            classifier = None
    with threads.fixed():
        _posterior(spec, model, flow, data, latents_path, out, panels_out, dev, mspec.latent_dim, classifier, cinfo)


def _posterior(spec: dict, model, flow, data, latents_path: Path, out: Path, panels_out: Path, dev: torch.device,
               latent_dim: int, classifier=None, cinfo: dict | None = None) -> None:
    sigma_pix = validation_sigma(model, data, latents_path, dev)
    summary = _sigma_summary(sigma_pix)
    log.info("sigma_pix from %d validation images: median %.4f, mean %.4f, range %.4f-%.4f, %.1f%% at the floor %g",
             len(data.splits["val"]), summary["median"], summary["mean"], summary["min"], summary["max"],
             100 * summary["floored_fraction"], SIGMA_FLOOR)

    test_images, test_labels = data.split("test")
    n = min(spec["n_images"], len(test_images))
    if n < spec["n_images"]:
        log.warning("only %d test images; n_images=%d asked for", n, spec["n_images"])
    pick = torch.randperm(len(test_images), generator=torch.Generator().manual_seed(spec["seed"]))[:n]
    truth = to_float(test_images[pick]).to(dev)
    results, panels = {}, {}
    for kind in spec["corruptions"]:
        results[kind], panels[kind] = _analyse(kind, spec, model, flow, truth, test_labels[pick], sigma_pix, dev,
                                               classifier)
        if classifier is not None:
            panels[kind]["attrs"]["class_names"] = json.dumps(data.attrs["classes"])
    write_json(out, {"n_images": n, "latent_dim": latent_dim, "pixel_scale": "[-0.5, 0.5]", "spec": spec,
                     "labels": test_labels[pick].tolist(), "classifier": cinfo, "sigma_pix": summary,
                     "corruptions": results})
    _write_panels(panels_out, panels)
    log.info("wrote %s and %s (%d images, corruptions %s)", out, panels_out, n, ", ".join(spec["corruptions"]))
