"""The walking pipeline's stages: prepare, train, encode, fit_flow, evaluate, report, check-config. Each reads its
inputs, calls the library and writes its outputs atomically."""
from __future__ import annotations

import csv
import logging
import time
from functools import partial
from pathlib import Path

import h5py
import torch

from pae.data.latents import read_latents, read_params, split_with_latents, write_latents
from pae.data.masks import mcar_mask
from pae.data.sources import load_raw
from pae.data.store import open_dataset, write_dataset
from pae.eval import generate
from pae.flows import FlowSpec, fit_flow, load_flow, save_flow
from pae.flows.latent_flow import log_probs, mean_log_prob
from pae.io import PaeError, atomic_path, read_json, write_json
from pae.models import load_model
from pae.report import TABLES
from pae.train import distributed, interrupt
from pae.train.loop import TrainSpec, train

log = logging.getLogger(__name__)


def prepare(dataset: str, spec: dict, out: Path, download_root: Path) -> None:
    """Raw data -> HDF5 store (uint8 images, labels, train/val/test splits, source and checksum attributes)."""
    raw = load_raw(dataset, spec.get("source", "auto"), download_root, image_size=spec.get("image_size", 64))
    attrs = write_dataset(out, dataset, raw, val_size=spec["val_size"], split_seed=spec["split_seed"],
                          limit_train=spec.get("limit_train"), limit_test=spec.get("limit_test"))
    data = open_dataset(out)  # read back: the file opens and its checksum verifies before the stage succeeds
    log.info("wrote %s: %s from %s (%s); train %d, val %d, test %d images of shape %s; sha256 %s", out, dataset,
             attrs["source"], attrs["source_detail"], *(len(data.splits[s]) for s in ("train", "val", "test")),
             data.image_shape, attrs["sha256"])


def train_stage(spec: dict, data_path: Path, model_out: Path, history_out: Path, checkpoint: Path,
                device: str) -> None:
    interrupt.install()  # SIGTERM / SLURM's USR signals: checkpoint at the next step boundary, then stop
    info = distributed.setup(device)
    try:
        data = open_dataset(data_path)
        train(TrainSpec.from_dict(spec), data, model_out, history_out, checkpoint, info)
    finally:
        distributed.cleanup()


def _split_masks(seed: int, shape: tuple[int, int], ratio: float, idx: torch.Tensor) -> torch.Tensor:
    return mcar_mask(seed, idx.cpu(), shape, ratio)


def encode(model_path: Path, data_path: Path, out: Path, device: str, missing: dict | None = None,
           seed: int = 0) -> None:
    """Latents of every split. A model trained with missing pixels (train.missing) sees its train and val images as
    the data it had: the train items with their epoch-0 training masks, the val items with masks of the same ratio
    (seed + 1); test images are encoded whole (the evaluation stages corrupt them as they need)."""
    dev = distributed.resolve_device(device)
    model, spec, _ = load_model(model_path, dev)
    data = open_dataset(data_path)
    if tuple(data.image_shape) != tuple(spec.image_shape):
        raise PaeError(f"{data_path}: images of shape {data.image_shape}, but {model_path} expects "
                       f"{spec.image_shape}")
    ratio = (missing or {}).get("ratio", 0.0)
    mask_seeds = {"train": seed, "val": seed + 1} if ratio > 0 else {}
    splits = {}
    for name in ("train", "val", "test"):
        images, labels = data.split(name)
        mask_fn = partial(_split_masks, mask_seeds[name], tuple(spec.image_shape[1:]), ratio) \
            if name in mask_seeds else None
        if not hasattr(model, "posterior"):  # the AE: its code
            splits[name] = {"z": generate.encode_images(model, images, dev, mask_fn=mask_fn), "labels": labels}
        else:  # VAE: the encoder's posterior; VAD: its learnt table for the train split, inference for the others
            params = model.latents.detach().cpu() if model.needs_index and name == "train" else \
                generate.posterior_params(model, images, dev, mask_fn=mask_fn)
            splits[name] = {"z": model.posterior.mean(params), "labels": labels, "params": params}
        log.info("encoded %s: %d latents of size %d%s", name, len(labels), spec.latent_dim,
                 f" ({ratio:.0%} of pixels missing)" if mask_fn else "")
    write_latents(out, splits, {"model": str(model_path), "dataset_sha256": data.attrs["sha256"],
                                "missing_ratio": ratio})


