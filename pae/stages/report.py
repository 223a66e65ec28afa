"""The report stage: an experiment's tables (pae/report/tables.py, summary.py), figures (pae/report/figures.py) and
report.md (pae/report/markdown.py), from the files the other stages wrote."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pae.config import report_manifest
from pae.io import read_json
from pae.report import TABLES
from pae.stages.args import json_object

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=json_object, required=True,
                   help="the workflow's resolved config (pae.config.resolve), which names the runs and their files")
    p.add_argument("--configfile", action="append", default=[], dest="configfiles",
                   help="a config file the experiment was run with, as the report names it (repeatable)")
    p.add_argument("--tables-dir", type=Path, required=True, help="runs.csv, table1.csv, table2.csv, samplers.csv, "
                   "ood.csv, posterior.csv, impute.csv, uncertainty.csv")
    p.add_argument("--figures-dir", type=Path, required=True)
    p.add_argument("--report", type=Path, help="report.md to write (tables and figures with the papers' values)")


def run(a: argparse.Namespace) -> None:
    report(report_manifest(a.config, a.configfiles), a.tables_dir, a.figures_dir, a.report)


def report(manifest: dict, tables_dir: Path, figures_dir: Path, report_path: Path | None = None) -> None:
    """The experiment's tables, figures and report.md. Matched-imputation runs (trained with missing pixels for the
    imputation sweep) appear in impute.csv only. A run of a named grid block is shown as model {model}-{name}, so
    that the tables and figures, which group runs by model, keep it apart from the same model of other blocks."""
    from pae.report import figures, markdown, summary, tables, uncertainty  # here: parsing the arguments stays light

    runs = [{**r, "model": f"{r['model']}-{r['variant']}"} if r.get("variant") else r for r in manifest["runs"]]
    main = [r for r in runs if not r.get("matched_imputation")]
    refs = summary.load_references()
    rows = {"runs": tables.runs_table(main), "samplers": tables.samplers_table(main), "ood": tables.ood_table(main),
            "posterior": tables.posterior_table(main), "impute": tables.impute_table(runs),
            "uncertainty": tables.uncertainty_table(main)}
    rows["table1"] = summary.table1(rows["runs"], rows["samplers"], refs)
    rows["table2"] = summary.table2(rows["ood"], refs)
    for name in TABLES:
        tables.write_csv(Path(tables_dir) / f"{name}.csv", rows[name], tables.COLUMNS.get(name, ()))
    figures_dir = Path(figures_dir)
    figures.write_run_figures(main, figures_dir)
    for run in main:
        if "ood_scores" in run["files"]:
            figures.roc_figure(run, figures_dir / f"{run['run']}_ood_roc.png")
        figures.posterior_figure(run, figures_dir / f"{run['run']}_posterior.png")
    uncertainty.write_uncertainty_figures(main, figures_dir)
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
