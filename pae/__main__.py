"""`python -m pae [--launcher local|slurm] [--job JSON] STAGE ...`: the one entry point every workflow rule calls.

Stages: {stages}; one module each in pae/stages/ (setup-data is run by `make data`, install-profile installs a
snakemake profile). Specs are JSON objects (the workflow passes the resolved config section of the run);
`python -m pae STAGE -h` lists each stage's arguments.

With --launcher slurm this process only submits the stage and waits for it (pae.launch.slurm): it parses the
launcher's own options and the stage's name, and leaves the stage's arguments to the SLURM job, so that it never
imports torch or stage code (a waiting launcher holds ~20 MB, not ~300 MB).
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys
import textwrap
import time

from pae import stages
from pae.io import ATTEMPT_HEADER, PaeError, setup_logging
from pae.launch import LAUNCHERS, Job, count_attempt
from pae.stages.args import json_object

log = logging.getLogger("pae")


def _add_launcher_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=sorted(LAUNCHERS), default="local",
                   help="where the stage runs: local (this process; torchrun for several tasks) or slurm (submitit)")
    p.add_argument("--job", type=json_object, default={},
                   help=f"job resources as JSON, the fields of pae.launch.Job: {Job.describe()}")


def description() -> str:
    """The help's text: this module's docstring with the stages of pae.stages.STAGES, every one of them."""
    names = list(stages.STAGES)
    head, listing, rest = __doc__.split("\n\n", 2)
    listing = listing.replace("{stages}", ", ".join(names[:-1]) + f" and {names[-1]}")
    return "\n\n".join([head, textwrap.fill(" ".join(listing.split()), width=116), rest])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pae", description=description(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_launcher_options(p)
    stages.add_stages(p)
    return p


def _launcher_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]] | None:
    """(launcher options, the stage's argv) when the launcher is slurm and no help is asked for; else None."""
    p = argparse.ArgumentParser(prog="python -m pae", add_help=False, allow_abbrev=False)
    _add_launcher_options(p)
    head, rest = p.parse_known_args(argv)
    if head.launcher != "slurm" or not rest or rest[0] not in stages.STAGES or {"-h", "--help"} & set(rest):
        return None  # the full parser gives the help, or the error naming what is wrong
    return head, rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    submit = _launcher_args(argv)
    if submit is None:
        args = _parser().parse_args(argv)  # the stage's arguments too: a wrong one fails here, before it runs
        head, stage_argv = args, argv[argv.index(args.stage):]
    else:
        head, stage_argv = submit
    setup_logging()
    try:
        job = Job.from_dict(head.job)
        if head.job:  # a workflow rule: its log is appended to, one section per attempt
            job = count_attempt(job)
            log.info("%s attempt %d of %s (launcher %s) on %s at %s", ATTEMPT_HEADER, job.attempt, job.name,
                     head.launcher, socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"))
        if head.launcher == "local" and job.tasks == 1:
            return stages.run_parsed(args)
        return LAUNCHERS[head.launcher](job, stage_argv)
    except PaeError as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