def fit_flow_stage(spec: dict, latents_path: Path, out: Path, history_out: Path, device: str) -> None:
    dev = distributed.resolve_device(device)
    fspec = FlowSpec.from_dict(spec)
    train_z, _ = read_latents(latents_path, "train")
    val_z, _ = read_latents(latents_path, "val")
    t0 = time.perf_counter()
    flow, history = fit_flow(fspec, train_z, val_z, dev)
    best = max(history, key=lambda h: h["val_logp"])
    meta = {"best_epoch": best["epoch"], "val_logp": best["val_logp"], "epochs_run": len(history),
            "fit_seconds": time.perf_counter() - t0, "latent_dim": flow.dim}
    save_flow(out, flow, fspec, meta)
    write_json(history_out, {"meta": meta, "epochs": history})
    log.info("flow: best val log p(z) %.4f at epoch %d of %d", best["val_logp"], best["epoch"], len(history))


def evaluate(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path,
             metrics_dir: Path, samples_out: Path, device: str) -> None:
    """Test reconstruction error, per-sample flow log-likelihoods, samples and interpolations."""
    dev = distributed.resolve_device(device)
    model, mspec, _ = load_model(model_path, dev)
    flow, _, flow_meta = load_flow(flow_path, dev)
    data = open_dataset(data_path)
    test_images, test_z = split_with_latents(latents_path, data, "test")
    test_labels = data.split("test")[1]

    errs = generate.reconstruction_errors(model, test_images, test_z, dev, spec["batch_size"])
    logp = log_probs(flow, test_z)
    recon = {"test_mse_per_pixel": errs.double().mean().item(), "test_mse_std": errs.double().std().item(),
             "n_test": len(errs), "pixel_scale": "[-0.5, 0.5]"}
    finite = torch.isfinite(logp)
    flow_metrics = {"test_logp_mean": logp[finite].double().mean().item(),
                    "test_logp_median": logp[finite].double().median().item(),
                    "test_logp_nonfinite": int((~finite).sum()), "val_logp": flow_meta.get("val_logp"),
                    "train_logp": mean_log_prob(flow, read_latents(latents_path, "train")[0].to(dev)),
                    "latent_dim": flow.dim}
    scores = {"label": test_labels, "recon_mse": errs, "flow_logp_z": logp}
    params = read_params(latents_path, "test")
    if params is not None:  # VAE, beta-VAE, VAD: the test ELBO from the posterior the encode stage found
        terms = generate.elbo(model, test_images, params, dev, samples=spec["elbo_samples"])
        means = {k: v.double().mean().item() for k, v in terms.items()}
        write_json(metrics_dir / "elbo.json", {
            "test_elbo": means["elbo"], "test_nll": means["nll"], "test_kl": means["kl"], "units": "nats per image",
            "test_elbo_per_pixel": means["elbo"] / test_images[0].numel(), "samples": spec["elbo_samples"],
            "likelihood": mspec.likelihood.kind, "posterior": mspec.posterior})
        scores["elbo"] = terms["elbo"]
        log.info("test ELBO %.2f nats per image (NLL %.2f, KL %.2f)", means["elbo"], means["nll"], means["kl"])
    write_json(metrics_dir / "recon.json", recon)
    write_json(metrics_dir / "flow.json", flow_metrics)
    with atomic_path(metrics_dir / "test_scores.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", *scores])
        for i, row in enumerate(zip(*(v.tolist() for v in scores.values()))):
            w.writerow([i, *(f"{v:.6g}" if isinstance(v, float) else v for v in row)])
    log.info("test recon MSE %.5f per pixel; test log p(z) mean %.3f", recon["test_mse_per_pixel"],
             flow_metrics["test_logp_mean"])

    n, pairs, steps = spec["n_samples"], spec["n_interpolations"], spec["interp_steps"]
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(test_images), generator=g)
    shown = test_images[pick[:n]]
    a, b = pick[n:n + pairs], pick[n + pairs:n + 2 * pairs]
    with atomic_path(samples_out, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f["pae"] = generate.pae_samples(model, flow, n, spec["temperature"], dev).numpy()
        f["prior"] = generate.prior_samples(model, mspec.latent_dim, n, dev).numpy()
        f["originals"] = shown.numpy()
        f["reconstructions"] = generate.decode_to_uint8(model, test_z[pick[:n]], dev).numpy()
        f["interpolations"] = generate.interpolations(model, test_z[a], test_z[b], steps, dev).numpy()
        f.attrs["temperature"] = spec["temperature"]


def check_config(path: Path) -> str:
    """The config file with every default filled in, as YAML (raises PaeError naming a bad key)."""
    import yaml

    from pae.config import load
    return yaml.safe_dump(load(path), sort_keys=False)




def report(manifest: dict, tables_dir: Path, figures_dir: Path, report_path: Path | None = None) -> None:
    """The experiment's tables (pae/report/tables.py, summary.py), figures (pae/report/figures.py) and report.md
    (pae/report/markdown.py). Matched-imputation runs (trained with missing pixels for the imputation sweep) appear
    in impute.csv only."""
    from pae.report import figures, markdown, summary, tables

    runs = manifest["runs"]
    main = [r for r in runs if not r.get("matched_imputation")]
    refs = summary.load_references()
    rows = {"runs": tables.runs_table(main), "samplers": tables.samplers_table(main), "ood": tables.ood_table(main),
            "posterior": tables.posterior_table(main), "impute": tables.impute_table(runs)}
    rows["table1"] = summary.table1(rows["runs"], rows["samplers"], refs)
    rows["table2"] = summary.table2(rows["ood"], refs)
    for name in TABLES:
        tables.write_csv(Path(tables_dir) / f"{name}.csv", rows[name])
    figures_dir = Path(figures_dir)
    figures.write_run_figures(main, figures_dir)
    for run in main:
        figures.roc_figure(run, figures_dir / f"{run['run']}_ood_roc.png")
        figures.posterior_figure(run, figures_dir / f"{run['run']}_posterior.png")
    for dataset in dict.fromkeys(r["dataset"] for r in main):
        figures.samples_figure(main, dataset, figures_dir / f"samples_{dataset}.png")
    figures.temperature_figure(rows["samplers"], figures_dir / "fd_vs_temperature.png")
    figures.latent_figure(rows["table1"], figures_dir / "fd_vs_latent.png")
    figures.impute_figure(rows["impute"], figures_dir / "impute_mse_vs_ratio.png")
    if report_path is not None:
        markdown.write_report(report_path, manifest.get("experiment", Path(report_path).parent.name), rows, refs,
                              figures_dir, _fid_note(main), manifest.get("configfiles", []))
    log.info("wrote %s (%s) for %d runs, figures in %s%s", tables_dir, ", ".join(f"{t}.csv" for t in TABLES),
             len(main), figures_dir, f", {report_path}" if report_path else "")


def _fid_note(runs: list[dict]) -> str:
    """What report.md says about FID: computed, or why not (from fid.json)."""
    reasons = {read_json(r["files"]["fid"]).get("fid_unavailable") for r in runs}
    reasons.discard(None)
    if not reasons:
        return "FID was computed for every run."
    return "FID was not computed: " + "; ".join(sorted(str(x) for x in reasons))


def export_report(report_path: Path, dest: Path) -> list[Path]:
    """Copy report.md with its tables and the figures it links to (the committed example report)."""
    from pae.report import markdown

    return markdown.export(report_path, dest)
