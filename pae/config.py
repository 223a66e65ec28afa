"""The experiment config: validated against pae/config.schema.yaml (package data, so an installed wheel validates
too) with defaults filled in, before any job starts. The same function serves the Snakefile and the stages run by
hand, so both see the same resolved config.
"""
from __future__ import annotations

import copy
import functools
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


# A number as written in YAML 1.2 / JSON / Python, exponent without a dot included ("1e-3", "-2.5E+4", ".5").
_NUMBER = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def _as_type(text: str, wanted: list[str]):
    """`text` read as one of the `wanted` schema types, or None when it reads as none of them. YAML decides
    ("3" -> 3, "0.5" -> 0.5, "true" -> True, "null" -> None); where a number is wanted, a string that is a finite
    number in any usual spelling ("1e-3", which YAML 1.1 leaves a string) becomes a float."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if any(isinstance(value, _TYPES[t]) and not (t != "boolean" and isinstance(value, bool))
           for t in wanted if t in _TYPES):
        return (value,)
    if "number" in wanted and _NUMBER.match(text.strip()) and math.isfinite(float(text)):
        return (float(text),)
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


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, nested mappings merged key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merge(base[key], value) if both else copy.deepcopy(value)
    return out


GRID_KEYS = ("models", "latent_sizes", "seeds", "train", "flow")


# Architectures with dropout layers (pae.models.WITH_DROPOUT; written here so that validating a config needs no torch).
ARCHS_WITH_DROPOUT = {"infogan"}


def grid_blocks(config: dict[str, Any], source: str = "config") -> list[dict[str, Any]]:
    """The blocks of a resolved config's grid (one block of every dataset when `grid` is null), each with its own
    models, latent sizes, seeds and complete `train` and `flow` sections (the block's overrides merged over the
    top-level ones and validated)."""
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
        sub.update(train=_merge(config["train"], block.get("train") or {}),
                   flow=_merge(config["flow"], block.get("flow") or {}))
        errors = _errors(validator, sub)  # the block's overrides are validated (and read as numbers) here
        if errors:
            lines = [f"  - {_where(e)}: {e.message}" for e in errors]
            raise PaeError(f"{where}: invalid configuration (the block merged over the top-level keys):\n"
                           + "\n".join(lines))
        train = sub["train"]
        if train["dropout"] and train["arch"] not in ARCHS_WITH_DROPOUT:
            raise PaeError(f"{where}: train.dropout={train['dropout']}, but train.arch={train['arch']!r} has no "
                           f"dropout layers (those that have: {sorted(ARCHS_WITH_DROPOUT)}); set dropout: 0 there")
        out.append({"datasets": list(block["datasets"]), **{k: sub[k] for k in GRID_KEYS}})
    return out


def runs(config: dict[str, Any], source: str = "config") -> dict[str, dict[str, Any]]:
    """Every run of a resolved config, by id ({dataset}-{model}-z{latent}-s{seed}, also its folder name): its grid
    coordinates, `train` and `flow` sections and training missingness. With eval.impute.matched each also has runs
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
                        base = f"{d}-{m}-z{z}-s{s}"
                        if base in out:
                            raise PaeError(f"{source}: grid[{i}] repeats run {base} of an earlier block (each "
                                           "dataset x model x latent size x seed may appear once)")
                        for miss in [None, *missing]:
                            run = base if miss is None else f"{base}-miss{miss['ratio']:g}-{miss['mode']}"
                            out[run] = {"run": run, "dataset": d, "model": m, "latent_dim": z, "seed": s,
                                        "missing": miss or block["train"]["missing"],
                                        "matched_imputation": miss is not None,
                                        "train": block["train"], "flow": block["flow"]}
    return out


# Per-dataset keys that only some datasets use (the MNIST-type datasets have no image_size).
DATASET_ONLY_KEYS = {"image_size": ("celeba", "image_folder")}


def data_spec(dataset: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A dataset's config entry without the keys it does not use. The workflow names prepared files and decides
    reruns by this, so an option added for some datasets never renames or redoes the others' files."""
    return {k: v for k, v in spec.items() if dataset in DATASET_ONLY_KEYS.get(k, (dataset,))}
