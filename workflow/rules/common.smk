# The workflow's glue: the config validated (before any job starts), the run grid, the path table and the small
# input and params functions of the rules. The logic (file names, OoD sets, the path table) is in pae.config.
import dataclasses
import functools
import json
import os
import re
import shlex
import sys

import pae.config
import pae.launch
import pae.launch.watch
import pae.lock
import pae.preflight
from pae.io import PaeError
from pae.report import TABLES as REPORT_TABLES

try:
    _resolved = pae.config.resolve(config, source="workflow config (configfile and --config overrides)")
    # A file where an output folder should be stops snakemake while it builds its DAG, dry runs too, with a
    # traceback: named here instead (nothing is written; the full check of the folders is in onstart, below).
    pae.preflight.check_writable(pae.preflight.output_folders(_resolved), create=False)
except PaeError as e:
    sys.exit(f"error: {e}")
config.clear()
config.update(_resolved)

PY = sys.executable  # the interpreter running snakemake has pae installed
EXP = config["experiment"]
JOB_FOLDER = f"logs/submitit/{EXP}"  # a folder per rule and run: its SLURM job's files, its attempts
# Snakemake resources that describe a stage's job (pae.launch.Job; name, folder and threads are set by the rule, the
# attempt is counted by the launcher: get_attempt says why).
JOB_RESOURCES = tuple(f.name for f in dataclasses.fields(pae.launch.Job)
                      if f.name not in ("name", "folder", "threads", "attempt"))

PATHS = pae.config.workflow_paths(config)  # every file's pattern, written once (pae.config.PATHS)
DATA_KEYS = pae.config.data_keys(config)  # prepared file key -> dataset
# One run = dataset x model x latent size x seed (per grid block), plus the matched-imputation runs: pae.config.runs.
RUNS = pae.config.runs(config)
# The datasets' FID references, one per eval.fid settings but the temperatures (pae.config.fid_reference_key): key ->
# those settings, as the fid_reference stage takes them.
FID_REFERENCES = {pae.config.fid_reference_key(r["eval"]["fid"]):
                  json.dumps(pae.config.fid_reference_spec(r["eval"]["fid"]), sort_keys=True) for r in RUNS.values()}


wildcard_constraints:
    run="|".join(re.escape(r) for r in RUNS),
    data_key="|".join(re.escape(k) for k in DATA_KEYS),
    fid_key="|".join(FID_REFERENCES),


def log_file(rule):
    return pae.config.log_path(config, rule)


def benchmark_file(rule):
    return pae.config.benchmark_path(config, rule)


def all_targets():
    return [f"{PATHS['tables']}/runs.csv", PATHS["figures"], PATHS["report"]]


@functools.cache  # input functions ask for it once per job and file: the paper grid's 872 jobs
def run_paths(run):
    """Every file of a run, as the report stage finds it (pae.config.run_paths; callers read it, never change it)."""
    return pae.config.run_paths(config, RUNS[run])


# ---- The command every rule runs ----
# `python -m pae --launcher L --job JOB STAGE ARGS 2>&1 | tee -i -a LOG.attempts > LOG`: L and JOB come from the
# rule's resources (set per profile: cluster/slurm/config.yaml) through params functions taking `resources`, which
# snakemake never counts as a changed parameter, so moving between local and SLURM never makes results stale.
# Snakemake deletes a rule's log before each attempt, so the log holds the last attempt and LOG.attempts beside it
# keeps every attempt (retries, reruns), each under a header naming the attempt (counted within the run:
# pae.launch.count_attempt) and, on SLURM, the job id; tee ignores Ctrl-C (-i) so that it copies what the launcher says while it cancels its job. When
# the stage fails, pae's own error lines (pae.io.log_errors) are printed on the terminal before snakemake points to
# the log.
SHOW_ERRORS = ('import sys, pae.io; [print("error in rule " + sys.argv[1] + ": " + m + "\\n(log: " + sys.argv[2] + ")", '
               'file=sys.stderr) for m in pae.io.log_errors(sys.argv[2])]')


def pae_shell(stage_args):
    """The shell command of a rule running the pae stage `stage_args` (a snakemake shell template)."""
    # tee ignores the stop signals (INT, TERM, HUP) that reach the whole process group (Ctrl-C, `kill -TERM
    # -PGID`, a closed terminal): the stage saves its state and logs why it stopped through it, and tee ends when the
    # stage closes the pipe. A tee killed first would break the pipe under the stage before it could save.
    return ("set -o pipefail; OMP_NUM_THREADS={threads} {PY:q} -m pae --launcher {params.launcher:q} "
            "--job {params.job:q} " + stage_args + " 2>&1 | (trap '' INT TERM HUP; exec tee -a {log:q}.attempts) "
            "> {log:q} || {{ {PY:q} -c {SHOW_ERRORS:q} {rule} {log:q}; exit 1; }}")


def get_attempt(wildcards, attempt):
    """The rules' `attempt` resource: snakemake's attempt number (1, then 2... on --retries), which snakemake shows
    with each job's resources. It does not reach the launcher: a retry gets the params (the --job JSON) of its first
    attempt, so pae counts a rule's attempts within a run itself (pae.launch.count_attempt, from $PAE_RUN)."""
    return attempt


def get_launcher(wildcards, resources):
    return dict(resources.items()).get("launcher", "local")


