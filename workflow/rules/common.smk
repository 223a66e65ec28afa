# Config validation (before any job starts), the run grid, paths and the per-rule helpers.
import hashlib
import json
import re
import shlex
import sys

import pae.config
from pae.io import PaeError

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


def _data_spec(dataset):
    return pae.config.data_spec(dataset, config["datasets"][dataset])


def _data_key(dataset):
    spec = _data_spec(dataset)
    if spec == pae.config.data_spec(dataset, _DEFAULT_DATA_SPEC):
        return dataset
    return f"{dataset}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]}"


DATA_KEYS = {_data_key(d): d for d in config["datasets"]}

# One run = dataset x model x latent size x seed; its id is also its folder name.
RUNS = {
    f"{d}-{m}-z{z}-s{s}": {"run": f"{d}-{m}-z{z}-s{s}", "dataset": d, "model": m, "latent_dim": z, "seed": s}
    for d in config["datasets"]
    for m in config["models"]
    for z in config["latent_sizes"]
    for s in config["seeds"]
}


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
    shell(line.replace("{", "{{").replace("}", "}}"))  # shell() formats {...}; the JSON must pass as it is


def all_targets():
    return [f"{RES}/tables/runs.csv", f"{RES}/figures"]


def run_paths(run):
    """Every file a run's rules write (the layout in one place)."""
    return {
        "data": f"{DATA}/{_data_key(RUNS[run]['dataset'])}.h5",
        "model": f"{RES}/{run}/model/model.pt",
        "history": f"{RES}/{run}/model/history.json",
        "checkpoint": f"{RES}/{run}/checkpoint/train.pt",
        "latents": f"{RES}/{run}/latents.h5",
        "flow": f"{RES}/{run}/flow/flow.pt",
        "flow_history": f"{RES}/{run}/flow/history.json",
        "recon": f"{RES}/{run}/metrics/recon.json",
        "flow_metrics": f"{RES}/{run}/metrics/flow.json",
        "elbo": f"{RES}/{run}/metrics/elbo.json",  # VAE, beta-VAE, VAD only (written by evaluate beside recon.json)
        "samples": f"{RES}/{run}/samples.h5",
        "benchmarks": {
            "prepare": f"benchmarks/prepare/{_data_key(RUNS[run]['dataset'])}.tsv",
            **{s: f"{BENCH}/{run}/{s}.tsv" for s in ("train", "encode", "fit_flow", "evaluate")},
        },
    }


def run_data(wildcards):
    return run_paths(wildcards.run)["data"]


def run_checkpoint(wildcards):
    return run_paths(wildcards.run)["checkpoint"]


def data_name(wildcards):
    return DATA_KEYS[wildcards.data_key]


def dataset_spec(wildcards):
    return json.dumps(_data_spec(DATA_KEYS[wildcards.data_key]), sort_keys=True)


def train_spec(wildcards):
    run = RUNS[wildcards.run]
    spec = {"model": run["model"], "latent_dim": run["latent_dim"], "seed": run["seed"], **config["train"]}
    return json.dumps(spec, sort_keys=True)


def flow_spec(wildcards):
    return json.dumps({**config["flow"], "seed": RUNS[wildcards.run]["seed"]}, sort_keys=True)


def eval_spec(wildcards):
    return json.dumps(config["eval"], sort_keys=True)


def report_inputs(wildcards):
    files = []
    for run in RUNS:
        p = run_paths(run)
        files += [p["history"], p["flow_history"], p["recon"], p["flow_metrics"], p["samples"]]
        files += list(p["benchmarks"].values())
    return sorted(set(files))


def report_manifest(wildcards):
    return json.dumps({"runs": [{**spec, "files": run_paths(run)} for run, spec in RUNS.items()]}, sort_keys=True)
