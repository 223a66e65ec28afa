"""The report stage: an experiment's tables (pae/report/tables.py, summary.py), figures (pae/report/figures.py) and
report.md (pae/report/markdown.py), from the files the other stages wrote."""
from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

from pae.config import report_manifest
from pae.io import PaeError, read_json
from pae.report import TABLES
from pae.stages.args import json_object

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="redraw", type=Path, metavar="FOLDER",
                   help="redraw every figure of a report folder (results/{exp}/, or an export of it) from its "
                        "figures/data/ files alone, without the runs or any model; nothing else is needed")
    p.add_argument("--config", type=json_object,
                   help="the workflow's resolved config (pae.config.resolve), which names the runs and their files")
    p.add_argument("--configfile", action="append", default=[], dest="configfiles",
                   help="a config file the experiment was run with, as the report names it (repeatable)")
    p.add_argument("--tables-dir", type=Path, help="runs.csv, table1.csv, table2.csv, samplers.csv, "
                   "ood.csv, posterior.csv, impute.csv, uncertainty.csv")
    p.add_argument("--figures-dir", type=Path)
    p.add_argument("--report", type=Path, help="report.md to write (tables and figures with the papers' values)")


def run(a: argparse.Namespace) -> None:
    if a.redraw is not None:
        from pae.report.figures import redraw
        drawn, left = redraw(a.redraw)
        print(f"redrew {len(drawn)} figures in {a.redraw / 'figures'} from their data")
        if left:
            print(f"left as they were (no data to redraw them from; rerun the report stage of their experiment): "
                  f"{', '.join(p.name for p in left)}")
        return
    missing = [f"--{k.replace('_', '-')}" for k in ("config", "tables_dir", "figures_dir") if getattr(a, k) is None]
    if missing:
        raise PaeError(f"report: {', '.join(missing)} required (or --from FOLDER to redraw an existing report)")
    report(report_manifest(a.config, a.configfiles), a.tables_dir, a.figures_dir, a.report)


def report(manifest: dict, tables_dir: Path, figures_dir: Path, report_path: Path | None = None) -> None:
    """The experiment's tables, figures and report.md. Matched-imputation runs (trained with missing pixels for the
    imputation sweep) appear in impute.csv only. A run of a named grid block is shown as model {model}-{name}, so
    that the tables and figures, which group runs by model, keep it apart from the same model of other blocks."""
    from pae.report import markdown, summary, tables  # here: parsing the arguments stays light

    runs = [{**r, "model": f"{r['model']}-{r['variant']}"} if r.get("variant") else r for r in manifest["runs"]]
    main = [r for r in runs if not r.get("matched_imputation")]
    refs = summary.load_references()
    rows = {"runs": tables.runs_table(main), "samplers": tables.samplers_table(main), "ood": tables.ood_table(main),
            "posterior": tables.posterior_table(main), "posterior_classes": tables.posterior_classes_table(main),
            "impute": tables.impute_table(runs),
            "uncertainty": tables.uncertainty_table(main)}
    rows["table1"] = summary.table1(rows["runs"], rows["samplers"], refs)
    rows["table2"] = summary.table2(rows["ood"], refs)
    for name in TABLES:
        tables.write_csv(Path(tables_dir) / f"{name}.csv", rows[name], tables.COLUMNS.get(name, ()))
    write_figures(main, rows, refs, Path(figures_dir))
    if report_path is not None:
        markdown.write_report(report_path, manifest.get("experiment", Path(report_path).parent.name), rows, refs,
                              figures_dir, _fid_note(main), manifest.get("configfiles", []))
    log.info("wrote %s (%s) for %d runs, figures in %s%s", tables_dir, ", ".join(f"{t}.csv" for t in TABLES),
             len(main), figures_dir, f", {report_path}" if report_path else "")


def write_figures(runs: list[dict], rows: dict[str, list[dict]], refs: list[dict], figures_dir: Path) -> None:
    """Every figure of the report, each with its data in figures/data/ (pae.report.figures): per run its samples,
    reconstructions, interpolations, ROC curves, posterior panels and uncertainty figures; per experiment the sample
    grids of each dataset, the training curves and the figures drawn from the tables. One colour per model in all."""
    from pae.report import figures, style, uncertainty

    colours = style.model_colours(r["model"] for r in runs)
    make = functools.partial(figures.make, figures_dir)
    samples = {}  # each run's samples.h5, read once for its figures and its dataset's sample grids
    for run in runs:
        name = run["run"]
        s = samples[name] = figures.read_samples(run["files"]["samples"])
        make(f"{name}_samples", "samples", *figures.samples_data([run], run["dataset"], read=lambda _, s=s: s))
        make(f"{name}_reconstructions", "reconstructions", *figures.reconstructions_data(run, samples=s))
        make(f"{name}_interpolations", "interpolations", *figures.interpolations_data(run, samples=s))
        if "ood_scores" in run["files"]:
            make(f"{name}_ood_roc", "roc", *figures.roc_data(run))
        for kind, (meta, arrays) in figures.by_corruption(*figures.posterior_data(run)).items():
            make(f"{name}_posterior_{kind}", "posterior", meta, arrays)
            if figures.has_classes(meta):
                make(f"{name}_posterior_classes_{kind}", "posterior_classes", meta, arrays)
    uncertainty.write_uncertainty_figures(runs, figures_dir)
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        for name, data in figures.samples_pages(runs, dataset, read=lambda r: samples[r["run"]]).items():
            make(name, "samples", *data)
    make("training_curves", "training", *figures.training_data(runs, colours))
    make("fd_vs_temperature", "temperature", *figures.temperature_data(rows["samplers"], refs, colours))
    make("fd_vs_latent", "latent", *figures.latent_data(rows["table1"], refs, colours))
    if rows["impute"]:
        make("impute_mse_vs_ratio", "impute", *figures.impute_data(rows["impute"], colours))


def _fid_note(runs: list[dict]) -> str:
    """What report.md says about FID: the image path into Inception of the runs that have it (fid.json's
    image_conversion: eval.fid.preprocessing), and why the others have none."""
    paths: dict[str, list[str]] = {}
    reasons: dict[str, list[str]] = {}
    for r in runs:
        result = read_json(r["files"]["fid"])
        if result.get("fid") is not None:
            paths.setdefault(result["protocol"]["image_conversion"]["fid"], []).append(r["run"])
        else:
            reasons.setdefault(str(result.get("fid_unavailable")), []).append(r["run"])
    notes = []
    for path, names in paths.items():
        which = "every run" if len(names) == len(runs) else ", ".join(names)
        notes.append(f"FID was computed for {which}; images into Inception: {path}.")
    for reason, names in reasons.items():
        which = "any run" if len(names) == len(runs) else ", ".join(names)
        notes.append(f"FID was not computed for {which}: {reason}")
    return " ".join(notes)