def get_job(rule):
    """The params function giving `rule`'s job (pae.launch.Job) as JSON, from its threads and resources."""

    def job(wildcards, threads, resources):
        res = dict(resources.items())
        spec = {k: res[k] for k in JOB_RESOURCES if k in res}
        name = "-".join([rule, *map(str, wildcards)])
        spec.update(threads=threads, name=f"pae-{name}", folder=f"{JOB_FOLDER}/{name}")
        return json.dumps(spec)

    return job


# ---- Input and params functions ----


def get_run_file(key):
    """The input function of a run's file PATHS[key] whose wildcards are not the rule's (its data, classifier)."""
    return lambda wildcards: run_paths(wildcards.run)[key]


def get_ood_data(wildcards):
    """The prepared OoD datasets of a run, named ood_{dataset} (use with unpack)."""
    dataset = RUNS[wildcards.run]["dataset"]
    return {f"ood_{d}": PATHS["data"].replace("{data_key}", pae.config.data_key(config, d))
            for d in pae.config.ood_datasets(config, dataset)}


def get_ood_args(wildcards, input):
    dataset = RUNS[wildcards.run]["dataset"]
    return [f"--ood-data={d}={input[f'ood_{d}']}" for d in pae.config.ood_datasets(config, dataset)]


def get_dataset(wildcards):
    return DATA_KEYS[wildcards.data_key]


def get_dataset_spec(wildcards):
    return json.dumps(pae.config.dataset_spec(config, DATA_KEYS[wildcards.data_key]), sort_keys=True)


def get_train_spec(wildcards):
    return json.dumps(pae.config.train_spec(RUNS[wildcards.run]), sort_keys=True)


def get_missing(wildcards):
    return json.dumps(RUNS[wildcards.run]["missing"], sort_keys=True)


def get_seed(wildcards):
    return RUNS[wildcards.run]["seed"]


def get_flow_spec(wildcards):
    run = RUNS[wildcards.run]
    return json.dumps({**run["flow"], "seed": run["seed"]}, sort_keys=True)


def eval_spec(section=None):
    """The eval config (or one of its sections) as the JSON a stage takes; a stage's params hold only its own
    section, so changing one metric's settings reruns that metric alone."""
    keys = [k for k, v in config["eval"].items() if not isinstance(v, dict)]
    spec = config["eval"][section] if section else {k: config["eval"][k] for k in keys}
    return json.dumps(spec, sort_keys=True)


def get_fid_reference_spec(wildcards):
    return FID_REFERENCES[wildcards.fid_key]


def get_run_eval_spec(section):
    """Input function: a run's own eval section (a grid block may override fid, posterior and uncertainty), as the
    JSON a stage takes; the same text as eval_spec(section) for a run without overrides."""
    return lambda wildcards: json.dumps(RUNS[wildcards.run]["eval"][section], sort_keys=True)


# The files of a main run that the report reads (less those of the stages its grid block skips: run_paths); a
# matched-imputation run contributes its impute.json only.
MAIN_FILES = ("history", "flow_history", "recon", "flow_metrics", "samples", "fid", "ood", "ood_scores", "posterior",
              "posterior_panels", "impute", "uncertainty", "uncertainty_panels")


def get_report_inputs(wildcards):
    files = []
    for run, spec in RUNS.items():
        p = run_paths(run)
        files += [p["impute"]] if spec["matched_imputation"] else [p[k] for k in MAIN_FILES if k in p]
        files += [p["benchmarks"][s] for s in (["train", "impute"] if spec["matched_imputation"] else p["benchmarks"])]
    return sorted(set(files))


def _shown_path(path):
    """A config file as the report names it: relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def get_config_json(wildcards):
    return json.dumps(config, sort_keys=True)


def get_configfile_args(wildcards):
    return " ".join(f"--configfile {shlex.quote(_shown_path(f))}" for f in workflow.configfiles)


# ---- Before the first job ----
# snakemake calls this in a real run only, once its DAG is built and before its first job: not for a dry run (-n),
# --unlock, --report, --list-*, --summary and the like, nor when nothing is to be done, nor in the jobs it spawns.
onstart:
    try:
        # Every folder the jobs write into can be written (a read-only or misplaced folder otherwise fails the
        # first job with snakemake's traceback), then one run per experiment (pae.lock: snakemake's own locks
        # vanish when any real run in this directory ends, or on --unlock).
        pae.preflight.check_writable(pae.preflight.output_folders(config))
        pae.lock.hold(config["results_dir"], EXP)
    except PaeError as e:
        sys.exit(f"error: {e}")
    # This run's id, inherited by every job's command: the launcher counts a rule's attempts within the run, and
    # snakemake's retry of a rule whose SLURM job was cancelled (scancel) does not submit it again.
    os.environ[pae.launch.RUN_ENV] = pae.launch.new_run_id()
    # A line on this terminal whenever what this run's SLURM jobs wait for changes (a drained node, a full
    # partition), where squeue exists (pae.launch.watch).
    pae.launch.watch.start(JOB_FOLDER)
    # Room for what the jobs about to run will write: a warning from an estimate (pae.preflight.space_needed).
    pending = {}
    for job in workflow.dag.needrun_jobs():
        if "run" in job.wildcards_dict:
            pending.setdefault(job.wildcards_dict["run"], set()).add(job.rule.name)
    estimate = pae.preflight.space_needed(config, RUNS, pending)
    warning = pae.preflight.space_warning(f"{config['results_dir']}/{EXP}", estimate)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
