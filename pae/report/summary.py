"""Paper-style summaries of an experiment, averaged over seeds (results/{exp}/tables/):
  table1.csv   Table 1 of the PAE paper: per dataset x model x latent size, reconstruction MSE and the distance of
               samples (N(0, I) through the decoder; PAE flow at T = 1 and at its best T) and of reconstructions to
               the test images, in domain-classifier features (domain FD) and, when Inception was run, FID (fid_n
               images per set) and the min-max FID (each image stretched to the full range, the authors' protocol)
  table2.csv   Table 2: OoD AUROC per dataset x model x latent size x OoD set x score

Each value is the mean over seeds with a 95% interval: Student's t over the seeds when there are several, else the
one run's own bootstrap interval where it has one (the column `interval` says which). The paper's reference values
(pae/report/references.yaml) are joined in where one matches.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from pae.io import PaeError

REFERENCES_PATH = Path(__file__).with_name("references.yaml")
GROUP = ("dataset", "model", "latent_dim")
DISTANCES = ("domain_fd", "fid", "fid_minmax")  # the distances of fid.json: domain FD, FID, min-max FID
PROBABILITIES = ("auroc", "aupr", "fpr95", "coverage")  # metrics in [0, 1]


def interval(values: list[float], lows: list | None = None, highs: list | None = None, single: str = "bootstrap"
             ) -> tuple[float, float, float, str]:
    """Mean and 95% interval of one metric over seeds: Student's t with several seeds, else the single run's own
    interval (lows/highs, described by `single`) when given, else none (NaN bounds)."""
    v = np.asarray(values, float)
    if len(v) > 1:
        half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
        return float(v.mean()), float(v.mean() - half), float(v.mean() + half), f"t95 over {len(v)} seeds"
    low, high = (lows or [None])[0], (highs or [None])[0]
    if low is None or high is None:
        return float(v[0]), float("nan"), float("nan"), "one seed"
    return float(v[0]), float(low), float(high), f"one seed, {single}"


def _interval_kind(n_seeds: int, single: str) -> str:
    return f"t95 over {n_seeds} seeds" if n_seeds > 1 else single


def _groups(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for row in rows:
        out.setdefault(tuple(row[k] for k in keys), []).append(row)
    # None (e.g. the temperature of a non-flow sampler) sorts last among numbers
    return dict(sorted(out.items(), key=lambda kv: tuple((x is None, 0 if x is None else x) for x in kv[0])))


def _summarise(rows: list[dict], metric: str, out_name: str | None = None) -> dict:
    """`metric` over the rows (seeds) -> {name, name_low, name_high} (mean, 95% interval) and {name_min, name_max}
    (the range over seeds, what the figures shade); rows lacking it are skipped."""
    name = out_name or metric
    have = [r for r in rows if r.get(metric) is not None and np.isfinite(r[metric])]
    if not have:
        return {name: None, f"{name}_low": None, f"{name}_high": None, f"{name}_min": None, f"{name}_max": None}
    lows = [r.get(f"{metric}_low") for r in have]
    highs = [r.get(f"{metric}_high") for r in have]
    mean, low, high, _ = interval([r[metric] for r in have], lows, highs)
    # A t interval over few seeds can leave the metric's range: clipped to it (every metric here is >= 0; rates
    # and probabilities are <= 1).
    top = 1.0 if metric.startswith(PROBABILITIES) else float("inf")
    values = [r[metric] for r in have]
    return {name: mean, f"{name}_low": min(max(low, 0.0), top), f"{name}_high": min(max(high, 0.0), top),
            f"{name}_min": min(values), f"{name}_max": max(values)}


def load_references(path: str | Path = REFERENCES_PATH) -> list[dict]:
    """The papers' reference values: a list of {table, dataset, model, latent_dim, metric, value, source, ...}."""
    try:
        refs = yaml.safe_load(Path(path).read_text())["references"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise PaeError(f"{path}: expected a YAML mapping with a `references` list ({e})") from None
    required = {"table", "dataset", "model", "latent_dim", "metric", "value", "source"}
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or required - set(ref):
            raise PaeError(f"{path}: references[{i}] needs the keys {sorted(required)}")
    return refs


def reference(refs: list[dict], table: str, metric: str, **where) -> dict | None:
    """The reference value of `table`/`metric` at these coordinates (keys absent from a reference match anything)."""
    for ref in refs:
        if ref["table"] == table and ref["metric"] == metric and all(
                ref.get(k) in (None, v) for k, v in where.items()):
            return ref
    return None


def _per_run_quality(runs_rows: list[dict], samplers_rows: list[dict]) -> list[dict]:
    """One row per run: recon MSE and, for domain_fd and fid, each sampler's value with its bootstrap bounds."""
    by_run: dict[str, dict] = {r["run"]: {k: r.get(k) for k in ("run", *GROUP, "seed", "recon_mse", "fid_n")}
                               for r in runs_rows}
    for s in samplers_rows:
        row = by_run.get(s["run"])
        if row is None:
            continue
        name = {"prior": "prior", "reconstructions": "recon", "train_vs_test": "floor"}.get(s["set"])
        if s["set"] == "pae_T1.0":
            name = "pae_T1"
        for metric in DISTANCES:
            if name:
                row.update({f"{metric}_{name}": s.get(metric), f"{metric}_{name}_low": s.get(f"{metric}_low"),
                            f"{metric}_{name}_high": s.get(f"{metric}_high")})
            if s["temperature"] is not None and s.get(metric) is not None:
                best = row.get(f"{metric}_pae_best")
                if best is None or s[metric] < best:
                    row.update({f"{metric}_pae_best": s[metric], f"{metric}_pae_best_low": s[f"{metric}_low"],
                                f"{metric}_pae_best_high": s[f"{metric}_high"],
                                f"{metric}_pae_best_T": s["temperature"]})
    return list(by_run.values())


QUALITY_SETS = ("pae_T1", "pae_best", "prior", "recon", "floor")


def table1(runs_rows: list[dict], samplers_rows: list[dict], refs: list[dict]) -> list[dict]:
    """Table 1 style rows (see the module docstring); `paper_fid` / `paper_fid_minmax` are reference FIDs of the PAE
    sampler (pytorch-fid's protocol / the authors' min-max protocol), `paper_recon_mse` the reference error."""
    rows = []
    for (dataset, model, z), rs in _groups(_per_run_quality(runs_rows, samplers_rows), GROUP).items():
        row = {"dataset": dataset, "model": model, "latent_dim": z, "n_seeds": len(rs),
               **_summarise(rs, "recon_mse")}
        fid_n = sorted({r["fid_n"] for r in rs if r.get("fid_n")})
        row["fid_n"] = ",".join(map(str, fid_n)) or None  # images per set behind each FID (FID depends on n)
        for metric in DISTANCES:
            for name in QUALITY_SETS:
                row.update(_summarise(rs, f"{metric}_{name}"))
            temps = [r[f"{metric}_pae_best_T"] for r in rs if r.get(f"{metric}_pae_best_T") is not None]
            row[f"{metric}_pae_best_T"] = ",".join(f"{t:g}" for t in sorted(set(temps))) or None
        row["interval"] = _interval_kind(len(rs), "one seed: bootstrap (distances), none (MSE)")
        for ref_metric in ("fid", "fid_minmax", "recon_mse"):
            ref = reference(refs, "table1", ref_metric, dataset=dataset, model=model, latent_dim=z)
            row[f"paper_{ref_metric}"] = ref and ref["value"]
        rows.append(row)
    return rows


def table2(ood_rows: list[dict], refs: list[dict]) -> list[dict]:
    """Table 2 style rows: AUROC (and AUPR, FPR95) per dataset x model x latent x OoD set x score over seeds."""
    rows = []
    for (dataset, model, z, ood_set, score), rs in _groups(ood_rows, (*GROUP, "ood_set", "score")).items():
        row = {"dataset": dataset, "model": model, "latent_dim": z, "ood_set": ood_set, "score": score,
               "n_seeds": len(rs), "n_in": rs[0]["n_in"], "n_out": rs[0]["n_out"]}
        for metric in ("auroc", "aupr", "fpr95"):
            row.update(_summarise(rs, metric))
        row["interval"] = _interval_kind(len(rs), "one seed: bootstrap")
        ref = reference(refs, "table2", "auroc", dataset=dataset, model=model, latent_dim=z, ood_set=ood_set,
                        score=score)
        row["paper_auroc"] = ref and ref["value"]
        rows.append(row)
    return rows


def over_seeds(rows: list[dict], keys: tuple[str, ...], metrics: tuple[str, ...]) -> list[dict]:
    """Rows grouped by `keys`, each metric averaged over the group (seeds) with its interval (for the figures and
    the posterior summary)."""
    out = []
    for key, rs in _groups(rows, keys).items():
        row = {**dict(zip(keys, key)), "n_seeds": len(rs)}
        for metric in metrics:
            row.update(_summarise(rs, metric))
        out.append(row)
    return out
