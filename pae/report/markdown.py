"""results/{exp}/report.md: the experiment's paper-style tables (pae/report/summary.py) and figures put together, with
the reference values at its runs' coordinates beside ours, each with its verdict (exports: pae/report/export.py)."""
from __future__ import annotations

import math
import os
import re
import statistics
from pathlib import Path

from pae.io import atomic_path
from pae.report import summary
from pae.report.style import is_pae, model_label
from pae.report.summary import GROUP, over_seeds

FIGURE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def _num(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _count(v) -> str:
    """An image count with thousands separators ("10,000"); a comma-joined list of counts (seeds that differ) as
    they are; "-" for none."""
    if v in (None, ""):
        return "-"
    try:
        return f"{int(v):,}"
    except (TypeError, ValueError):
        return str(v)


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _cell(row: dict, name: str, digits: int = 4) -> str:
    """value [low, high] (the interval only where there is one); with several seeds, the interval is over seeds and
    the runs' own interval over images follows, "(images: [low, high])", where they have one."""
    out = _value_and_interval(row, name, digits)
    if out is None:
        return "-"
    ilow, ihigh = row.get(f"{name}_images_low"), row.get(f"{name}_images_high")
    if (row.get("n_seeds") or 1) > 1 and _finite(row.get(f"{name}_low"), row.get(f"{name}_high"), ilow, ihigh):
        out += f" (images: [{_num(ilow, digits)}, {_num(ihigh, digits)}])"
    return out


def _value_and_interval(row: dict, key: str, digits: int) -> str | None:
    """"value [low, high]", the interval only where the row has one; None where the row has no value."""
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if value is None:
        return None
    return f"{_num(value, digits)} [{_num(low, digits)}, {_num(high, digits)}]" if _finite(low, high) \
        else _num(value, digits)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _figure(figures: Path, name: str, alt: str) -> str:
    """A Markdown image link to figures/name when the report stage drew it (paths relative to report.md)."""
    return f"![{alt}]({figures.name}/{name})" if (figures / name).exists() else f"({alt}: not drawn)"


def _pages(figures: Path, stem: str, marker: str) -> list[str]:
    """The figure `stem`.png, or where it was drawn in pages, "{stem}_{marker}{first}-{last}.png" (the samples by
    latent size, a posterior by image), those in order; exactly these names (not "{stem}_other_{marker}...")."""
    page = re.compile(rf"{re.escape(stem)}_{marker}(\d+)-(\d+)")
    paged = sorted((p for p in figures.glob(f"{stem}_{marker}*-*.png") if page.fullmatch(p.stem)),
                   key=lambda p: int(page.fullmatch(p.stem)[1]))
    return [p.name for p in paged] or [f"{stem}.png"]


def _showcase(runs_rows: list[dict]) -> list[dict]:
    """One run per dataset x model for the per-run figures: the largest latent size, the lowest seed."""
    best: dict[tuple, dict] = {}
    for r in runs_rows:
        key = (r["dataset"], r["model"])
        if key not in best or (r["latent_dim"], -r["seed"]) > (best[key]["latent_dim"], -best[key]["seed"]):
            best[key] = r
    return [best[k] for k in sorted(best)]


FID_PROTOCOL_WORDS = {"uint8": "pixels as they are", "minmax": "each image min-max stretched"}


def _protocol_words(protocol: str | None) -> str:
    """"tensorflow, minmax" -> "tensorflow, minmax (each image min-max stretched)"; "-" where unrecorded."""
    if not protocol:
        return "-"
    scaling = protocol.rsplit(", ", 1)[-1]
    return f"{protocol} ({FID_PROTOCOL_WORDS[scaling]})" if scaling in FID_PROTOCOL_WORDS else protocol


def _quality_section(t1: list[dict], samplers_rows: list[dict], runs_rows: list[dict], fid_note: str,
                     figures: Path) -> list[str]:
    rows = []
    for r in t1:
        rows.append([r["dataset"], r["model"], str(r["latent_dim"]), str(r["n_seeds"]), _count(r.get("recon_n")),
                     _cell(r, "recon_mse", 3), _count(r.get("domain_fd_n")), _cell(r, "domain_fd_pae_T1", 3),
                     f"{_cell(r, 'domain_fd_pae_best', 3)} (T={r['domain_fd_pae_best_T']})",
                     _cell(r, "domain_fd_prior", 3), _cell(r, "domain_fd_recon", 3), _cell(r, "domain_fd_floor", 2)])
    fid_rows = []
    for r in t1:
        for distance in ("fid", "fid_minmax"):
            if all(r.get(f"{distance}_{s}") is None for s in ("pae_T1", "prior", "recon", "floor")):
                continue
            fid_rows.append([r["dataset"], r["model"], str(r["latent_dim"]), str(r["n_seeds"]),
                             _protocol_words(r.get(f"{distance}_protocol")), _count(r.get("fid_n")),
                             _cell(r, f"{distance}_pae_T1", 4),
                             f"{_cell(r, f'{distance}_pae_best', 4)} (T={r[f'{distance}_pae_best_T']})",
                             _cell(r, f"{distance}_prior", 4), _cell(r, f"{distance}_recon", 4),
                             _cell(r, f"{distance}_floor", 4)])
    datasets = sorted({r["dataset"] for r in t1})
    lines = [
        "## Sample quality and reconstruction (Table 1 style)", "",
        "Reconstruction MSE per pixel on the run's *test images* ([-0.5, 0.5] pixel scale; with one seed its interval "
        "is 1.96 standard errors over the images, none where the run's recon.json predates their spread). Fréchet "
        "distances between generated (or reconstructed) images and the test images, on *n* images per set. "
        "Samplers: *flow*, the decoder fed by the flow fitted on the model's latents (base N(0, T^2 I); for an AE "
        "this is the PAE, for a VAE or beta-VAE the two-stage sampler), at T = 1 and at its best T; N(0, I) "
        "through the decoder (the VAE's own sampler); *floor* = training vs test images. The reference values are "
        "under \"Reference values\", each with its verdict.", "",
        "*Domain FD*: in the features of a classifier trained on the dataset; not an FID, and not comparable with "
        "FID values.", "",
        table(["dataset", "model", "latent", "seeds", "test images", "recon MSE", "domain FD n", "domain FD: flow T=1",
               "flow best T",
               "N(0, I)", "reconstructions", "floor"], rows), ""]
    lines += [
        "*FID*: in Inception's pool3 features, one row per protocol (how the images entered Inception: "
        "eval.fid.preprocessing, pytorch = pytorch-fid's path, tensorflow = the original TensorFlow graph's; then "
        "the pixels as they are, or each image min-max stretched to the full range first, real and generated, as the "
        "PAE authors' FID notebook does). FID is biased upwards at small n and moves with the protocol: FIDs compare "
        "only at the same n and protocol. " + fid_note, ""]
    if fid_rows:
        lines += [table(["dataset", "model", "latent", "seeds", "protocol", "FID n", "flow T=1", "flow best T",
                         "N(0, I)", "reconstructions", "floor"], fid_rows), ""]
    lines += _per_seed_lines(t1, samplers_rows, runs_rows)
    lines += _coverage_section(t1)
    return lines + [
        _figure(figures, "fd_vs_latent.png", "distance and reconstruction error vs latent size"), "",
        _figure(figures, "fd_vs_temperature.png", "distance vs flow temperature"), "",
        *[_figure(figures, name, f"samples, {d}") + "\n"
          for d in datasets for name in _pages(figures, f"samples_{d}", "z")],
    ]


PER_SEED_SETS = {"pae_T1.0": "flow T=1", "prior": "N(0, I)", "reconstructions": "reconstructions"}


def _per_seed_lines(t1: list[dict], samplers_rows: list[dict], runs_rows: list[dict]) -> list[str]:
    """Each seed's FIDs and reconstruction MSE, with its run's own intervals over images, for the Table 1 rows that
    average several seeds: the values behind an interval over seeds."""
    several = {tuple(r[k] for k in GROUP) for r in t1 if (r.get("n_seeds") or 1) > 1}
    sets: dict[str, dict[str, dict]] = {}
    for r in samplers_rows:
        sets.setdefault(r["run"], {})[r["set"]] = r
    rows = []
    for r in sorted(runs_rows, key=lambda r: (*(str(r[k]) for k in GROUP), r["seed"])):
        if tuple(r[k] for k in GROUP) not in several:
            continue
        by_set = sets.get(r["run"], {})
        for distance in ("fid", "fid_minmax"):
            if all(by_set.get(name, {}).get(distance) is None for name in PER_SEED_SETS):
                continue
            protocol = summary.fid_protocol(r.get("fid_preprocessing"), distance)
            rows.append([r["dataset"], r["model"], str(r["latent_dim"]), str(r["seed"]), _protocol_words(protocol),
                         _count(by_set.get("pae_T1.0", {}).get("fid_n") or r.get("fid_n")),
                         *[_cell(by_set.get(name, {}), distance, 4) for name in PER_SEED_SETS],
                         _cell(r, "recon_mse", 3)])
    if not rows:
        return []
    return ["*Each seed* of the rows above that average several: its FIDs with their bootstrap intervals over "
            "images, and its reconstruction MSE (1.96 standard errors over the test images).", "",
            table(["dataset", "model", "latent", "seed", "protocol", "FID n", *PER_SEED_SETS.values(),
                   "recon MSE"], rows), ""]


COVERAGE_SETS = {"pae_T1": "flow, T = 1", "prior": "N(0, I)", "recon": "reconstructions",
                 "floor": "training images (floor)"}


def _coverage_set(name: str, model: str) -> str:
    """An image set in words; an AE's flow samples are the PAE's."""
    return COVERAGE_SETS[name].replace("flow", "flow (PAE)") if name == "pae_T1" and is_pae(model) \
        else COVERAGE_SETS[name]


PAE_AGAINST_OTHERS = [
    "*The PAE against the other samplers* (the PAE paper's claim that its samples are better and cover more of the "
    "data): the FID and the recall of the PAE's samples (an AE's flow samples at T = 1) beside those of the AE's "
    "N(0, I) samples and of every other model's flow and N(0, I) samples. Lower or higher only where the two 95% "
    "intervals do not overlap (over seeds for a row of several seeds, over images for a row of one); \"not "
    "distinguished\" where they overlap. Recall has no interval over images: between rows of one seed its comparison "
    "is the values' alone (\"no interval\"). A row of one seed does not show how far another seed would move it.", ""]


def _coverage_section(t1: list[dict]) -> list[str]:
    """KID, precision and recall beside every FID (fid.json), a row per model x protocol x sampler; then, for each
    AE with a flow, whether its samples (the PAE's) have a lower FID and a higher recall (cover more of the test
    images) than its N(0, I) samples and the other models' samples, as the PAE paper claims ("ensures the entire data
    space is covered"), judged by the rows' intervals (_standing)."""
    rows, fidelity = [], {}
    for r in t1:
        for distance in ("fid", "fid_minmax"):
            for s in COVERAGE_SETS:
                if r.get(f"{distance}_recall_{s}") is None:
                    continue
                rows.append([r["dataset"], r["model"], str(r["latent_dim"]), str(r["n_seeds"]),
                             _protocol_words(r.get(f"{distance}_protocol")), _count(r.get("fid_n")),
                             _coverage_set(s, r["model"]),
                             _cell(r, f"{distance}_{s}", 4), _cell(r, f"{distance}_kid_{s}", 3),
                             _cell(r, f"{distance}_precision_{s}", 3), _cell(r, f"{distance}_recall_{s}", 3)])
                fidelity.setdefault((r["dataset"], r["latent_dim"], distance), {})[(r["model"], s)] = r
    if not rows:
        return []
    lines = ["*Fidelity and coverage*, in the same Inception features as each FID: KID (Bińkowski et al. 2018; "
             "unbiased, so it compares across n, unlike the FID; mean over 100 subsets of up to 1,000 images), "
             "precision (the share of generated images inside the test images' k-NN manifold, k = 3: fidelity) and "
             "recall (the share of test images inside the generated images' manifold: coverage; Kynkäänniemi et al. "
             "2019), computed as torch-fidelity does.", "",
             table(["dataset", "model", "latent", "seeds", "protocol", "n", "images", "FID", "KID", "precision",
                    "recall"], rows), ""]
    against = []
    for (dataset, z, distance), by in fidelity.items():
        for pae_model in sorted(m for (m, s) in by if s == "pae_T1" and is_pae(m)):
            pae = by[(pae_model, "pae_T1")]
            others = [(f"{model_label(m)}: {_coverage_set(s, m)}", r, s) for (m, s), r in by.items()
                      if s in ("prior", "pae_T1") and (m, s) != (pae_model, "pae_T1")]
            if not others:
                continue
            parts = [part for measure in PAE_MEASURES if (part := _pae_against(pae, others, distance, *measure))]
            if parts:
                protocol = _protocol_words(pae.get(f"{distance}_protocol"))
                against += [f"{model_label(pae_model)} + flow (PAE), {dataset} latent {z}, {protocol}: "
                            + ". ".join(parts) + ".", ""]
    return lines + (PAE_AGAINST_OTHERS + against if against else [])


# The measures the PAE is set against the other samplers by: (name, column infix, digits, words where the PAE is
# better, where it is worse, whether lower is better).
PAE_MEASURES = (("FID", "", 4, "lower than", "higher than", True),
                ("Recall", "recall_", 3, "more than", "less than", False))


def _pae_against(pae: dict, others: list[tuple[str, dict, str]], distance: str, what: str, infix: str, digits: int,
                 better: str, worse: str, lower_is_better: bool) -> str | None:
    """"FID v [lo, hi] (n seeds); lower than ...; not distinguished from ...; higher than ..." for the PAE's row
    against the others ((label, row, set) each), by `_standing`; None where the PAE's row has no value."""
    key = f"{distance}_{infix}pae_T1"
    value = _value_and_interval(pae, key, digits)
    if value is None:
        return None
    groups: dict[str, list[str]] = {}
    for label, r, s in others:
        standing = _standing(pae, key, r, f"{distance}_{infix}{s}", digits)
        if standing is None:
            continue
        side, shown = standing
        verdict = "not distinguished from" if side == 0 else better if (side > 0) == lower_is_better else worse
        seeds = "" if r["n_seeds"] == pae["n_seeds"] else f"; {_seeds(r['n_seeds'])}"
        groups.setdefault(verdict, []).append(f"{label} ({shown}{seeds})")
    return f"{what} {value} ({_seeds(pae['n_seeds'])})" + "".join(
        f"; {v} {', '.join(groups[v])}" for v in (better, "not distinguished from", worse) if v in groups)


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def _standing(ref: dict, key: str, other: dict, other_key: str, digits: int) -> tuple[int, str] | None:
    """Where other[other_key] stands against ref[key]: +1 above, -1 below, 0 not distinguished (their 95% intervals
    overlap, or the one interval there is holds the other value); the sign of the difference, marked "no interval",
    where neither has one. With the other's value as the report shows it; None where either has no value."""
    a, b = ref.get(key), other.get(other_key)
    if a is None or b is None:
        return None
    shown = _value_and_interval(other, other_key, digits)
    ra = (ref.get(f"{key}_low"), ref.get(f"{key}_high"))
    rb = (other.get(f"{other_key}_low"), other.get(f"{other_key}_high"))
    lo_a, hi_a = ra if _finite(*ra) else (a, a)
    lo_b, hi_b = rb if _finite(*rb) else (b, b)
    if not _finite(*ra) and not _finite(*rb):
        return (b > a) - (b < a), f"{shown}, no interval"
    if lo_b > hi_a:
        return 1, shown
    if hi_b < lo_a:
        return -1, shown
    return 0, shown


def _ood_section(t2: list[dict], runs_rows: list[dict], figures: Path) -> list[str]:
    if not t2:
        return ["## Out-of-distribution detection (Table 2 style)", "",
                "No run of this experiment has an ood stage (its grid blocks skip it).", ""]
    with_ood = {tuple(r[k] for k in GROUP) for r in t2}
    showcase = _showcase([r for r in runs_rows if tuple(r[k] for k in GROUP) in with_ood])
    scores = list(dict.fromkeys(r["score"] for r in t2))
    groups: dict[tuple, dict] = {}
    for r in t2:
        groups.setdefault((*[r[k] for k in GROUP], r["ood_set"]), {})[r["score"]] = r
    rows = []
    for (dataset, model, z, ood_set), by_score in groups.items():
        first = next(iter(by_score.values()))
        rows.append([dataset, model, str(z), ood_set, str(first["n_seeds"]),
                     f"{_count(first['n_in'])} / {_count(first['n_out'])}", first.get("ood_data") or "-"]
                    + [_cell(by_score[s], "auroc", 3) if s in by_score else "-" for s in scores])
    return [
        "## Out-of-distribution detection (Table 2 style)", "",
        "AUROC with the run's test images as in-distribution and each OoD set as positives (higher score = more "
        "out-of-distribution); *images* = in-distribution / OoD images scored, *OoD data* = what the OoD set is. "
        "Scores: flow_logp = -log p(z) of the flow at the encoder's latent; recon_mse; "
        "pae_density = -(log p(z) - 1/2 log det J^T J); pae_marginal = -log p(x) by Laplace's approximation; elbo = "
        "-ELBO (models with a posterior). All intervals 95%. The papers' values are under \"Reference values\".", "",
        table(["dataset", "model", "latent", "OoD set", "seeds", "images (in / OoD)", "OoD data", *scores], rows), "",
        *[_figure(figures, f"{r['run']}_ood_roc.png", f"ROC curves, {r['run']}") + "\n" for r in showcase],
    ]


IMAGE_SETS = {"all": "all", "nuts": "NUTS's"}


def _classes_lines(class_rows: list[dict]) -> list[str]:
    """The posterior's classes (posterior_classes.csv): per run and corruption, how many images' samples take two or
    more classes under each method, and the images where NUTS's do, with every method's classes beside their label."""
    if not class_rows:
        return []
    groups: dict[tuple, dict] = {}
    for r in class_rows:
        groups.setdefault((r["run"], r["corruption"]), {}).setdefault(r["method"], {})[r["image"]] = r
    lines = ["*Classes of the posterior samples*: the dataset's domain classifier on each method's decoded samples "
             "(tables/posterior_classes.csv); a posterior whose samples take two or more classes (each at least 10% "
             "of them) spreads over several classes, as an ambiguous inpainting should (the PAE paper's Fig. 6: a "
             "digit compatible with a 3 and a 5).", ""]
    rows = []
    for (run, corruption), by_method in groups.items():
        counts = ", ".join(f"{name}: {sum(r['n_classes_10pct'] > 1 for r in by_method[m].values())} of "
                           f"{len(by_method[m])}" for m, name in (("map", "MAP"), ("laplace", "Laplace"),
                                                                  ("mcmc", "NUTS")) if m in by_method)
        lines.append(f"- {run}, {corruption}: images whose samples take two or more classes: {counts}.")
        for i, r in (by_method.get("mcmc") or {}).items():
            if r["n_classes_10pct"] > 1:
                rows.append([run, corruption, str(i), str(r["label"])]
                            + [(by_method.get(m) or {}).get(i, {}).get("classes", "-") for m in ("map", "laplace",
                                                                                             "mcmc")])
    lines.append("")
    if rows:
        lines += [table(["run", "corruption", "image", "label", "MAP class", "Laplace classes (share)",
                         "NUTS classes (share)"], rows), ""]
    return lines


def _posterior_section(posterior_rows: list[dict], showcase: list[dict], figures: Path,
                       class_rows: list[dict] = ()) -> list[str]:
    keys = (*GROUP, "corruption", "image_set", "n_images", "method")
    # rows written before image_set and the per-method n existed: over all images, n unknown
    rows_in = [{"image_set": "all", "n_images": None, **r} for r in posterior_rows]
    summary = over_seeds(rows_in, keys, ("mse_missing", "mse_all", "coverage68_missing", "coverage95_missing",
                                         "coverage95_all"))
    rows = [[r["dataset"], r["model"], str(r["latent_dim"]), r["corruption"],
             f"{IMAGE_SETS.get(r['image_set'], r['image_set'])} ({_count(r['n_images'])})", r["method"],
             str(r["n_seeds"]), _cell(r, "mse_missing", 3), _cell(r, "mse_all", 3),
             _cell(r, "coverage68_missing", 3), _cell(r, "coverage95_missing", 3), _cell(r, "coverage95_all", 3)]
            for r in summary]
    return [
        "## Inpainting and denoising: posterior analysis", "",
        "Latent posterior of corrupted test images under the flow prior: MAP, Laplace approximation and NUTS. MSE of "
        "the MAP / posterior mean on the missing pixels and on all pixels; coverage = fraction of true pixels inside "
        "the posterior predictive's central 68% / 95% interval. *images*: the test images each row is over. NUTS runs "
        "on the first of them only (eval.posterior.mcmc_images): its rows, and the Laplace posterior's on the same "
        "images, are the \"NUTS's\" rows; compare NUTS with those, not with the rows over all images.", "",
        table(["dataset", "model", "latent", "corruption", "images", "method", "seeds", "MSE missing", "MSE all",
               "coverage 68% (missing)", "coverage 95% (missing)", "coverage 95% (all)"], rows), "",
        *_classes_lines(list(class_rows)),
        *_posterior_figures(posterior_rows, showcase, figures),
    ]


def _posterior_figures(posterior_rows: list[dict], showcase: list[dict], figures: Path) -> list[str]:
    """Per showcase run and corruption: its posterior panels, then the classes of its samples where drawn."""
    def pages(prefix: str, corruption: str) -> list[str]:
        return _pages(figures, f"{prefix}_{corruption}", "images")

    lines = []
    for r in showcase:
        corruptions = dict.fromkeys(p["corruption"] for p in posterior_rows if p["run"] == r["run"])
        lines += [_figure(figures, name, f"posterior panels, {r['run']}, {c}") + "\n"
                  for c in corruptions for name in pages(f"{r['run']}_posterior", c)]
        lines += [_figure(figures, name, f"classes of the posterior samples, {r['run']}, {c}") + "\n"
                  for c in corruptions for name in pages(f"{r['run']}_posterior_classes", c)
                  if (figures / name).exists()]
    return lines


def _impute_section(impute_rows: list[dict], figures: Path) -> list[str]:
    ratios = sorted({r["test_ratio"] for r in impute_rows})
    groups: dict[tuple, dict] = {}
    for r in impute_rows:
        groups.setdefault((*[r[k] for k in GROUP], r["train_missing"], r["method"]), {})[r["test_ratio"]] = r
    rows = []
    for (d, m, z, train, method), by in groups.items():
        first = next(iter(by.values()))
        rows.append([d, m, str(z), train, method, str(first["n_seeds"]),
                     _count(_joined_counts(r.get("n_images") for r in by.values()))]
                    + [_cell({"v": by[x]["mse_missing"], "v_low": by[x]["mse_low"], "v_high": by[x]["mse_high"],
                              "v_images_low": by[x].get("mse_images_low"),
                              "v_images_high": by[x].get("mse_images_high"), "n_seeds": by[x]["n_seeds"]}, "v", 3)
                       if x in by else "-" for x in ratios])
    return [
        "## Missing-data imputation", "",
        "MSE on the missing pixels of *images* test images with pixels missing completely at random at ratio r: the "
        "model's own inference (encoder, or the VAD's test-time optimisation) and the PAE's latent MAP under the flow "
        "prior. `train` = clean (tested at every r) or the ratio/mode the run was trained with (tested at its own r). "
        "Intervals: Student's t over seeds with several, else 1.96 standard errors over the images.", "",
        table(["dataset", "model", "latent", "train", "method", "seeds", "images", *[f"r={x:g}" for x in ratios]],
              rows), "",
        _figure(figures, "impute_mse_vs_ratio.png", "imputation MSE vs missing ratio"), "",
    ]


def _joined_counts(values) -> str | None:
    """The distinct counts joined by commas (one where they agree), None where there is none."""
    distinct = sorted({int(v) for v in values if v is not None})
    return ",".join(map(str, distinct)) or None


def _uncertainty_section(rows: list[dict], showcase: list[dict], figures: Path) -> list[str]:
    """The decoder's own uncertainty: test NLL and calibration of the likelihood per model (over seeds), and the
    showcase runs' uncertainty, sample-uncertainty and interpolation-grid figures (each linked where it was drawn)."""
    metrics = ("test_nll", "coverage68_sample", "coverage95_sample", "coverage68_mean", "coverage95_mean",
               "rms_residual_sample", "rms_std_sample")
    keys = (*GROUP, "likelihood", "beta_nll")
    summary = over_seeds(rows, keys, metrics)

    def n_test(group: dict) -> str:  # the test images of the group's runs (one count where the seeds agree)
        return _count(_joined_counts(r.get("n_test") for r in rows if all(r[k] == group[k] for k in keys)))

    table_rows = [[r["dataset"], r["model"], str(r["latent_dim"]), r["likelihood"]
                   + (f" (beta-NLL {r['beta_nll']:g})" if r["beta_nll"] else ""), str(r["n_seeds"]), n_test(r),
                   _cell(r, "test_nll", 4)]
                  + [_cell(r, m, 3) if r[m] is not None else "n/a" for m in metrics[1:5]]
                  + [_cell(r, m, 3) for m in metrics[5:]] for r in summary]
    figure_links = []
    for r in showcase:
        for name, alt in (("uncertainty", "test images, a posterior sample's latent, reconstruction, predicted std"),
                          ("sample_uncertainty", "samples and their predicted std"),
                          ("interpolation_grid", "latent interpolation between four test images")):
            if (figures / f"{r['run']}_{name}.png").exists() or name == "interpolation_grid":
                figure_links.append(_figure(figures, f"{r['run']}_{name}.png", f"{alt}, {r['run']}") + "\n")
    lines = ["## The decoder's uncertainty", ""]
    if table_rows:
        lines += [
            "The likelihood p(x | z) as the decoder's prediction of the pixels, on all the test images of each run "
            "(*test images*): the test NLL (-E_q log p(x | z), "
            "nats per image, from the ELBO) and its calibration, the fraction of test pixels x inside the central "
            "68% / 95% intervals |x - mean| <= k std (k = 0.9945 / 1.960) of a Gaussian likelihood, at z drawn "
            "once from q(z | x) (the setting the likelihood is trained in) and at the posterior mean; a calibrated "
            "likelihood holds 0.68 / 0.95. rms: root mean square of the residuals x - mean and of the predicted std "
            "(z drawn from q), on the [-0.5, 0.5] pixel scale. A Bernoulli likelihood has no intervals on grey levels "
            "(n/a) and its NLL is a cross-entropy with grey targets, not a density: it does not compare with the "
            "Gaussians' NLLs, which are densities on the same pixel scale.", "",
            table(["dataset", "model", "latent", "likelihood", "seeds", "test images", "test NLL", "in 68% (z ~ q)",
                   "in 95% (z ~ q)", "in 68% (z = mean)", "in 95% (z = mean)", "rms residual", "rms std"],
                  table_rows), ""]
    else:
        lines += ["No model of this experiment has a likelihood (the auto-encoders decode to a point); only the "
                  "latent interpolation grids are drawn.", ""]
    lines += ["Figures (one run per dataset x model): test images with a posterior sample's latent, the "
              "reconstruction and the predicted std; decoded N(0, I) and PAE samples beside their predicted std "
              "(likelihoods whose std varies); a grid decoded between the latents of four test images.", "",
              *figure_links]
    return lines


def _times_section(runs_rows: list[dict]) -> list[str]:
    stages = [k[len("time_"):-len("_s")] for k in runs_rows[0] if k.startswith("time_")] if runs_rows else []
    rows = []
    for stage in stages:
        # a dataset is prepared once for all its runs
        have = [r for r in runs_rows if r.get(f"time_{stage}_s") is not None]
        if stage == "prepare":
            have = list({r["dataset"]: r for r in have}.values())
        secs = sorted(r[f"time_{stage}_s"] for r in have)
        if secs:
            rows.append([stage, str(len(secs)), f"{statistics.median(secs):.1f}", f"{secs[-1]:.1f}",
                         f"{sum(secs):.0f}"])
    return ["## Stage wall times", "",
            "From the snakemake benchmark files (benchmarks/...): each job's last attempt; `runs` = the jobs counted "
            "(prepare: one per dataset).",
            "", table(["stage", "runs", "median s", "max s", "total s"], rows), ""]


def _ours(ref: dict, t1: list[dict], t2: list[dict]) -> tuple[str, str]:
    """(our value with its interval, and for an FID its n and protocol; the verdict) at a reference's coordinates:
    ("-", "no run here") where this experiment has no such row."""
    where = {k: ref[k] for k in ("dataset", "model", "latent_dim")}
    if ref["table"] == "table2":
        where.update({k: ref[k] for k in ("ood_set", "score")})
    rows = t1 if ref["table"] == "table1" else t2
    row = next((r for r in rows if all(r.get(k) == v for k, v in where.items())), None)
    if row is None:
        return "-", "no row of ours here"
    judged = (summary.table1_verdict if ref["table"] == "table1" else summary.table2_verdict)(ref, row)
    column = summary.ours_column(ref["metric"])
    if not ref["metric"].startswith(summary.N_DEPENDENT):
        return _cell(row, column, 4), judged
    if ref.get("protocol") is None and ref["metric"] == "fid":
        # a reference of unstated protocol: ours in every protocol we have, none singled out
        cells = [f"{_cell(row, summary.ours_column(m), 4)} ({row.get(f'{m}_protocol')})"
                 for m in ("fid", "fid_minmax") if row.get(summary.ours_column(m)) is not None]
    else:
        distance = "fid_minmax" if column.startswith("fid_minmax") else "fid"
        cells = [f"{_cell(row, column, 4)} ({row.get(f'{distance}_protocol')})"] \
            if row.get(column) is not None else []
    if not cells:
        return "-", judged
    return "; ".join(cells) + f", n = {_count(row.get('fid_n'))}", judged


def _ref_conditions(ref: dict) -> str:
    """A reference's n and protocol (FID), "not stated" where its source does not give them; "-" for others."""
    if not ref["metric"].startswith(summary.N_DEPENDENT):
        return "-"
    n = f"n = {_count(ref['n'])}" if ref.get("n") is not None else "n not stated"
    return f"{n}; protocol {ref.get('protocol') or 'not stated'}"


def _references_section(refs: list[dict], t1: list[dict], t2: list[dict], runs_rows: list[dict]) -> list[str]:
    """The reference values at the dataset, model and latent size of one of this experiment's runs (the others are
    about runs it does not have), each beside ours with its verdict, then their sources."""
    present = {tuple(r[k] for k in GROUP) for r in runs_rows}
    mine = [ref for ref in refs if tuple(ref[k] for k in GROUP) in present]
    lines = ["## Reference values", ""]
    if not mine:
        return lines + ["No reference value (pae/report/references.yaml) is at a dataset, model and latent size of "
                        "this experiment's runs.", ""]
    lines += ["Values from the papers and the authors' notebooks (pae/report/references.yaml; only values whose "
              "source was checked) at a dataset, model and latent size of this experiment, each beside ours at the "
              "same coordinates (PAE FIDs at T = 1; \"-\" where we have no such value). *source*: where the value was "
              "read. *verdict*: met = our 95% interval covers the reference; better / missed by X = the interval "
              "excludes it, on the better or the worse side (lower is better for FID and MSE, higher for AUROC), X = "
              "|ours - reference|; no interval = our value has none (one seed, no bootstrap), so it can be neither; "
              "not comparable = an FID at another n or protocol, or a reference that states neither. Our runs differ "
              "from the papers' where the config says so.", ""]
    rows = []
    for ref in mine:
        metric = ref["metric"] + "".join(f", {ref[k]}" for k in ("ood_set", "score") if k in ref)
        ours, judged = _ours(ref, t1, t2)
        rows.append([ref["table"], ref["dataset"], ref["model"], str(ref["latent_dim"]), metric, f"{ref['value']:g}",
                     ref["cited_as"], _ref_conditions(ref), ours, judged])
    lines += [table(["table", "dataset", "model", "latent", "metric", "reference", "source", "reference n, protocol",
                     "ours", "verdict"], rows), "", "Sources:", ""]
    lines += [f"{i}. {ref['table']} {ref['metric']} ({ref['dataset']}, latent {ref['latent_dim']}), "
              f"{' '.join(str(ref.get('what', '')).split())}: {' '.join(str(ref['source']).split())}"
              for i, ref in enumerate(mine, start=1)]
    return lines + [""]


def _seeds_sentence(runs_rows: list[dict]) -> str:
    """What the intervals are over: seeds where the grid has several per point, else one seed's images."""
    per_point: dict[tuple, set] = {}
    for r in runs_rows:
        per_point.setdefault(tuple(r[k] for k in GROUP), set()).add(r["seed"])
    counts = {len(s) for s in per_point.values()}
    if counts == {1}:
        seeds = sorted({r["seed"] for r in runs_rows})
        return (f"Every result is from one seed (seed {', '.join(map(str, seeds))}) and one run per dataset x model x "
                "latent size: intervals in brackets are 95% intervals over the images (the run's bootstrap, or 1.96 "
                "standard errors), not over seeds; a value without one has none.")
    return ("Values are means over seeds with 95% intervals in brackets: Student's t over the seeds (*seeds* "
            "column), followed where the runs have one by the runs' own intervals over images, averaged over the "
            "seeds (\"images: [...]\"); a row with one seed gives its run's interval over images.")


def write_report(path: str | os.PathLike, experiment: str, rows: dict[str, list[dict]], refs: list[dict],
                 figures_dir: str | os.PathLike, fid_note: str, configfiles: list[str] = ()) -> None:
    """report.md from the tables' rows (runs, table1, table2, posterior, impute, uncertainty) and the figures already
    drawn."""
    figures = Path(figures_dir)
    runs_rows = rows["runs"]
    grid = {k: [str(v) for v in sorted({r[k] for r in runs_rows})] for k in (*GROUP, "seed")}
    showcase = _showcase(runs_rows)
    config = f" (config: {', '.join(f'`{c}`' for c in configfiles)})" if configfiles else ""
    lines = [f"# Experiment `{experiment}`: report", "",
             f"{len(runs_rows)} runs: datasets {', '.join(grid['dataset'])}; models {', '.join(grid['model'])}; "
             f"latent sizes {', '.join(grid['latent_dim'])}; seeds {', '.join(grid['seed'])}"
             f"{config}. Written by the report "
             "stage; the full tables are in `tables/` (runs, table1, table2, samplers, ood, posterior, impute, "
             "uncertainty .csv), "
             "the figures in `figures/`. " + _seeds_sentence(runs_rows), ""]
    lines += _quality_section(rows["table1"], rows.get("samplers", []), runs_rows, fid_note, figures)
    lines += _ood_section(rows["table2"], runs_rows, figures)
    lines += _posterior_section(rows["posterior"], showcase, figures, rows.get("posterior_classes", []))
    lines += _impute_section(rows["impute"], figures)
    lines += _uncertainty_section(rows.get("uncertainty", []), showcase, figures)
    lines += _times_section(runs_rows)
    lines += _references_section(refs, rows["table1"], rows["table2"], runs_rows)
    with atomic_path(path, suffix=".md") as tmp:
        Path(tmp).write_text("\n".join(lines))
