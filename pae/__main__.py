"""`python -m pae [--launcher local|slurm] [--job JSON] STAGE ...`: the one entry point every workflow rule calls.

Stages: prepare, train, encode, fit_flow, evaluate, train_classifier, fid, ood, posterior, impute, report,
export-report, check-config and setup-data (run by `make data`), one module each in pae/stages/. Specs are JSON
objects (the workflow passes the resolved config section of the run); `python -m pae STAGE -h` lists each stage's
arguments.
"""
from __future__ import annotations

import argparse
import logging
import sys

from pae import stages
from pae.io import PaeError, setup_logging
from pae.launch import LAUNCHERS, Job
from pae.stages.args import json_object

log = logging.getLogger("pae")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pae", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--launcher", choices=sorted(LAUNCHERS), default="local",
                   help="where the stage runs: local (this process; torchrun for several tasks) or slurm (submitit)")
    p.add_argument("--job", type=json_object, default={},
                   help=f"job resources as JSON, the fields of pae.launch.Job: {Job.describe()}")
    stages.add_stages(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)  # the stage's arguments too: a wrong one fails here, before any submission
    setup_logging()
    try:
        job = Job.from_dict(args.job)
        if args.launcher == "local" and job.tasks == 1:
            return stages.run_parsed(args)
        return LAUNCHERS[args.launcher](job, argv[argv.index(args.stage):])
    except PaeError as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
