"""Paper-style summaries of an experiment, averaged over seeds (results/{exp}/tables/):
  table1.csv   Table 1 of the PAE paper: per dataset x model x latent size, reconstruction MSE and the distance of
               samples (N(0, I) through the decoder; PAE flow at T = 1 and at its best T) and of reconstructions to
               the test images, in domain-classifier features (domain FD) and, when Inception was run, FID (fid_n
               images per set) and the min-max FID (each image stretched to the full range, the authors' protocol)
  table2.csv   Table 2: OoD AUROC per dataset x model x latent size x OoD set x score

Each value is the mean over seeds with a 95% interval: Student's t over the seeds when there are several, else the
one run's own bootstrap interval where it has one (the column `interval` says which). Beside it, {name}_images_low /
_high: the runs' own intervals over images (bootstrap), averaged over the seeds, so that a table with several seeds
shows both the spread between seeds and the sampling noise of one run's images. With one seed the two coincide.

Reference values (pae/report/references.yaml) are joined in where one matches, as ref_{metric} (the value),
ref_{metric}_source (where it was read: the paper, the authors' notebook and its cell, or a third party's listing)
and ref_{metric}_verdict (`verdict`: met, better, missed or not comparable).
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
SIGNED = ("_kid", "nll", "logp", "elbo")  # parts of the names of metrics that can be below 0
# Which way a metric improves, by the start of its name (a reference's metric or one of our columns).
LOWER_IS_BETTER = ("fid", "domain_fd", "recon_mse", "fpr95", "mse")
HIGHER_IS_BETTER = ("auroc", "aupr")
# Metrics whose value depends on the number of images per set and on how the images enter the network (FID is biased
# upwards at small n, and its preprocessing moves it by more than its interval): a reference compares only at the same
# n and protocol.
N_DEPENDENT = ("fid",)


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
    """`metric` over the rows (seeds) -> {name, name_low, name_high} (mean, 95% interval), {name_min, name_max}
    (the range over seeds, what the figures shade) and {name_images_low, name_images_high} (the runs' own intervals
    over images, averaged; None where a run has none); rows lacking the metric are skipped."""
    name = out_name or metric
    have = [r for r in rows if r.get(metric) is not None and np.isfinite(r[metric])]
    if not have:
        return {name: None, f"{name}_low": None, f"{name}_high": None, f"{name}_min": None, f"{name}_max": None,
                f"{name}_images_low": None, f"{name}_images_high": None}
    lows = [r.get(f"{metric}_low") for r in have]
    highs = [r.get(f"{metric}_high") for r in have]
    mean, low, high, _ = interval([r[metric] for r in have], lows, highs)
    # A t interval over few seeds can leave the metric's range: clipped to it (distances, errors and rates are >= 0;
    # rates and probabilities <= 1; the KID, an unbiased estimate, and log-likelihoods in nats can be negative).
    top = 1.0 if metric.startswith(PROBABILITIES) or "_precision" in metric or "_recall" in metric else float("inf")
    bottom = -float("inf") if any(s in metric for s in SIGNED) else 0.0
    values = [r[metric] for r in have]
    # the runs' own intervals over images, averaged over the seeds (none where a run has none)
    own = all(lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi) for lo, hi in zip(lows, highs))
    return {name: mean, f"{name}_low": min(max(low, bottom), top), f"{name}_high": min(max(high, bottom), top),
            f"{name}_min": min(values), f"{name}_max": max(values),
            f"{name}_images_low": float(np.mean(lows)) if own else None,
            f"{name}_images_high": float(np.mean(highs)) if own else None}


PREPROCESSINGS = ("pytorch", "tensorflow")  # eval.fid.preprocessing
SCALINGS = {"fid": "uint8", "fid_minmax": "minmax"}  # eval.fid.scalings, by the distance they give


def fid_protocol(preprocessing: str | None, distance: str) -> str | None:
    """How the images of an FID entered Inception, as "preprocessing, scaling" (eval.fid.preprocessing and the
    scaling of eval.fid.scalings that gives this distance: fid = uint8, fid_minmax = minmax); None where unrecorded."""
    return None if not preprocessing else f"{preprocessing}, {SCALINGS[distance]}"


def better(metric: str) -> str:
    """"lower" or "higher": which way `metric` (a reference's metric or one of our columns) improves."""
    if metric.startswith(LOWER_IS_BETTER):
        return "lower"
    if metric.startswith(HIGHER_IS_BETTER):
        return "higher"
    raise PaeError(f"metric {metric!r}: unknown direction (lower is better for names starting with "
                   f"{', '.join(LOWER_IS_BETTER)}; higher for {', '.join(HIGHER_IS_BETTER)})")


def load_references(path: str | Path = REFERENCES_PATH) -> list[dict]:
    """The reference values: a list of {table, dataset, model, latent_dim, metric, value, source, cited_as, ...}
    (the keys: the file's header). Each entry is checked, and a wrong one named with its index and key."""
    try:
        refs = yaml.safe_load(Path(path).read_text())["references"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise PaeError(f"{path}: expected a YAML mapping with a `references` list ({e})") from None
    if not isinstance(refs, list):
        raise PaeError(f"{path}: expected a YAML mapping with a `references` list, got {type(refs).__name__}")
    required = {"table", "dataset", "model", "latent_dim", "metric", "value", "source", "cited_as"}
    for i, ref in enumerate(refs):
        where = f"{path}: references[{i}]"
        if not isinstance(ref, dict) or required - set(ref):
            raise PaeError(f"{where} needs the keys {sorted(required)}")
        if ref["table"] not in ("table1", "table2"):
            raise PaeError(f"{where}: table {ref['table']!r} is not table1 or table2")
        if ref["table"] == "table2" and {"ood_set", "score"} - set(ref):
            raise PaeError(f"{where}: a table2 reference needs the keys ood_set and score")
        if isinstance(ref["value"], bool) or not isinstance(ref["value"], (int, float)):
            raise PaeError(f"{where}: value {ref['value']!r} is not a number")
        try:
            better(ref["metric"])
        except PaeError as e:
            raise PaeError(f"{where}: {e}") from None
        if ref["metric"].startswith(N_DEPENDENT):
            if {"n", "protocol"} - set(ref):
                raise PaeError(f"{where}: an FID reference needs the keys n (images per set) and protocol "
                               "(\"preprocessing, scaling\"), each null where the source does not state it")
            if ref["n"] is not None and (isinstance(ref["n"], bool) or not isinstance(ref["n"], int) or ref["n"] < 2):
                raise PaeError(f"{where}: n {ref['n']!r} is not a number of images (an integer >= 2, or null)")
            # the scaling is the one of the distance the metric names (fid_minmax...: minmax; fid...: uint8)
            distance = _distance(ref["metric"] + "_") or "fid"
            known = [fid_protocol(p, distance) for p in PREPROCESSINGS]
            if ref["protocol"] is not None and ref["protocol"] not in known:
                raise PaeError(f"{where}: protocol {ref['protocol']!r} of metric {ref['metric']} is not one of {known} "
                               "(or null)")
    return refs


def reference(refs: list[dict], table: str, metric: str, **where) -> dict | None:
    """The reference value of `table`/`metric` at these coordinates (keys absent from a reference match anything)."""
    for ref in refs:
        if ref["table"] == table and ref["metric"] == metric and all(
                ref.get(k) in (None, v) for k, v in where.items()):
            return ref
    return None


def _gap(x: float) -> str:
    return f"{x:.3g}"


def _comparable(ref: dict, n: int | None, protocol: str | None) -> str | None:
    """Why our value at (n images per set, protocol) does not compare with `ref`, or None when it does. Only metrics
    that depend on n and protocol (N_DEPENDENT: FID) can fail."""
    if not ref["metric"].startswith(N_DEPENDENT):
        return None
    unstated = [k for k in ("n", "protocol") if ref.get(k) is None]
    reasons = []
    if unstated:
        ours = "; ".join(x for x in (n is not None and f"n = {n:,}", protocol) if x)
        reasons.append(f"the reference states no {' or '.join(unstated)}" + (f"; ours: {ours}" if ours else ""))
    if ref.get("n") is not None:
        if n is None:
            reasons.append(f"our n is not one recorded number (the reference's: {ref['n']:,})")
        elif int(n) != ref["n"]:
            reasons.append(f"n = {int(n):,} vs {ref['n']:,}")
    if ref.get("protocol") is not None:
        if protocol is None:
            reasons.append(f"our protocol is not recorded (the reference's: {ref['protocol']})")
        elif protocol != ref["protocol"]:
            reasons.append(f"protocol {protocol} vs {ref['protocol']}")
    return "; ".join(reasons) or None


def verdict(ref: dict, value: float | None, low: float | None = None, high: float | None = None,
            n: int | None = None, protocol: str | None = None) -> str:
    """How our value (with its 95% interval [low, high], from n images per set under `protocol` where that matters)
    stands against a reference value:
      "met (interval covers it)"        the interval holds the reference;
      "better by X"                     the interval excludes it on the better side (lower FID / MSE, higher AUROC);
      "missed by X"                     it excludes it on the worse side;
      "no interval: better|worse by X (P%)" / "no interval: equal"  we have a value but no interval;
      "not comparable (why)"            another n or protocol, or a reference that states neither (FID);
      "no value of ours"                this experiment has none.
    X = |ours - reference|."""
    if value is None or not np.isfinite(value):
        return "no value of ours"
    why = _comparable(ref, n, protocol)
    if why:
        return f"not comparable ({why})"
    target, lower = ref["value"], better(ref["metric"]) == "lower"
    gap = abs(value - target)
    ours_better = value < target if lower else value > target
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        if value == target:
            return "no interval: equal"
        rel = f" ({100 * gap / abs(target):.2g}%)" if target else ""
        return f"no interval: {'better' if ours_better else 'worse'} by {_gap(gap)}{rel}"
    if low <= target <= high:
        return "met (interval covers it)"
    return f"{'better' if ours_better else 'missed'} by {_gap(gap)}"


# A reference's metric -> our column holding the value it compares with (others are named as their column, e.g.
# fid_minmax_prior); the distance whose n and protocol apply, for FID metrics.
OURS_COLUMN = {"fid": "fid_pae_T1", "fid_minmax": "fid_minmax_pae_T1"}
# Table 1's reference columns, present in every row (None where no reference matches); other references at a row's
# coordinates add their own.
TABLE1_REFERENCES = ("fid", "fid_minmax", "recon_mse")


def ours_column(metric: str) -> str:
    return OURS_COLUMN.get(metric, metric)


def _distance(column: str) -> str | None:
    """The distance (fid, fid_minmax) a table1 column belongs to, or None (domain FD, MSE)."""
    for d in sorted(SCALINGS, key=len, reverse=True):
        if column.startswith(d + "_"):
            return d
    return None


def _one_n(fid_n) -> int | None:
    """table1's fid_n (an int, or the seeds' distinct values joined by commas) as one number, None if not one."""
    try:
        return int(fid_n)
    except (TypeError, ValueError):
        return None


def table1_verdict(ref: dict, row: dict) -> str:
    """`verdict` of a table1 reference against a table1 row (its value, interval, FID n and protocol)."""
    column = ours_column(ref["metric"])
    distance = _distance(column)
    n = _one_n(row.get("fid_n")) if distance else None
    protocol = row.get(f"{distance}_protocol") if distance else None
    if distance and ref.get("protocol") is None:
        # A reference of unknown protocol is set beside none of ours in particular: the verdict names all of them.
        protocol = " and ".join(p for p in (row.get("fid_protocol"), row.get("fid_minmax_protocol")) if p) or None
    return verdict(ref, row.get(column), row.get(f"{column}_low"), row.get(f"{column}_high"), n, protocol)


def table2_verdict(ref: dict, row: dict) -> str:
    """`verdict` of a table2 (AUROC) reference against a table2 row."""
    return verdict(ref, row.get(ref["metric"]), row.get(f"{ref['metric']}_low"), row.get(f"{ref['metric']}_high"))


def _join_references(row: dict, refs: list[dict], table: str, metrics: tuple[str, ...], judge, **where) -> None:
    """ref_{metric}, ref_{metric}_source and ref_{metric}_verdict for `metrics` (None where no reference) and for any
    other reference of `table` at these coordinates."""
    matching = [r for r in refs if r["table"] == table and all(r.get(k) in (None, v) for k, v in where.items())]
    for metric in dict.fromkeys([*metrics, *(r["metric"] for r in matching)]):
        ref = next((r for r in matching if r["metric"] == metric), None)
        row.update({f"ref_{metric}": ref and ref["value"], f"ref_{metric}_source": ref and ref["cited_as"],
                    f"ref_{metric}_verdict": ref and judge(ref, row)})


def _per_run_quality(runs_rows: list[dict], samplers_rows: list[dict]) -> list[dict]:
    """One row per run: recon MSE (with its interval over images and its n) and, for domain_fd and fid, each
    sampler's value with its bootstrap bounds; the images per set of the FIDs (fid_n) and of the domain FD
    (domain_fd_n), and the FIDs' preprocessing."""
    by_run: dict[str, dict] = {r["run"]: {k: r.get(k) for k in ("run", *GROUP, "seed", "recon_mse", "recon_mse_low",
                                                                "recon_mse_high", "recon_n", "fid_n",
                                                                "fid_preprocessing")}
                               for r in runs_rows}
    for s in samplers_rows:
        row = by_run.get(s["run"])
        if row is None:
            continue
        sizes = [s[k] for k in ("n_generated", "n_real") if s.get(k) is not None]
        if sizes:  # the images per set of the domain FD: the smallest set of the run
            row["domain_fd_n"] = min(sizes + ([row["domain_fd_n"]] if row.get("domain_fd_n") else []))
        name = {"prior": "prior", "reconstructions": "recon", "train_vs_test": "floor"}.get(s["set"])
        if s["set"] == "pae_T1.0":
            name = "pae_T1"
        for metric in DISTANCES:
            if name:
                row.update({f"{metric}_{name}": s.get(metric), f"{metric}_{name}_low": s.get(f"{metric}_low"),
                            f"{metric}_{name}_high": s.get(f"{metric}_high")})
                if metric in SCALINGS:
                    row.update({f"{metric}_{c}_{name}": s.get(f"{metric}_{c}") for c in COVERAGE})
            if s["temperature"] is not None and s.get(metric) is not None:
                best = row.get(f"{metric}_pae_best")
                if best is None or s[metric] < best:
                    row.update({f"{metric}_pae_best": s[metric], f"{metric}_pae_best_low": s[f"{metric}_low"],
                                f"{metric}_pae_best_high": s[f"{metric}_high"],
                                f"{metric}_pae_best_T": s["temperature"]})
    return list(by_run.values())


QUALITY_SETS = ("pae_T1", "pae_best", "prior", "recon", "floor")
COVERAGE = ("kid", "precision", "recall")  # beside each FID, in its features (fid.json kid, precision_recall)


def _joined(values) -> str | None:
    """The distinct values (over seeds) joined by commas, None where there is none; whole floats (a count read back
    from a CSV) as integers."""
    distinct = {int(v) if isinstance(v, float) and v.is_integer() else v for v in values if v not in (None, "")}
    return ",".join(map(str, sorted(distinct))) or None


def table1(runs_rows: list[dict], samplers_rows: list[dict], refs: list[dict]) -> list[dict]:
    """Table 1 style rows (see the module docstring). Images: recon_n (the test images of the MSE), fid_n (per set,
    every FID; FID depends on n) and domain_fd_n; fid_protocol / fid_minmax_protocol: how the images entered
    Inception ("preprocessing, scaling"). Beside each FID, {fid|fid_minmax}_{kid|precision|recall}_{set}: the KID,
    precision and recall in its features. References: ref_fid (PAE samples at T = 1), ref_fid_minmax, ref_recon_mse
    and any other at the row's
    coordinates, each with its source and verdict (`verdict`)."""
    rows = []
    for (dataset, model, z), rs in _groups(_per_run_quality(runs_rows, samplers_rows), GROUP).items():
        row = {"dataset": dataset, "model": model, "latent_dim": z, "n_seeds": len(rs),
               "seeds": _joined(r.get("seed") for r in rs), **_summarise(rs, "recon_mse")}
        row["recon_n"] = _joined(r.get("recon_n") for r in rs)  # test images behind the MSE
        row["fid_n"] = _joined(r.get("fid_n") for r in rs)  # images per set behind each FID (FID depends on n)
        row["domain_fd_n"] = _joined(r.get("domain_fd_n") for r in rs)
        for metric in DISTANCES:
            for name in QUALITY_SETS:
                row.update(_summarise(rs, f"{metric}_{name}"))
                if metric in SCALINGS and name != "pae_best":
                    for c in COVERAGE:
                        row.update(_summarise(rs, f"{metric}_{c}_{name}"))
            temps = [r[f"{metric}_pae_best_T"] for r in rs if r.get(f"{metric}_pae_best_T") is not None]
            row[f"{metric}_pae_best_T"] = ",".join(f"{t:g}" for t in sorted(set(temps))) or None
            if metric in SCALINGS:
                have = [r for r in rs if r.get(f"{metric}_pae_T1") is not None or r.get(f"{metric}_prior") is not None]
                row[f"{metric}_protocol"] = _joined(fid_protocol(r.get("fid_preprocessing"), metric) for r in have)
        row["interval"] = _interval_kind(len(rs), "one seed: over images (distances: bootstrap; MSE: 1.96 se, "
                                                  "none where recon.json has no spread)")
        _join_references(row, refs, "table1", TABLE1_REFERENCES, table1_verdict, dataset=dataset, model=model,
                         latent_dim=z)
        rows.append(row)
    return rows


def table2(ood_rows: list[dict], refs: list[dict]) -> list[dict]:
    """Table 2 style rows: AUROC (and AUPR, FPR95) per dataset x model x latent x OoD set x score over seeds, the
    images on each side (n_in, n_out) and what the OoD set is (ood_data), and the reference AUROC (ref_auroc, its
    source and verdict) where one matches."""
    rows = []
    for (dataset, model, z, ood_set, score), rs in _groups(ood_rows, (*GROUP, "ood_set", "score")).items():
        row = {"dataset": dataset, "model": model, "latent_dim": z, "ood_set": ood_set, "score": score,
               "n_seeds": len(rs), "seeds": _joined(r.get("seed") for r in rs), "n_in": rs[0]["n_in"],
               "n_out": rs[0]["n_out"], "ood_data": rs[0].get("ood_data")}
        for metric in ("auroc", "aupr", "fpr95"):
            row.update(_summarise(rs, metric))
        row["interval"] = _interval_kind(len(rs), "one seed: bootstrap over images")
        _join_references(row, refs, "table2", ("auroc",), table2_verdict, dataset=dataset, model=model,
                         latent_dim=z, ood_set=ood_set, score=score)
        rows.append(row)
    return rows


TABLE2_COLUMNS = ("dataset", "model", "latent_dim", "ood_set", "score", "n_seeds", "seeds", "n_in", "n_out",
                  "ood_data", *(f"{m}{s}" for m in ("auroc", "aupr", "fpr95")
                                for s in ("", "_low", "_high", "_min", "_max", "_images_low", "_images_high")),
                  "interval", "ref_auroc", "ref_auroc_source", "ref_auroc_verdict")  # its header when it has no rows


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
